"""A sink's delivery queue: in memory, or spooled on disk so accepted events survive a crash.

Both kinds keep events in `shards` independent FIFO lanes; an event's lane is chosen by
its path, so events about one path stay in order even with several delivery tasks.
Every event taken with `get` must be settled with `ack` (delivered or dead-lettered).
An event may come with the receipt of the tracked source event it stems from: a memory
queue closes its share at `ack`, a spool as soon as the event is committed to disk.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import zlib
from collections import deque
from pathlib import Path
from typing import Protocol

import structlog

from pipeline.cloudevents import EventDecodeError, from_json, to_json
from pipeline.event import Event
from pipeline.receipts import Receipt

PREFETCH = 256
RETRY_WRITE = 1.0
"""Seconds between tries to write a spool whose disk was full."""
log = structlog.get_logger("pipeline.spool")


def shard_of(event: Event, shards: int) -> int:
    """The lane of an event: stable across restarts (crc32, not Python's salted hash)."""
    if shards == 1:
        return 0
    return zlib.crc32(event.path.encode("utf-8", "surrogateescape")) % shards


class DeliveryQueue(Protocol):
    """What a SinkWorker needs of its queue."""

    shards: int

    def pending(self) -> int:
        """Events accepted and not yet acknowledged."""
        ...

    async def put(self, event: Event, receipt: Receipt | None = None) -> None:
        """Accept an event; waits while the queue is full."""
        ...

    async def get(self, shard: int) -> tuple[int, Event]:
        """The next event of a lane, with the token `ack` takes."""
        ...

    def get_nowait(self, shard: int) -> tuple[int, Event] | None:
        """The next event of a lane if one is ready, else None."""
        ...

    def ack(self, token: int, delivered: bool = True) -> None:
        """The event is settled (delivered, or dead-lettered if not `delivered`): forget it."""
        ...

    async def join(self) -> None:
        """Return once every accepted event has been acknowledged."""
        ...

    def unsettled(self) -> list[Event]:
        """Events taken but not acknowledged plus those still queued (for a memory queue:
        what shutdown must dead-letter). A spool keeps them on disk and returns []."""
        ...

    def close(self) -> None: ...


class _Waiters:
    """A condition per lane plus one for 'all settled', without asyncio.Condition's locks."""

    def __init__(self, shards: int) -> None:
        self.lanes = [asyncio.Event() for _ in range(shards)]
        self.settled = asyncio.Event()
        self.room = asyncio.Event()


class MemoryQueue:
    """Bounded in-memory lanes; a full queue makes `put` wait (back-pressure)."""

    def __init__(self, size: int, shards: int = 1) -> None:
        self.size = size
        self.shards = shards
        self._lanes: list[deque[tuple[int, Event]]] = [deque() for _ in range(shards)]
        self._taken: dict[int, Event] = {}
        self._receipts: dict[int, Receipt] = {}
        self._next = 0
        self._count = 0
        self._wait = _Waiters(shards)

    def pending(self) -> int:
        return self._count

    async def put(self, event: Event, receipt: Receipt | None = None) -> None:
        while self._count >= self.size:
            self._wait.room.clear()
            await self._wait.room.wait()
        self._next += 1
        if receipt is not None:
            self._receipts[self._next] = receipt
        shard = shard_of(event, self.shards)
        self._lanes[shard].append((self._next, event))
        self._count += 1
        self._wait.lanes[shard].set()

    def get_nowait(self, shard: int) -> tuple[int, Event] | None:
        lane = self._lanes[shard]
        if not lane:
            return None
        token, event = lane.popleft()
        self._taken[token] = event
        return token, event

    async def get(self, shard: int) -> tuple[int, Event]:
        lane = self._lanes[shard]
        while not lane:
            self._wait.lanes[shard].clear()
            await self._wait.lanes[shard].wait()
        token, event = lane.popleft()
        self._taken[token] = event
        return token, event

    def ack(self, token: int, delivered: bool = True) -> None:
        if self._taken.pop(token, None) is None:
            return
        if self._receipts:
            receipt = self._receipts.pop(token, None)
            if receipt is not None:
                receipt.release(delivered)
        self._count -= 1
        self._wait.room.set()
        if self._count == 0:
            self._wait.settled.set()

    async def join(self) -> None:
        while self._count:
            self._wait.settled.clear()
            await self._wait.settled.wait()

    def unsettled(self) -> list[Event]:
        left = list(self._taken.values())
        for lane in self._lanes:
            left.extend(event for _, event in lane)
            lane.clear()
        self._taken.clear()
        self._receipts.clear()  # never settled: the upstream broker redelivers them
        self._count = 0
        return left

    def close(self) -> None:
        pass


class SpoolQueue:
    """Lanes kept in an SQLite file: what was accepted survives a crash or a kill -9.

    Each event is one row, inserted when accepted and deleted when settled; after a
    restart the rows left are delivered first, in their original order. SQLite runs in
    WAL mode with synchronous=NORMAL: a crashed process loses nothing that was committed;
    a crash of the whole machine may lose the last moments (use fsync'ing sinks for that).
    `max_items` bounds the disk used: when reached, `put` waits like a full memory queue.
    """

    def __init__(self, path: Path, sink: str, shards: int = 1, max_items: int = 1_000_000) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.sink = sink
        self.shards = shards
        self.max_items = max_items
        self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS spool ("
            " seq INTEGER PRIMARY KEY AUTOINCREMENT, sink TEXT NOT NULL,"
            " shard INTEGER NOT NULL, event TEXT NOT NULL)"
        )
        self._db.execute("CREATE INDEX IF NOT EXISTS spool_lane ON spool (sink, shard, seq)")
        self._rebalance()
        row = self._db.execute("SELECT COUNT(*) FROM spool WHERE sink = ?", (sink,)).fetchone()
        self._count: int = int(row[0])
        self._fetched: list[deque[tuple[int, Event]]] = [deque() for _ in range(shards)]
        self._last_seq = [0] * shards
        self._taken: dict[int, Event] = {}
        self._wait = _Waiters(shards)
        self._rows: list[tuple[str, int, str]] = []
        """Accepted events not yet on disk: written in one transaction per loop turn."""
        self._events: list[Event] = []
        self._deletes: list[tuple[int]] = []
        self._committing: list[Receipt] = []
        self._scheduled = False
        self._stuck: str | None = None
        """Why the last write failed (a full disk); `put` waits until a retry succeeds."""
        if self._count:
            log.info("delivering events spooled by an earlier run", sink=sink, count=self._count)

    def _rebalance(self) -> None:
        """Rows written with another `concurrency` get the lane this run computes."""
        rows = self._db.execute(
            "SELECT seq, shard, event FROM spool WHERE sink = ? AND shard >= ?",
            (self.sink, self.shards),
        ).fetchall()
        for seq, _, text in rows:
            event = self._decode(seq, text)
            if event is not None:
                shard = shard_of(event, self.shards)
                self._db.execute("UPDATE spool SET shard = ? WHERE seq = ?", (shard, seq))

    def _decode(self, seq: int, text: str) -> Event | None:
        try:
            return from_json(text)
        except EventDecodeError as exc:
            log.error("unreadable spooled event dropped", sink=self.sink, seq=seq, error=str(exc))
            self._db.execute("DELETE FROM spool WHERE seq = ?", (seq,))
            return None

    def _schedule(self) -> None:
        """Write at the end of this loop turn: one transaction for a burst, not one per
        event. Until it is committed an event counts as not yet on disk (a crash then
        loses it as it would just before `put`)."""
        if not self._scheduled:
            self._scheduled = True
            asyncio.get_running_loop().call_soon(self._commit)

    def _commit(self) -> None:
        self._scheduled = False
        if not (self._rows or self._deletes):
            return
        try:
            self._db.execute("BEGIN")
            if self._rows:
                self._db.executemany(
                    "INSERT INTO spool (sink, shard, event) VALUES (?, ?, ?)", self._rows
                )
            if self._deletes:
                self._db.executemany("DELETE FROM spool WHERE seq = ?", self._deletes)
            self._db.execute("COMMIT")
        except sqlite3.Error as exc:
            self._cannot_write(exc)
            return
        if self._stuck is not None:
            log.warning("spool writable again", sink=self.sink, file=str(self.path))
            self._stuck = None
            self._wait.room.set()
        for _, shard, _ in self._rows:
            self._wait.lanes[shard].set()
        self._rows, self._events, self._deletes = [], [], []
        receipts, self._committing = self._committing, []
        for receipt in receipts:
            receipt.release()  # on disk now: as safe as delivered

    def _cannot_write(self, exc: sqlite3.Error) -> None:
        """A full disk (or an I/O error): keep what was accepted in memory, stop taking
        more, and try again every second; nothing accepted is dropped."""
        with contextlib.suppress(sqlite3.Error):
            self._db.execute("ROLLBACK")
        if self._stuck is None:
            log.error(
                "spool cannot be written; holding accepted events in memory and slowing the "
                "sources until it can (free space on the state_dir's disk)",
                sink=self.sink,
                file=str(self.path),
                error=str(exc),
                held=len(self._rows),
            )
        self._stuck = str(exc)
        asyncio.get_running_loop().call_later(RETRY_WRITE, self._schedule)

    def pending(self) -> int:
        return self._count

    async def put(self, event: Event, receipt: Receipt | None = None) -> None:
        while self._count >= self.max_items or self._stuck is not None:
            self._wait.room.clear()
            await self._wait.room.wait()
        self._rows.append((self.sink, shard_of(event, self.shards), to_json(event)))
        self._events.append(event)
        if receipt is not None:
            self._committing.append(receipt)
        self._count += 1
        self._schedule()

    def get_nowait(self, shard: int) -> tuple[int, Event] | None:
        buffer = self._fetched[shard]
        if not buffer:
            self._fetch(shard)
        if not buffer:
            return None
        seq, event = buffer.popleft()
        self._taken[seq] = event
        return seq, event

    def _fetch(self, shard: int) -> int:
        """Read the next rows of a lane into memory; return how many rows were read."""
        rows = self._db.execute(
            "SELECT seq, event FROM spool WHERE sink = ? AND shard = ? AND seq > ?"
            " ORDER BY seq LIMIT ?",
            (self.sink, shard, self._last_seq[shard], PREFETCH),
        ).fetchall()
        for seq, text in rows:
            self._last_seq[shard] = seq
            event = self._decode(seq, text)
            if event is None:
                self._settle()
            else:
                self._fetched[shard].append((seq, event))
        return len(rows)

    async def get(self, shard: int) -> tuple[int, Event]:
        buffer = self._fetched[shard]
        while not buffer:
            if not self._fetch(shard):
                self._wait.lanes[shard].clear()
                await self._wait.lanes[shard].wait()
        seq, event = buffer.popleft()
        self._taken[seq] = event
        return seq, event

    def ack(self, token: int, delivered: bool = True) -> None:
        if self._taken.pop(token, None) is None:
            return
        self._deletes.append((token,))
        self._schedule()
        self._settle()

    def _settle(self) -> None:
        self._count -= 1
        self._wait.room.set()
        if self._count <= 0:
            self._wait.settled.set()

    async def join(self) -> None:
        while self._count > 0:
            self._wait.settled.clear()
            await self._wait.settled.wait()

    def unsettled(self) -> list[Event]:
        # What is on disk is delivered after the next start; what a full disk kept in
        # memory cannot wait there: it is dead-lettered (or logged) instead of lost.
        self._commit()
        held, self._events, self._rows = self._events, [], []
        self._count -= len(held)
        return held

    def close(self) -> None:
        self._commit()
        if self._rows:
            log.error(
                "spool closed with accepted events it could not write",
                sink=self.sink,
                file=str(self.path),
                lost=len(self._rows),
            )
        self._db.close()
