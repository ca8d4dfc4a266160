"""The live tail's ring: the pipeline never waits; a slow reader skips the oldest events
and learns how many it missed."""

from __future__ import annotations

import asyncio
import time

from pipeline.event import Event
from pipeline.observe.tail import EventTail
from pipeline.testing import make_event


def paths(entries: list[tuple[int, Event]]) -> list[str]:
    return [event.path for _, event in entries]


def test_a_reader_gets_every_event_after_its_cursor_in_order() -> None:
    tail = EventTail(capacity=10)
    for number in range(3):
        tail.tap("p", make_event("created", f"/in/{number}"))
    entries, missed = tail.since(0)
    assert [n for n, _ in entries] == [1, 2, 3]
    assert paths(entries) == ["/in/0", "/in/1", "/in/2"]
    assert missed == 0
    assert tail.since(3) == ([], 0)


def test_a_slow_reader_skips_the_oldest_and_is_told_how_many() -> None:
    tail = EventTail(capacity=5)
    for number in range(12):
        tail.tap("p", make_event("created", f"/in/{number}"))
    entries, missed = tail.since(2)
    assert missed == 5  # events 3..7 were overwritten before this reader came back
    assert paths(entries) == [f"/in/{n}" for n in range(7, 12)]


def test_recording_never_waits_even_with_nobody_reading() -> None:
    tail = EventTail(capacity=100)
    event = make_event("created", "/in/a")
    started = time.perf_counter()
    for _ in range(100_000):
        tail.tap("p", event)
    assert time.perf_counter() - started < 1.0
    assert tail.latest == 100_000
    assert len(tail.since(0)[0]) == 100


def test_a_waiting_reader_wakes_on_a_new_event_and_on_close() -> None:
    async def scenario() -> tuple[float, float]:
        tail = EventTail()
        loop = asyncio.get_running_loop()
        started = loop.time()
        waiter = asyncio.create_task(tail.wait_after(0, timeout=30))
        await asyncio.sleep(0.05)
        tail.tap("p", make_event("created", "/in/a"))
        await waiter
        woke = loop.time() - started
        closing = asyncio.create_task(tail.wait_after(1, timeout=30))
        await asyncio.sleep(0.05)
        tail.close()
        await closing
        return woke, loop.time() - started

    woke, closed = asyncio.run(scenario())
    assert woke < 5 and closed < 5
