"""The engine: fan-out, back-pressure, retries, dead letters and orderly shutdown."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from pipeline import ComponentOptions, Emit, Event, EventKind, Sink, Source, Stage, hookimpl
from pipeline.config import load_config_data
from pipeline.engine import Runner
from pipeline.registry import Registry, build_registry


class ScriptOptions(ComponentOptions):
    count: int = 10
    prefix: str = "/in/f"


class ScriptSource(Source[ScriptOptions]):
    """Emits `count` created events, recording how far it got."""

    type_name = "script"
    Options = ScriptOptions
    emitted: list[int] = []  # noqa: RUF012 - shared with the test on purpose

    async def run(self, emit: Emit) -> None:
        for i in range(self.options.count):
            await emit(Event(EventKind.CREATED, f"{self.options.prefix}{i}", "t/script"))
            ScriptSource.emitted.append(i)
        await asyncio.Event().wait()


class RecordOptions(ComponentOptions):
    fail_paths: list[str] = []  # noqa: RUF012 - pydantic copies defaults
    fail_times: int = 0
    delay: float = 0.0


class RecordSink(Sink[RecordOptions]):
    """Records what it receives; fails on some paths; can be slow."""

    type_name = "record"
    Options = RecordOptions
    received: dict[str, list[str]] = {}  # noqa: RUF012
    attempts: dict[str, int] = {}  # noqa: RUF012

    async def send(self, event: Event) -> None:
        key = f"{self.context.label}:{event.path}"
        RecordSink.attempts[key] = RecordSink.attempts.get(key, 0) + 1
        if self.options.delay:
            await asyncio.sleep(self.options.delay)
        failing = (
            self.options.fail_times == 0 or RecordSink.attempts[key] <= self.options.fail_times
        )
        if event.path in self.options.fail_paths and failing:
            raise ConnectionError(f"refused for {event.path}")
        RecordSink.received.setdefault(self.context.label, []).append(event.path)


class ExplodeOptions(ComponentOptions):
    path: str


class ExplodeStage(Stage[ExplodeOptions]):
    """Raises on one path, passes the rest."""

    type_name = "explode"
    Options = ExplodeOptions

    async def process(self, event: Event, emit: Emit) -> None:
        if event.path == self.options.path:
            raise ValueError("cannot handle this one")
        await emit(event)


class TestPlugin:
    @hookimpl
    def pipeline_components(self) -> list[type[Any]]:
        return [ScriptSource, RecordSink, ExplodeStage]


@pytest.fixture
def registry() -> Registry:
    ScriptSource.emitted = []
    RecordSink.received = {}
    RecordSink.attempts = {}
    return build_registry(extra_plugins=[("test", TestPlugin())], autoload=False)


def plan_for(registry: Registry, pipeline: dict[str, Any], tmp_path: Path, **top: Any) -> Any:
    data = {"state_dir": str(tmp_path / "state"), **top, "pipelines": {"p": pipeline}}
    return load_config_data(data, registry, source="test", config_dir=tmp_path)


async def run_until(runner: Runner, condition: Any, timeout: float = 5.0) -> bool:
    task = asyncio.create_task(runner.run())
    deadline = asyncio.get_running_loop().time() + timeout
    while not condition():
        if asyncio.get_running_loop().time() > deadline:
            break
        await asyncio.sleep(0.01)
    runner.request_stop()
    return await task


def dead_letters(tmp_path: Path) -> list[dict[str, Any]]:
    path = tmp_path / "state" / "dead-letter.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_every_event_reaches_every_sink_in_order(registry: Registry, tmp_path: Path) -> None:
    plan = plan_for(
        registry,
        {
            "sources": [{"type": "script", "count": 50}],
            "sinks": [{"type": "record"}, {"type": "record"}],
        },
        tmp_path,
    )
    runner = Runner(plan, registry)
    total = lambda: sum(len(v) for v in RecordSink.received.values())  # noqa: E731
    clean = asyncio.run(run_until(runner, lambda: total() == 100))
    expected = [f"/in/f{i}" for i in range(50)]
    assert RecordSink.received == {"p.sinks[0]": expected, "p.sinks[1]": expected}
    assert clean


def test_full_queue_slows_the_source_instead_of_dropping(
    registry: Registry, tmp_path: Path
) -> None:
    plan = plan_for(
        registry,
        {
            "sources": [{"type": "script", "count": 40}],
            "sinks": [{"type": "record", "delay": 0.02, "queue_size": 2}],
        },
        tmp_path,
    )
    runner = Runner(plan, registry)

    async def scenario() -> tuple[int, int, bool]:
        task = asyncio.create_task(runner.run())
        await asyncio.sleep(0.2)  # ~10 deliveries' worth of time
        emitted_early = len(ScriptSource.emitted)
        while len(RecordSink.received.get("p.sinks[0]", [])) < 40:
            await asyncio.sleep(0.02)
        runner.request_stop()
        return emitted_early, len(RecordSink.received["p.sinks[0]"]), await task

    emitted_early, delivered, clean = asyncio.run(scenario())
    # The source may run ahead of the sink only by the queue size plus the one in flight.
    assert emitted_early <= len(RecordSink.received.get("p.sinks[0]", [])) + 4
    assert emitted_early < 40
    assert delivered == 40
    assert clean


def test_failing_delivery_is_retried_then_dead_lettered_while_others_flow(
    registry: Registry, tmp_path: Path
) -> None:
    plan = plan_for(
        registry,
        {
            "sources": [{"type": "script", "count": 5}],
            "sinks": [
                {
                    "type": "record",
                    "fail_paths": ["/in/f1", "/in/f3"],
                    "fail_times": 2,
                    "max_attempts": 3,
                    "retry_backoff": "1ms",
                },
                {
                    "type": "record",
                    "fail_paths": ["/in/f2"],
                    "max_attempts": 2,
                    "retry_backoff": "1ms",
                },
            ],
        },
        tmp_path,
    )
    runner = Runner(plan, registry)
    asyncio.run(run_until(runner, lambda: len(RecordSink.received.get("p.sinks[1]", [])) == 4))
    # f1 and f3 fail twice then succeed on the third attempt: delivered, not dead-lettered.
    assert RecordSink.received["p.sinks[0]"] == [f"/in/f{i}" for i in range(5)]
    assert RecordSink.attempts["p.sinks[0]:/in/f1"] == 3
    # f2 always fails on the second sink: two attempts, then the dead-letter file.
    assert RecordSink.received["p.sinks[1]"] == ["/in/f0", "/in/f1", "/in/f3", "/in/f4"]
    assert RecordSink.attempts["p.sinks[1]:/in/f2"] == 2
    [letter] = dead_letters(tmp_path)
    assert letter["component"] == "p.sinks[1]"
    assert letter["event"]["data"]["path"] == "/in/f2"
    assert letter["reason"] == "ConnectionError: refused for /in/f2 (after 2 attempts)"


def test_a_stage_that_raises_dead_letters_that_event_only(
    registry: Registry, tmp_path: Path
) -> None:
    plan = plan_for(
        registry,
        {
            "sources": [{"type": "script", "count": 4}],
            "stages": [{"type": "explode", "path": "/in/f2"}],
            "sinks": [{"type": "record"}],
        },
        tmp_path,
    )
    runner = Runner(plan, registry)
    asyncio.run(run_until(runner, lambda: len(RecordSink.received.get("p.sinks[0]", [])) == 3))
    assert RecordSink.received["p.sinks[0]"] == ["/in/f0", "/in/f1", "/in/f3"]
    [letter] = dead_letters(tmp_path)
    assert letter["component"] == "p.stages[0]"
    assert letter["reason"] == "ValueError: cannot handle this one"


def test_shutdown_flushes_debounce_and_drains_the_queues(
    registry: Registry, tmp_path: Path
) -> None:
    plan = plan_for(
        registry,
        {
            "sources": [{"type": "script", "count": 20}],
            "stages": [{"type": "debounce", "quiet": "1h"}],
            "sinks": [{"type": "record", "delay": 0.005}],
        },
        tmp_path,
    )
    runner = Runner(plan, registry)
    clean = asyncio.run(run_until(runner, lambda: len(ScriptSource.emitted) == 20))
    # Nothing had left the hour-long debounce; stopping flushed all 20 and delivered them.
    assert RecordSink.received["p.sinks[0]"] == [f"/in/f{i}" for i in range(20)]
    assert clean
    assert dead_letters(tmp_path) == []


def test_events_left_at_the_deadline_are_dead_lettered_not_lost(
    registry: Registry, tmp_path: Path
) -> None:
    plan = plan_for(
        registry,
        {
            "sources": [{"type": "script", "count": 10}],
            "sinks": [{"type": "record", "delay": 0.5, "queue_size": 100}],
        },
        tmp_path,
        shutdown_timeout="200ms",
    )
    runner = Runner(plan, registry)
    clean = asyncio.run(run_until(runner, lambda: len(ScriptSource.emitted) == 10))
    delivered = RecordSink.received.get("p.sinks[0]", [])
    letters = [d["event"]["data"]["path"] for d in dead_letters(tmp_path)]
    assert not clean
    assert sorted(delivered + letters) == sorted(f"/in/f{i}" for i in range(10))
    assert all(
        d["reason"] == "not delivered before the shutdown deadline" for d in dead_letters(tmp_path)
    )


def test_lifecycle_hooks_are_called(registry: Registry, tmp_path: Path) -> None:
    calls: list[tuple[str, Any]] = []

    class Observer:
        @hookimpl
        def pipeline_startup(self, pipelines: list[str]) -> None:
            calls.append(("startup", list(pipelines)))

        @hookimpl
        def pipeline_shutdown(self, clean: bool) -> None:
            calls.append(("shutdown", clean))

        @hookimpl
        def pipeline_event_dead_lettered(self, event: Event, component: str) -> None:
            calls.append(("dead", (event.path, component)))

    registry.manager.register(Observer())
    plan = plan_for(
        registry,
        {
            "sources": [{"type": "script", "count": 2}],
            "sinks": [{"type": "record", "fail_paths": ["/in/f0"], "max_attempts": 1}],
        },
        tmp_path,
    )
    runner = Runner(plan, registry)
    asyncio.run(run_until(runner, lambda: len(RecordSink.received.get("p.sinks[0]", [])) == 1))
    assert calls == [("startup", ["p"]), ("dead", ("/in/f0", "p.sinks[0]")), ("shutdown", True)]
