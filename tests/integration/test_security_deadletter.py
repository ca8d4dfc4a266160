"""Dead letters keep the reason a delivery failed, but never a password from it: the reason
is often the text of a broker client's exception, which quotes the URL it could not reach."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any, ClassVar

import pytest

from pipeline import ComponentOptions, Emit, Event, EventKind, Sink, Source, hookimpl
from pipeline.config import load_config_data
from pipeline.engine import Runner
from pipeline.registry import build_registry

pytestmark = pytest.mark.integration
SECRET = "hunter2-5f1c"


class OneSource(Source[ComponentOptions]):
    """Emits one event, then waits."""

    type_name = "one_event"
    Options = ComponentOptions

    async def run(self, emit: Emit) -> None:
        await emit(Event(EventKind.CLOSED_WRITE, "/in/a.csv", "p/one"))
        await asyncio.Event().wait()


class LeakySink(Sink[ComponentOptions]):
    """Fails like a broker client does: its message quotes the URL, password and all."""

    type_name = "leaky"
    Options = ComponentOptions

    async def send(self, event: Event) -> None:
        raise ConnectionError(f"cannot connect to amqp://ingest:{SECRET}@rabbit:5672/")


class CollectSink(Sink[ComponentOptions]):
    """Keeps what it is given (the dead-letter sink)."""

    type_name = "keep"
    Options = ComponentOptions
    kept: ClassVar[list[Event]] = []

    async def send(self, event: Event) -> None:
        CollectSink.kept.append(event)


class Plugin:
    @hookimpl
    def pipeline_components(self) -> list[type[Any]]:
        return [OneSource, LeakySink, CollectSink]


def run_until(tmp_path: Path, pipeline: dict[str, Any], done: Any) -> None:
    registry = build_registry(extra_plugins=[("leaky", Plugin())], autoload=False)
    data = {"state_dir": str(tmp_path / "state"), "pipelines": {"p": pipeline}}
    runner = Runner(load_config_data(data, registry, source="t", config_dir=tmp_path), registry)

    async def scenario() -> None:
        task = asyncio.create_task(runner.run())
        deadline = time.monotonic() + 10
        while not done():
            assert time.monotonic() < deadline, "nothing was dead-lettered"
            await asyncio.sleep(0.02)
        runner.request_stop()
        await asyncio.wait_for(task, 10)

    asyncio.run(scenario())


def test_the_dead_letter_file_masks_the_password_in_the_reason(tmp_path: Path) -> None:
    letters = tmp_path / "state" / "dead-letter.jsonl"
    sink = {"type": "leaky", "max_attempts": 1}
    run_until(tmp_path, {"sources": [{"type": "one_event"}], "sinks": [sink]}, letters.exists)
    (letter,) = [json.loads(line) for line in letters.read_text().splitlines()]
    assert "amqp://ingest:***@rabbit:5672/" in letter["reason"]
    assert SECRET not in letters.read_text()


def test_a_dead_letter_sink_gets_the_masked_reason(tmp_path: Path) -> None:
    CollectSink.kept = []
    pipeline = {
        "sources": [{"type": "one_event"}],
        "sinks": [{"type": "leaky", "max_attempts": 1}],
        "dead_letter": {"type": "keep"},
    }
    run_until(tmp_path, pipeline, lambda: CollectSink.kept)
    (letter,) = CollectSink.kept
    reason = letter.meta["dead_letter"]["reason"]
    assert "amqp://ingest:***@rabbit:5672/" in reason and SECRET not in reason
