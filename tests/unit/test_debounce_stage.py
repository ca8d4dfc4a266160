"""The debounce stage, in virtual time: per-path quiet period, last event wins."""

from __future__ import annotations

import asyncio
from pathlib import Path

import structlog

from pipeline import ComponentContext, Event, EventKind, FakeClock
from pipeline.stages.debounce import DebounceStage


def build(tmp_path: Path, clock: FakeClock, quiet: str) -> DebounceStage:
    options = DebounceStage.Options.model_validate({"quiet": quiet})
    context = ComponentContext("t", "t.stages[0]", tmp_path, None, structlog.get_logger(), clock)
    return DebounceStage(options, context)


def ev(path: str, kind: EventKind = EventKind.MODIFIED) -> Event:
    return Event(kind, path, "t/test")


def test_a_burst_on_one_path_becomes_its_last_event_after_the_quiet_period(tmp_path: Path) -> None:
    async def scenario() -> None:
        clock = FakeClock()
        stage = build(tmp_path, clock, "200ms")
        out: list[Event] = []

        async def emit(event: Event) -> None:
            out.append(event)

        timer = asyncio.create_task(stage.run(emit))
        for kind in (EventKind.CREATED, EventKind.MODIFIED, EventKind.MODIFIED):
            await stage.process(ev("/a", kind), emit)
            await clock.advance(0.1)  # never quiet for 200ms
        last = ev("/a", EventKind.CLOSED_WRITE)
        await stage.process(last, emit)
        await clock.advance(0.199)
        assert out == []
        await clock.advance(0.002)
        assert out == [last]
        timer.cancel()

    asyncio.run(scenario())


def test_paths_are_independent(tmp_path: Path) -> None:
    async def scenario() -> None:
        clock = FakeClock()
        stage = build(tmp_path, clock, "1s")
        out: list[str] = []

        async def emit(event: Event) -> None:
            out.append(event.path)

        timer = asyncio.create_task(stage.run(emit))
        await stage.process(ev("/a"), emit)
        await clock.advance(0.5)
        await stage.process(ev("/b"), emit)
        for _ in range(5):  # /b stays busy; /a must not wait for it
            await clock.advance(0.4)
            await stage.process(ev("/b"), emit)
        assert out == ["/a"]
        await clock.advance(1.0)
        assert out == ["/a", "/b"]
        assert stage.pending == 0
        timer.cancel()

    asyncio.run(scenario())


def test_overflow_passes_at_once_and_flush_emits_everything_held(tmp_path: Path) -> None:
    async def scenario() -> None:
        clock = FakeClock()
        stage = build(tmp_path, clock, "1h")
        out: list[str] = []

        async def emit(event: Event) -> None:
            out.append(event.path)

        for path in ("/x", "/y", "/x"):
            await stage.process(ev(path), emit)
        await stage.process(Event(EventKind.OVERFLOW, "/root", "t/test", True), emit)
        assert out == ["/root"]
        await stage.flush(emit)
        assert out == ["/root", "/y", "/x"]  # in last-seen order

    asyncio.run(scenario())
