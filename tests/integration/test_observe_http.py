"""The HTTP endpoint on a real socket, in front of a real engine: health and readiness,
the token, /api/stats, the page, and the live tail (which never holds the pipeline back)."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from pipeline import Emit, FakeClock, Source, hookimpl
from pipeline.observe.address import HttpAddress
from pipeline.observe.server import HttpEndpoint
from pipeline.options import ComponentOptions
from pipeline.testing import PipelineRun, make_event

pytestmark = pytest.mark.integration


class CrashingSource(Source[ComponentOptions]):
    """Loses its watch at once, every time."""

    type_name = "crashing"
    Options = ComponentOptions

    async def run(self, emit: Emit) -> None:
        raise RuntimeError("lost the watch on /in")


class CrashingPlugin:
    @hookimpl
    def pipeline_components(self) -> list[type[Any]]:
        return [CrashingSource]


def config(*sinks: dict[str, Any], sources: tuple[dict[str, Any], ...] = ()) -> dict[str, Any]:
    return {
        "shutdown_timeout": "2s",
        "pipelines": {
            "landing": {
                "sources": [{"type": "scripted"}, *sources],
                "sinks": list(sinks) or [{"type": "collect"}],
            }
        },
    }


@contextlib.asynccontextmanager
async def endpoint(token: str | None = None) -> AsyncIterator[tuple[HttpEndpoint, str]]:
    served = HttpEndpoint(HttpAddress("127.0.0.1", 0), token=token)
    url = await served.start()
    try:
        yield served, url
    finally:
        await served.stop()


@contextlib.asynccontextmanager
async def serving(
    run: PipelineRun, token: str | None = None
) -> AsyncIterator[tuple[PipelineRun, aiohttp.ClientSession]]:
    async with endpoint(token) as (served, url), run:
        assert run.runner is not None
        await asyncio.wait_for(run.runner.started.wait(), 10)
        await served.attach(run.runner)
        async with aiohttp.ClientSession(url) as client:
            yield run, client


async def get(client: aiohttp.ClientSession, path: str, **kw: Any) -> tuple[int, str]:
    async with client.get(path, **kw) as response:
        return response.status, await response.text()


def test_readiness_follows_the_process_from_starting_to_a_failing_sink_to_stopping() -> None:
    async def scenario() -> list[tuple[str, int, str]]:
        seen = []
        async with endpoint() as (served, url), aiohttp.ClientSession(url) as client:
            seen.append(("before", *await get(client, "/readyz")))
            seen.append(("health before", *await get(client, "/healthz")))
            sink = {"type": "collect", "fail": 1000, "retry_backoff": "1m", "max_attempts": 50}
            run = PipelineRun(config(sink), clock=FakeClock())
            async with run:
                assert run.runner is not None
                await asyncio.wait_for(run.runner.started.wait(), 10)
                await served.attach(run.runner)
                seen.append(("running", *await get(client, "/readyz")))
                await run.emit(make_event("closed_write", "/in/a.csv"))
                await run.wait_for(lambda: run.attempts.get("default", 0) >= 1)
                seen.append(("sink failing", *await get(client, "/readyz")))
                run.runner.request_stop()  # the stuck sink keeps it draining for 2 s
                await asyncio.sleep(0.1)
                seen.append(("stopping", *await get(client, "/readyz")))
                seen.append(("health stopping", *await get(client, "/healthz")))
        return seen

    states = {name: (status, text) for name, status, text in asyncio.run(scenario())}
    assert states["before"] == (503, "starting: the pipelines are opening\n")
    assert states["health before"] == (200, "ok\n")
    assert states["running"][0] == 200
    assert states["sink failing"] == (
        503,
        "sink landing.sinks[0] (collect) cannot deliver: "
        "ConnectionError: collect sink 'default': scripted failure\n",
    )
    assert states["stopping"][0] == 503 and states["stopping"][1].startswith("stopping")
    assert states["health stopping"] == (200, "ok\n")


def test_a_source_that_keeps_crashing_makes_readyz_fail_with_its_error() -> None:
    async def scenario() -> tuple[int, str]:
        run = PipelineRun(
            config(sources=({"type": "crashing"},)), clock=FakeClock(), plugins=[CrashingPlugin()]
        )
        async with serving(run) as (run, client):
            await run.wait_for(lambda: any(s.restarts for s in run.runner.stats()))  # type: ignore[union-attr]
            return await get(client, "/readyz")

    status, text = asyncio.run(scenario())
    assert status == 503
    assert text == (
        "source landing.sources[1] (crashing) is restarting: RuntimeError: lost the watch on /in\n"
    )


def test_with_a_token_every_route_answers_401_without_it() -> None:
    async def scenario() -> dict[str, Any]:
        async with serving(PipelineRun(config()), token="s3cret-t0ken") as (_, client):
            found: dict[str, Any] = {}
            for path in ("/", "/healthz", "/readyz", "/metrics", "/api/stats", "/events"):
                async with client.get(path) as response:
                    found[path] = (response.status, response.headers.get("WWW-Authenticate"))
            found["wrong"] = (await get(client, "/healthz", params={"token": "s3cret-t0keN"}))[0]
            found["wrong header"] = (
                await get(client, "/healthz", headers={"Authorization": "Bearer nope"})
            )[0]
            found["header"] = await get(
                client, "/readyz", headers={"Authorization": "Bearer s3cret-t0ken"}
            )
            found["query"] = await get(client, "/api/stats", params={"token": "s3cret-t0ken"})
            return found

    found = asyncio.run(scenario())
    for path in ("/", "/healthz", "/readyz", "/metrics", "/api/stats", "/events"):
        assert found[path] == (401, 'Bearer realm="fspipeline"'), path
    assert found["wrong"] == 401 and found["wrong header"] == 401
    assert found["header"][0] == 200
    assert found["query"][0] == 200 and json.loads(found["query"][1])["ready"] is True


def test_stats_count_what_was_delivered_and_the_page_loads_nothing_from_elsewhere() -> None:
    async def scenario() -> tuple[dict[str, Any], str, dict[str, str]]:
        async with serving(PipelineRun(config())) as (run, client):
            await run.emit(*(make_event("closed_write", f"/in/{n}.csv") for n in range(7)))
            await run.wait_for(lambda: len(run.collected.get("default", [])) == 7)
            _, stats = await get(client, "/api/stats")
            async with client.get("/") as page:
                return json.loads(stats), await page.text(), dict(page.headers)

    stats, page, headers = asyncio.run(scenario())
    assert stats["ready"] is True and stats["events_seen"] == 7
    (landing,) = stats["pipelines"]
    source, sink = landing["components"]
    assert (source["label"], source["events_out"]) == ("landing.sources[0]", 7)
    assert (sink["label"], sink["type_name"], sink["delivered"]) == (
        "landing.sinks[0]",
        "collect",
        7,
    )
    assert headers["Content-Type"].startswith("text/html")
    assert "default-src 'none'" in headers["Content-Security-Policy"]
    assert "<script src" not in page and "https://" not in page and "http://" not in page


async def follow(client: aiohttp.ClientSession, count: int, **headers: str) -> list[str]:
    """The first `count` SSE fields of /events (lines like `data: ...`, `event: dropped`)."""
    fields: list[str] = []
    async with client.get("/events", headers=headers) as response:
        assert response.headers["Content-Type"] == "text/event-stream"
        while len(fields) < count:
            line = (await asyncio.wait_for(response.content.readline(), 10)).decode().strip()
            if line.startswith(("data:", "event:")):
                fields.append(line)
    return fields


def test_the_live_tail_streams_each_event_as_a_cloudevent() -> None:
    async def scenario() -> list[str]:
        async with serving(PipelineRun(config())) as (run, client):
            reader = asyncio.create_task(follow(client, 3))
            await asyncio.sleep(0.2)
            await run.emit(*(make_event("closed_write", f"/in/{n}.csv") for n in range(3)))
            return await reader

    fields = asyncio.run(scenario())
    events = [json.loads(field.removeprefix("data: ")) for field in fields]
    assert [e["data"]["path"] for e in events] == ["/in/0.csv", "/in/1.csv", "/in/2.csv"]
    assert {e["type"] for e in events} == {"fs.closed_write"}
    assert {e["specversion"] for e in events} == {"1.0"}


def test_a_follower_that_fell_too_far_behind_is_told_how_many_it_missed() -> None:
    async def scenario() -> list[str]:
        async with serving(PipelineRun(config())) as (run, client):
            await run.emit(*(make_event("created", f"/in/{n}") for n in range(1100)))
            return await follow(client, 2, **{"Last-Event-ID": "50"})

    dropped, first = asyncio.run(scenario())
    assert dropped == "event: dropped"
    assert json.loads(first.removeprefix("data: ")) == {"count": 50}  # 51..100 are gone


def test_a_follower_that_stops_reading_never_holds_the_pipeline_back() -> None:
    async def scenario() -> tuple[float, int, bool]:
        run = PipelineRun(config())
        async with serving(run) as (run, client):
            host, port = client._base_url.host, client._base_url.port  # type: ignore[union-attr]
            reader, writer = await asyncio.open_connection(host, port)
            writer.write(b"GET /events HTTP/1.1\r\nHost: localhost\r\n\r\n")  # and never read again
            await writer.drain()
            loop = asyncio.get_running_loop()
            started = loop.time()
            long = "d" * 2000
            await run.emit(*(make_event("created", f"/in/{long}/{n}") for n in range(5000)))
            await run.wait_for(lambda: len(run.collected.get("default", [])) == 5000, 60)
            took = loop.time() - started
            status, _ = await get(client, "/healthz")
            # Reading again, the follower learns it missed events: they were not kept for it.
            received = b""
            while b"event: dropped" not in received and len(received) < 50_000_000:
                received += await asyncio.wait_for(reader.read(1 << 20), 10)
            writer.close()
            return took, status, b"event: dropped" in received

    took, status, told = asyncio.run(scenario())
    assert took < 30
    assert status == 200
    assert told
