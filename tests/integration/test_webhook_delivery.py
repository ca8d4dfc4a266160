"""The webhook sink under the real engine: retries, Retry-After, dead letters, batches, logs."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from structlog.testing import capture_logs

from pipeline import ComponentOptions, Emit, Event, EventKind, Source, hookimpl
from pipeline.config import load_config_data
from pipeline.engine import Runner
from pipeline.registry import Registry, build_registry
from tests.integration.test_webhook_receiver import Answer, Receiver
from tests.jsonl import complete_records

pytestmark = pytest.mark.integration
TOKEN = "tok-81d2e5a0-secret"


class CountOptions(ComponentOptions):
    count: int = 1


class CountSource(Source[CountOptions]):
    """Emits `count` closed_write events for /in/f0, /in/f1, ..."""

    type_name = "count"
    Options = CountOptions

    async def run(self, emit: Emit) -> None:
        for n in range(self.options.count):
            await emit(Event(EventKind.CLOSED_WRITE, f"/in/f{n}", "p/count"))
        await asyncio.Event().wait()


class CountPlugin:
    @hookimpl
    def pipeline_components(self) -> list[type[Any]]:
        return [CountSource]


@pytest.fixture
def registry() -> Registry:
    return build_registry(extra_plugins=[("count", CountPlugin())], autoload=False)


def run(
    registry: Registry,
    tmp_path: Path,
    done: Callable[[], bool],
    count: int,
    **hook: Any,
) -> bool:
    """Run one pipeline (count source -> webhook) until `done()`; True if it stopped clean."""
    pipeline = {
        "sources": [{"type": "count", "count": count}],
        "sinks": [{"type": "webhook", "retry_backoff": "10ms", **hook}],
    }
    data = {"state_dir": str(tmp_path / "state"), "pipelines": {"p": pipeline}}
    runner = Runner(load_config_data(data, registry, source="t", config_dir=tmp_path), registry)

    async def scenario() -> bool:
        task = asyncio.create_task(runner.run())
        deadline = asyncio.get_running_loop().time() + 20
        while not done() and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.1)  # let the sink settle the last answer
        runner.request_stop()
        return await task

    return asyncio.run(scenario())


def dead_letters(tmp_path: Path) -> list[dict[str, Any]]:
    return complete_records(tmp_path / "state" / "dead-letter.jsonl")


def test_503_then_200_is_retried_and_delivered_once(registry: Registry, tmp_path: Path) -> None:
    with Receiver() as server:
        server.answer(Answer(503, body=b"warming up"))
        assert run(
            registry, tmp_path, lambda: len(server.received) >= 2, 1, url=server.url + "/hook"
        )
        first, second = server.received
    assert first.headers["ce-id"] == second.headers["ce-id"]
    assert second.json()["data"]["path"] == "/in/f0"
    assert dead_letters(tmp_path) == []


def test_429_retry_after_is_honoured_before_the_retry(registry: Registry, tmp_path: Path) -> None:
    with Receiver() as server:
        server.answer(Answer(429, headers={"Retry-After": "1"}))
        assert run(
            registry, tmp_path, lambda: len(server.received) >= 2, 1, url=server.url + "/hook"
        )
        first, second = server.received
    assert 0.9 <= second.at - first.at < 8.0
    assert dead_letters(tmp_path) == []


def test_400_is_dead_lettered_at_once_with_its_reason_and_no_secret_is_logged(
    registry: Registry, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOOK_TOKEN", TOKEN)
    rejection = Answer(400, body=f'{{"error":"schema mismatch","auth":"{TOKEN}"}}'.encode())
    with capture_logs() as logs, Receiver() as server:
        server.answer(rejection, rejection, rejection)
        hook = {"url": server.url + "/hook", "bearer_token_env": "HOOK_TOKEN", "max_attempts": 3}
        run(registry, tmp_path, lambda: bool(dead_letters(tmp_path)), 1, **hook)
        assert server.received[0].headers["authorization"] == f"Bearer {TOKEN}"
        assert len(server.received) == 1  # permanent: not retried
    (letter,) = dead_letters(tmp_path)
    assert letter["reason"].endswith("(after 1 attempt)")
    assert letter["event"]["data"]["path"] == "/in/f0"
    assert "400 Bad Request" in letter["reason"]
    assert "schema mismatch" in letter["reason"]
    assert TOKEN not in json.dumps(letter)
    assert any("400 Bad Request" in str(entry) for entry in logs)
    assert TOKEN not in str(logs)


def ids_received(server: Receiver) -> list[str]:
    bodies = [r.json() for r in list(server.received)]
    return [e["id"] for body in bodies for e in (body if isinstance(body, list) else [body])]


def test_batches_carry_every_event_exactly_once(registry: Registry, tmp_path: Path) -> None:
    count = 300
    with Receiver() as server:
        hook = {"url": server.url + "/b", "batch_size": 100, "batch_wait": "50ms"}
        done = lambda: len(ids_received(server)) >= count  # noqa: E731
        assert run(registry, tmp_path, done, count, **hook)
        ids = ids_received(server)
    assert len(ids) == count == len(set(ids))
    assert len(server.received) <= 20  # batched, not one request per event
    batch_type = "application/cloudevents-batch+json"
    assert any(r.headers["content-type"] == batch_type for r in server.received)
