"""The live tail: a bounded ring of the latest events, read by any number of followers.

The pipeline only appends (never waits); a follower that reads too slowly finds that the
oldest events it had not read yet were overwritten, and is told how many it missed.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import itertools

from pipeline.event import Event

CAPACITY = 1000
"""Events kept for followers that fall behind and for a page that just opened."""


class EventTail:
    """The latest `capacity` events that left the stages, numbered from 1 in arrival order."""

    def __init__(self, capacity: int = CAPACITY) -> None:
        self._ring: collections.deque[Event] = collections.deque(maxlen=capacity)
        self.latest = 0
        """Number of the newest event (0 before the first)."""
        self._changed: asyncio.Event | None = None
        self.closed = False

    def tap(self, pipeline: str, event: Event) -> None:
        """Record `event`; the `Runner.add_tap` callback, on the pipeline's hot path."""
        self._ring.append(event)
        self.latest += 1
        if self._changed is not None:
            self._changed.set()
            self._changed = None

    def since(self, cursor: int) -> tuple[list[tuple[int, Event]], int]:
        """Events numbered after `cursor` still held, and how many after it are gone."""
        oldest = self.latest - len(self._ring) + 1
        start = max(cursor + 1, oldest)
        missed = max(0, oldest - cursor - 1)
        held = itertools.islice(self._ring, start - oldest, None)
        return list(zip(itertools.count(start), held, strict=False)), missed

    async def wait_after(self, cursor: int, timeout: float) -> None:
        """Return once an event numbered after `cursor` exists, on `close`, or at `timeout`."""
        if self.latest > cursor or self.closed:
            return
        if self._changed is None:
            self._changed = asyncio.Event()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._changed.wait(), timeout)

    def close(self) -> None:
        """Wake every follower for good: the endpoint is stopping."""
        self.closed = True
        if self._changed is not None:
            self._changed.set()
            self._changed = None
