"""The debounce stage, in virtual time: quiet period, max_wait, coalescing and batches."""

from __future__ import annotations

import asyncio
import gc
import tracemalloc
from collections.abc import Awaitable, Callable
from pathlib import Path
from types import MappingProxyType
from typing import Any

import pytest
import structlog
from pydantic import ValidationError

from pipeline import ComponentContext, Event, EventKind, FakeClock
from pipeline.stages.debounce import DebounceStage

K = EventKind


def build(tmp_path: Path, clock: FakeClock, quiet: str = "200ms", **options: Any) -> DebounceStage:
    options = DebounceStage.Options.model_validate({"quiet": quiet, **options})
    context = ComponentContext("t", "t.stages[0]", tmp_path, None, structlog.get_logger(), clock)
    return DebounceStage(options, context)


def ev(path: str, kind: EventKind = K.MODIFIED, src: str | None = None) -> Event:
    return Event(kind, path, "t/test", src_path=src)


Scenario = Callable[[DebounceStage, FakeClock, list[Event]], Awaitable[None]]


def play(tmp_path: Path, scenario: Scenario, quiet: str = "200ms", **options: Any) -> list[Event]:
    """Run `scenario` against a stage whose timer runs on a fake clock; return what it emitted."""
    out: list[Event] = []

    async def main() -> None:
        clock = FakeClock()
        stage = build(tmp_path, clock, quiet, **options)

        async def emit(event: Event) -> None:
            out.append(event)

        timer = asyncio.create_task(stage.run(emit))
        await asyncio.sleep(0)
        await scenario(stage, clock, out)
        timer.cancel()

    asyncio.run(main())
    return out


async def feed(stage: DebounceStage, *events: Event) -> None:
    async def never(event: Event) -> None:
        raise AssertionError(f"process emitted {event} directly")

    for event in events:
        await stage.process(event, never)


def test_a_burst_on_one_path_becomes_its_last_event_after_the_quiet_period(tmp_path: Path) -> None:
    last = ev("/a", K.CLOSED_WRITE)

    async def scenario(stage: DebounceStage, clock: FakeClock, out: list[Event]) -> None:
        for kind in (K.CREATED, K.MODIFIED, K.MODIFIED):
            await feed(stage, ev("/a", kind))
            await clock.advance(0.1)  # never quiet for 200ms
        await feed(stage, last)
        await clock.advance(0.199)
        assert out == []
        await clock.advance(0.002)
        assert out == [last]  # the very event, untouched: closed_write wins over created

    play(tmp_path, scenario)


def test_paths_are_independent(tmp_path: Path) -> None:
    async def scenario(stage: DebounceStage, clock: FakeClock, out: list[Event]) -> None:
        await feed(stage, ev("/a"))
        await clock.advance(0.5)
        await feed(stage, ev("/b"))
        for _ in range(5):  # /b stays busy; /a must not wait for it
            await clock.advance(0.4)
            await feed(stage, ev("/b"))
        assert [e.path for e in out] == ["/a"]
        await clock.advance(1.0)
        assert [e.path for e in out] == ["/a", "/b"]
        assert stage.pending == 0

    play(tmp_path, scenario, quiet="1s", max_wait="1h")


def test_max_wait_fires_a_path_that_never_goes_quiet(tmp_path: Path) -> None:
    async def scenario(stage: DebounceStage, clock: FakeClock, out: list[Event]) -> None:
        for _ in range(25):  # an event every 100ms for 2.5s: never quiet for 200ms
            await feed(stage, ev("/log"))
            await clock.advance(0.1)
        # Fired at 1s and 2s (max_wait after each window opened), not held forever.
        assert [e.kind for e in out] == [K.MODIFIED, K.MODIFIED]
        await clock.advance(0.2)
        assert len(out) == 3  # and the tail once it went quiet

    play(tmp_path, scenario, max_wait="1s")


def test_max_wait_defaults_to_ten_times_quiet(tmp_path: Path) -> None:
    async def scenario(stage: DebounceStage, clock: FakeClock, out: list[Event]) -> None:
        for _ in range(19):
            await feed(stage, ev("/log"))
            await clock.advance(0.1)
        assert out == []  # 1.9s: under 10 x 200ms
        await feed(stage, ev("/log"))
        await clock.advance(0.1)
        assert len(out) == 1

    play(tmp_path, scenario)


@pytest.mark.parametrize(
    ("events", "expected"),
    [
        (
            [("/a", K.CREATED), ("/a", K.MODIFIED), ("/a", K.CLOSED_WRITE)],
            [("/a", K.CLOSED_WRITE, None)],
        ),
        ([("/a", K.CREATED), ("/a", K.MODIFIED), ("/a", K.ATTRIB)], [("/a", K.CREATED, None)]),
        (
            [("/a", K.MODIFIED), ("/a", K.CLOSED_WRITE), ("/a", K.ATTRIB)],
            [("/a", K.CLOSED_WRITE, None)],
        ),
        ([("/a", K.CLOSED_WRITE), ("/a", K.MODIFIED)], [("/a", K.MODIFIED, None)]),
        (
            [("/a", K.CREATED), ("/a", K.CLOSED_WRITE), ("/a", K.MODIFIED)],
            [("/a", K.CREATED, None)],
        ),
        ([("/a", K.OPENED), ("/a", K.ATTRIB), ("/a", K.CLOSED_NOWRITE)], [("/a", K.ATTRIB, None)]),
        ([("/a", K.OPENED), ("/a", K.CLOSED_NOWRITE)], [("/a", K.CLOSED_NOWRITE, None)]),
        ([("/a", K.CREATED), ("/a", K.MODIFIED), ("/a", K.DELETED)], []),
        ([("/a", K.MODIFIED), ("/a", K.DELETED)], [("/a", K.DELETED, None)]),
        (
            [("/a", K.DELETED), ("/a", K.CREATED), ("/a", K.CLOSED_WRITE)],
            [("/a", K.CLOSED_WRITE, None)],
        ),
        ([("/a", K.DELETED), ("/a", K.CREATED)], [("/a", K.MODIFIED, None)]),
        (
            [("/b", K.MOVED, "/a"), ("/b", K.MODIFIED), ("/b", K.CLOSED_WRITE)],
            [("/b", K.MOVED, "/a")],
        ),
        ([("/b", K.MOVED, "/a"), ("/b", K.DELETED)], [("/a", K.DELETED, None)]),
        ([("/b", K.MOVED, None), ("/b", K.DELETED)], []),
        (
            [("/a.tmp", K.CREATED), ("/a.tmp", K.CLOSED_WRITE), ("/a", K.MOVED, "/a.tmp")],
            [("/a", K.MOVED, "/a.tmp")],
        ),
        ([("/b", K.MOVED, "/a"), ("/c", K.MOVED, "/b")], [("/c", K.MOVED, "/a")]),
        ([("/b", K.MODIFIED), ("/b", K.MOVED, "/a")], [("/b", K.MOVED, "/a")]),
    ],
)
def test_coalescing_table(
    tmp_path: Path,
    events: list[tuple[str, EventKind] | tuple[str, EventKind, str | None]],
    expected: list[tuple[str, EventKind, str | None]],
) -> None:
    async def scenario(stage: DebounceStage, clock: FakeClock, out: list[Event]) -> None:
        for item in events:
            await feed(stage, ev(*item))
            await clock.advance(0.01)
        await clock.advance(1)
        assert stage.pending == 0

    out = play(tmp_path, scenario)
    assert [(e.path, e.kind, e.src_path) for e in out] == expected


def test_the_emitted_event_keeps_the_last_events_meta_and_id(tmp_path: Path) -> None:
    last = Event(K.CLOSED_WRITE, "/a", "t/test", meta={"root": "/", "size": 3})

    async def scenario(stage: DebounceStage, clock: FakeClock, out: list[Event]) -> None:
        await feed(stage, ev("/a", K.CREATED), Event(K.MODIFIED, "/a", "t/test"), last)
        await clock.advance(1)

    [out] = play(tmp_path, scenario)
    assert out is last
    moved = Event(K.MOVED, "/b", "t/test", src_path="/a", meta={"size": 9})

    async def moves(stage: DebounceStage, clock: FakeClock, out: list[Event]) -> None:
        await feed(stage, moved, Event(K.CLOSED_WRITE, "/b", "t/test", meta={"size": 10}))
        await clock.advance(1)

    [out] = play(tmp_path, moves)
    assert (out.kind, out.src_path, dict(out.meta)) == (K.MOVED, "/a", {"size": 10})


def test_overflow_passes_at_once_and_flush_emits_everything_held(tmp_path: Path) -> None:
    async def scenario() -> None:
        stage = build(tmp_path, FakeClock(), "1h")
        out: list[str] = []

        async def emit(event: Event) -> None:
            out.append(event.path)

        for path in ("/x", "/y", "/x"):
            await stage.process(ev(path), emit)
        await stage.process(Event(K.OVERFLOW, "/root", "t/test", True), emit)
        assert out == ["/root"]
        await stage.flush(emit)
        assert out == ["/root", "/y", "/x"]  # in last-seen order

    asyncio.run(scenario())


def test_batch_mode_collects_settled_paths_into_one_event(tmp_path: Path) -> None:
    meta = MappingProxyType({"root": "/in"})

    async def scenario(stage: DebounceStage, clock: FakeClock, out: list[Event]) -> None:
        await stage.process(Event(K.CLOSED_WRITE, "/in/a/1.csv", "t/test", meta=meta), _fail)
        await asyncio.sleep(0)  # let the timer see it before time moves
        await clock.advance(0.3)  # /in/a/1.csv settled at 0.2: the window runs until 1.2
        await stage.process(Event(K.CREATED, "/in/b/2.csv", "t/test", meta=meta), _fail)
        await stage.process(
            Event(K.MOVED, "/in/a/3.csv", "t/test", False, "/in/a/3.tmp", meta=meta), _fail
        )
        await clock.advance(0.85)
        assert out == []
        await clock.advance(0.1)
        [batch] = out
        assert (batch.kind, batch.path, batch.is_dir) == (K.BATCH, "/in", True)
        assert dict(batch.meta) == {
            "paths": ["/in/a/1.csv", "/in/b/2.csv", "/in/a/3.csv"],
            "kinds": ["closed_write", "created", "moved"],
            "count": 3,
            "root": "/in",
        }
        await stage.process(Event(K.CLOSED_WRITE, "/in/b/4.csv", "t/test", meta=meta), _fail)
        await asyncio.sleep(0)
        await clock.advance(0.2 + 1.0)
        assert [e.meta["paths"] for e in out[1:]] == [["/in/b/4.csv"]]
        assert out[1].path == "/in/b"  # one path: its folder

    play(tmp_path, scenario, batch=True, batch_window="1s")


def test_batch_max_passes_a_full_batch_at_once_and_flush_passes_the_rest(tmp_path: Path) -> None:
    async def scenario(stage: DebounceStage, clock: FakeClock, out: list[Event]) -> None:
        await feed(stage, *(ev(f"/d/{i}") for i in range(5)))
        await clock.advance(0.2)
        assert [e.meta["count"] for e in out] == [2, 2]
        held: list[Event] = []

        async def keep(event: Event) -> None:
            held.append(event)

        await stage.flush(keep)
        assert [e.meta["paths"] for e in held] == [["/d/4"]]

    play(tmp_path, scenario, batch=True, batch_max=2)


async def _fail(event: Event) -> None:
    raise AssertionError(f"emitted at once: {event}")


def test_max_wait_must_cover_quiet(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match=r"max_wait must be at least quiet \(1s\)"):
        build(tmp_path, FakeClock(), "1s", max_wait="500ms")


def test_memory_per_pending_path_stays_under_700_bytes(tmp_path: Path) -> None:
    """A million pending paths must fit in well under 1 GB, events included."""
    count = 20_000
    meta = MappingProxyType({"root": "/data/landing"})

    async def scenario() -> int:
        stage = build(tmp_path, FakeClock(), "1h")
        gc.collect()
        tracemalloc.start()
        try:
            before = tracemalloc.get_traced_memory()[0]
            for i in range(count):
                path = f"/data/landing/incoming/2026/11/24/batch-{i:07d}/part-{i:05d}.csv"
                await stage.process(
                    Event(K.CLOSED_WRITE, path, "landing/inotify", meta=meta), _fail
                )
            return tracemalloc.get_traced_memory()[0] - before
        finally:
            tracemalloc.stop()

    used = asyncio.run(scenario())
    assert used / count < 700, f"{used / count:.0f} bytes per pending path"
