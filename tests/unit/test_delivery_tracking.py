"""A delivery-tracking source learns when each of its events is settled, and how."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from pipeline import ComponentOptions, Emit, Event, EventKind, Source, hookimpl
from pipeline.engine import Runner
from pipeline.registry import Registry, build_registry
from tests.unit.test_engine import ExplodeStage, RecordSink, plan_for, run_until


class AckingOptions(ComponentOptions):
    count: int = 5
    folder: str = "/in"


class AckingSource(Source[AckingOptions]):
    """Emits `count` events and records every settlement, like a broker consumer would."""

    type_name = "acking"
    Options = AckingOptions
    tracks_delivery = True
    settlements: list[tuple[str, bool]] = []  # noqa: RUF012 - shared with the test on purpose

    async def run(self, emit: Emit) -> None:
        for i in range(self.options.count):
            await emit(Event(EventKind.CREATED, f"{self.options.folder}/f{i}", "t/acking"))
        await asyncio.Event().wait()

    def settled(self, event: Event, delivered: bool) -> None:
        AckingSource.settlements.append((event.path, delivered))


class AckingPlugin:
    @hookimpl
    def pipeline_components(self) -> list[type[Any]]:
        return [AckingSource, RecordSink, ExplodeStage]


@pytest.fixture
def registry() -> Registry:
    AckingSource.settlements = []
    RecordSink.received = {}
    RecordSink.attempts = {}
    return build_registry(extra_plugins=[("test", AckingPlugin())], autoload=False)


def settled_by_path() -> dict[str, bool]:
    result = dict(AckingSource.settlements)
    assert len(result) == len(AckingSource.settlements), "an event was settled twice"
    return result


def settled_early(registry: Registry, plan: Any, *, early: float, count: int) -> int:
    """Run `plan` until `count` events settled; how many had settled `early` s in."""
    seen: list[int] = []

    async def scenario() -> bool:
        task = asyncio.create_task(
            run_until(Runner(plan, registry), lambda: len(settled_by_path()) == count)
        )
        await asyncio.sleep(early)
        seen.append(len(AckingSource.settlements))
        return await task

    assert asyncio.run(scenario())
    return seen[0]


def test_an_event_settles_only_after_every_sink_delivered_it(
    registry: Registry, tmp_path: Path
) -> None:
    plan = plan_for(
        registry,
        {
            "sources": [{"type": "acking", "count": 3}],
            "sinks": [{"type": "record"}, {"type": "record", "delay": 0.2}],
        },
        tmp_path,
    )
    # At 0.1 s the fast sink has them all, the slow one none yet.
    assert settled_early(registry, plan, early=0.1, count=3) == 0
    assert settled_by_path() == {"/in/f0": True, "/in/f1": True, "/in/f2": True}


def test_a_dead_lettered_or_failed_event_settles_as_not_delivered(
    registry: Registry, tmp_path: Path
) -> None:
    plan = plan_for(
        registry,
        {
            "sources": [{"type": "acking", "count": 4}],
            "stages": [{"type": "explode", "path": "/in/f1"}],
            "sinks": [
                {
                    "type": "record",
                    "fail_paths": ["/in/f2"],
                    "max_attempts": 2,
                    "retry_backoff": "1ms",
                }
            ],
        },
        tmp_path,
    )
    asyncio.run(run_until(Runner(plan, registry), lambda: len(settled_by_path()) == 4))
    assert settled_by_path() == {
        "/in/f0": True,
        "/in/f1": False,  # the stage raised on it
        "/in/f2": False,  # the sink gave up on it
        "/in/f3": True,
    }


def test_filtered_events_settle_at_once_and_a_spool_settles_on_disk(
    registry: Registry, tmp_path: Path
) -> None:
    plan = plan_for(
        registry,
        {
            "sources": [{"type": "acking", "count": 4}],
            "stages": [{"type": "filter", "include": ["/in/f[01]"]}],
            "sinks": [
                {
                    "type": "record",
                    "spool": True,
                    "fail_paths": ["/in/f0", "/in/f1"],
                    "max_attempts": 1000,
                    "retry_backoff": "50ms",
                }
            ],
        },
        tmp_path,
        shutdown_timeout="100ms",
    )
    asyncio.run(run_until(Runner(plan, registry), lambda: len(settled_by_path()) == 4))
    # The sink never delivered, but its spool holds both events durably.
    assert settled_by_path() == {p: True for p in ("/in/f0", "/in/f1", "/in/f2", "/in/f3")}
    assert RecordSink.received == {}


class ClosingSource(AckingSource):
    """Records whether it was already closed when an event was settled."""

    type_name = "closing"
    closed = False
    settled_after_close = 0

    async def close(self) -> None:
        ClosingSource.closed = True

    def settled(self, event: Event, delivered: bool) -> None:
        if ClosingSource.closed:
            ClosingSource.settled_after_close += 1
        super().settled(event, delivered)


class ClosingPlugin:
    @hookimpl
    def pipeline_components(self) -> list[type[Any]]:
        return [ClosingSource, RecordSink]


def test_a_tracking_source_stays_open_until_the_drain_settled_everything(tmp_path: Path) -> None:
    AckingSource.settlements = []
    RecordSink.received, RecordSink.attempts = {}, {}
    ClosingSource.closed, ClosingSource.settled_after_close = False, 0
    registry = build_registry(extra_plugins=[("c", ClosingPlugin())], autoload=False)
    plan = plan_for(
        registry,
        {
            "sources": [{"type": "closing", "count": 20}],
            "sinks": [{"type": "record", "delay": 0.01}],
        },
        tmp_path,
    )
    # Stop as soon as everything was emitted: the drain delivers (and settles) the rest.
    asyncio.run(run_until(Runner(plan, registry), lambda: len(RecordSink.attempts) >= 1))
    assert len(AckingSource.settlements) == 20
    assert ClosingSource.settled_after_close == 0
    assert ClosingSource.closed


def test_events_a_debounce_holds_settle_once_what_they_became_is_delivered(
    registry: Registry, tmp_path: Path
) -> None:
    plan = plan_for(
        registry,
        {
            "sources": [{"type": "acking", "count": 3}],
            "stages": [{"type": "debounce", "quiet": "400ms"}],
            "sinks": [{"type": "record"}],
        },
        tmp_path,
    )
    # At 0.2 s they are held in the window: a crash then must not lose them.
    assert settled_early(registry, plan, early=0.2, count=3) == 0
    assert settled_by_path() == {"/in/f0": True, "/in/f1": True, "/in/f2": True}


def test_a_batch_that_fails_settles_every_event_in_it_as_not_delivered(
    registry: Registry, tmp_path: Path
) -> None:
    plan = plan_for(
        registry,
        {
            "sources": [{"type": "acking", "count": 3}],
            "stages": [
                {"type": "debounce", "quiet": "50ms", "batch": True, "batch_window": "100ms"}
            ],
            "sinks": [{"type": "record", "fail_paths": ["/in"], "max_attempts": 1}],
        },
        tmp_path,
    )
    asyncio.run(run_until(Runner(plan, registry), lambda: len(settled_by_path()) == 3))
    assert settled_by_path() == {"/in/f0": False, "/in/f1": False, "/in/f2": False}


def test_files_the_ready_stage_waits_on_settle_once_passed_on_or_gone(
    registry: Registry, tmp_path: Path
) -> None:
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    for name in ("f0", "f1"):
        (inbox / name).write_text("complete")  # f2 never exists: nothing to pass on
    plan = plan_for(
        registry,
        {
            "sources": [{"type": "acking", "count": 3, "folder": str(inbox)}],
            "stages": [
                {"type": "ready", "mode": "stable", "stable_for": "1s", "poll_interval": "50ms"}
            ],
            "sinks": [{"type": "record"}],
        },
        tmp_path,
    )
    seen_early: list[tuple[str, bool]] = []

    async def scenario() -> bool:
        task = asyncio.create_task(
            run_until(Runner(plan, registry), lambda: len(settled_by_path()) == 3)
        )
        while not AckingSource.settlements and not task.done():
            await asyncio.sleep(0.01)
        seen_early.extend(AckingSource.settlements)  # f2 is gone; f0 and f1 still settle
        return await task

    assert asyncio.run(scenario())
    assert seen_early == [(str(inbox / "f2"), True)]
    assert settled_by_path() == {str(inbox / f"f{i}"): True for i in range(3)}
    assert sorted(RecordSink.received["p.sinks[0]"]) == [str(inbox / "f0"), str(inbox / "f1")]
