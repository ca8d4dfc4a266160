"""Reads an inotify instance into a bounded in-process buffer whenever it has events.

The kernel queue holds `max_queued_events` (16,384 by default) and drops what comes
after. A source held up by back-pressure (a slow sink) would leave it to fill; this
reader keeps moving events out of it into memory meanwhile (up to `limit` bytes, about
40 bytes an event), so that a burst costs memory rather than an overflow and a rescan.
Past `limit` it stops reading, and the kernel queue takes the rest.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Sequence

from pipeline.linux import inotify as api

BUFFER_LIMIT = 64 << 20
"""Bytes of events held in memory at most: about 1.5 million events."""


def _wake(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


class EventReader:
    """The events of one inotify descriptor, in order: buffered ones first."""

    def __init__(self, fd: int, limit: int = BUFFER_LIMIT) -> None:
        self.fd = fd
        self.limit = limit
        self._chunks: deque[bytes] = deque()
        self._size = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._reading = False
        self._waiting: asyncio.Future[None] | None = None

    def start(self) -> None:
        """Read whenever the descriptor is readable (until `stop`)."""
        self._loop = asyncio.get_running_loop()
        self._resume()

    def stop(self) -> None:
        if self._reading and self._loop is not None:
            self._loop.remove_reader(self.fd)
        self._reading = False

    def _resume(self) -> None:
        if not self._reading and self._loop is not None:
            self._loop.add_reader(self.fd, self._on_readable)
            self._reading = True

    def _on_readable(self) -> None:
        while self._size < self.limit:
            data = api.read_events(self.fd)
            if not data:
                break
            self._chunks.append(data)
            self._size += len(data)
        else:
            self.stop()  # full: the kernel queue holds the rest until the buffer drains
        if self._waiting is not None:
            _wake(self._waiting)

    def next(self) -> bytes:
        """The next events (several records), or b"" when none are pending anywhere."""
        if self._chunks:
            data = self._chunks.popleft()
            self._size -= len(data)
            if not self._reading and self._size < self.limit // 2:
                self._resume()
            return data
        return api.read_events(self.fd)

    def pending(self) -> list[bytes]:
        """Take everything not handled yet: the buffer, then the kernel queue (at close)."""
        chunks = list(self._chunks)
        self._chunks.clear()
        self._size = 0
        while data := api.read_events(self.fd):
            chunks.append(data)
        return chunks

    async def wait(self, deadline: float | None, also: Sequence[int] = ()) -> None:
        """Until events are pending (here, or on a descriptor of `also`), or `deadline`
        (loop time); descriptors below 0 in `also` are ignored."""
        if self._chunks:
            return
        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()
        self._waiting = future
        others = [fd for fd in also if fd >= 0]
        for fd in others:
            loop.add_reader(fd, _wake, future)
        timer = loop.call_at(deadline, _wake, future) if deadline is not None else None
        try:
            await future
        finally:
            self._waiting = None
            for fd in others:
                loop.remove_reader(fd)
            if timer is not None:
                timer.cancel()
