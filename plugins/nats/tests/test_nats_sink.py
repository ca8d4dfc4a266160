"""The nats sink against a real JetStream server: what lands in the stream, and how."""

from __future__ import annotations

import asyncio
import time
from collections.abc import MutableMapping
from pathlib import Path
from typing import Any

import pytest
from pipeline import Event, EventKind, from_json
from structlog.testing import capture_logs
from tests.conftest import make_component

from fspipeline_nats import NatsSink
from fspipeline_nats.errors import NatsPublishFailed, NatsStreamMissing, NatsUnavailable
from nats_servers import PrivateServer, add_stream, connected, read_stream

pytestmark = pytest.mark.integration


def run(coro: Any) -> Any:
    async def bounded() -> Any:
        return await asyncio.wait_for(coro, 60)

    return asyncio.run(bounded())


def event(n: int, kind: EventKind = EventKind.CLOSED_WRITE) -> Event:
    return Event(kind, f"/data/in/{n:05d}.csv", "landing/inotify", meta={"root": "/data/in"})


def test_events_land_once_with_their_headers(
    tmp_path: Path, nats_url: str, stream_name: str
) -> None:
    sink = make_component(
        NatsSink,
        tmp_path,
        url=nats_url,
        subject=f"{stream_name}.{{pipeline}}.{{kind}}",
        create_stream={"name": stream_name, "subjects": [f"{stream_name}.>"]},
    )
    events = [event(n) for n in range(300)] + [event(300, EventKind.DELETED)]

    async def scenario() -> None:
        await sink.open()
        try:
            await sink.send(events[0])
            await sink.send_batch(events[1:])
            await sink.send_batch(events[:50])  # a retried batch: the server drops the copies
            await sink.send(events[-1])
        finally:
            await sink.close()

    run(scenario())
    messages = run(read_stream(nats_url, stream_name))
    assert [from_json(m.data) for m in messages] == events  # each once, in order
    last = messages[-1]
    assert last.subject == f"{stream_name}.t.deleted"
    assert last.headers == {
        "id": events[-1].id,
        "type": "fs.deleted",
        "Content-Type": "application/cloudevents+json",
        "Nats-Msg-Id": events[-1].id,
    }


def test_without_deduplication_a_retry_is_stored_twice(
    tmp_path: Path, nats_url: str, stream_name: str
) -> None:
    run(add_stream(nats_url, stream_name, [f"{stream_name}.>"]))
    sink = make_component(
        NatsSink, tmp_path, url=nats_url, subject=f"{stream_name}.x", deduplicate=False
    )

    async def scenario() -> None:
        await sink.open()
        try:
            await sink.send(event(1))
            await sink.send(event(1))
        finally:
            await sink.close()

    run(scenario())
    assert len(run(read_stream(nats_url, stream_name))) == 2


def test_a_subject_no_stream_stores_fails_with_what_to_do(tmp_path: Path, nats_url: str) -> None:
    sink = make_component(NatsSink, tmp_path, url=nats_url, subject="nostream.{kind}")

    async def scenario() -> None:
        await sink.open()
        try:
            with pytest.raises(NatsStreamMissing, match=r"no JetStream stream stores the subject"):
                await sink.send(event(1))
            with pytest.raises(NatsStreamMissing, match="create_stream"):
                await sink.send_batch([event(2), event(3)])
        finally:
            await sink.close()

    run(scenario())


def test_the_expected_stream_is_enforced(tmp_path: Path, nats_url: str, stream_name: str) -> None:
    run(add_stream(nats_url, stream_name, [f"{stream_name}.>"]))
    sink = make_component(
        NatsSink, tmp_path, url=nats_url, subject=f"{stream_name}.x", stream="SomeOtherStream"
    )

    async def scenario() -> None:
        await sink.open()
        try:
            with pytest.raises(NatsPublishFailed, match="expected stream does not match"):
                await sink.send(event(1))
        finally:
            await sink.close()

    run(scenario())


def test_a_server_down_at_start_is_waited_for(tmp_path: Path, private_nats: PrivateServer) -> None:
    private_nats.kill()
    sink = make_component(
        NatsSink,
        tmp_path,
        url=f"nats://app:hunter2@127.0.0.1:{private_nats.port}",
        subject="late.{kind}",
        create_stream={"name": "LATE"},
        reconnect_wait="50ms",
        reconnect_max_wait="200ms",
    )

    async def scenario() -> list[MutableMapping[str, Any]]:
        with capture_logs() as logs:
            await sink.open()  # does not fail: the server may come later
            try:
                with pytest.raises(NatsUnavailable, match="connection refused") as caught:
                    await sink.send(event(1))
                assert "hunter2" not in str(caught.value) and "app:***@" in str(caught.value)
                while not any("NATS; retrying" in entry["event"] for entry in logs):
                    await asyncio.sleep(0.05)  # the background attempts go on, logged
                await asyncio.to_thread(private_nats.start)
                deadline = time.monotonic() + 15
                while True:
                    try:
                        await sink.send(event(1))
                        break
                    except NatsUnavailable:
                        assert time.monotonic() < deadline
                        await asyncio.sleep(0.05)
            finally:
                await sink.close()
        return logs

    private_nats.args = ("--user", "app", "--pass", "hunter2")
    logs = run(scenario())
    assert any("keeps retrying" in entry["event"] for entry in logs)
    assert any("cannot connect to NATS; retrying" in entry["event"] for entry in logs)
    assert "hunter2" not in repr(logs)

    async def count() -> int:
        async with connected(f"nats://app:hunter2@127.0.0.1:{private_nats.port}") as client:
            return (await client.jetstream().stream_info("LATE")).state.messages

    assert run(count()) == 1


def test_a_restarted_server_is_reconnected_to(tmp_path: Path, private_nats: PrivateServer) -> None:
    sink = make_component(
        NatsSink,
        tmp_path,
        url=private_nats.url,
        subject="r.{kind}",
        create_stream={"name": "R"},
        reconnect_wait="50ms",
        reconnect_max_wait="200ms",
        publish_timeout="1s",
    )

    async def scenario() -> None:
        await sink.open()
        try:
            await sink.send_batch([event(n) for n in range(10)])
            await asyncio.to_thread(private_nats.kill)
            with pytest.raises((NatsUnavailable, NatsPublishFailed)):
                await sink.send_batch([event(n) for n in range(10, 20)])
            await asyncio.to_thread(private_nats.start)
            deadline = time.monotonic() + 20
            while True:
                try:
                    await sink.send_batch([event(n) for n in range(10, 20)])
                    return
                except (NatsUnavailable, NatsPublishFailed):
                    assert time.monotonic() < deadline
                    await asyncio.sleep(0.1)
        finally:
            await sink.close()

    run(scenario())
    paths = [from_json(m.data).path for m in run(read_stream(private_nats.url, "R"))]
    assert paths == [event(n).path for n in range(20)]
