"""Acknowledging settled entries in batches, and moving failed ones to a dead-letter stream."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from redis.exceptions import ResponseError

from fspipeline_redis.commands import Group
from fspipeline_redis.connection import FAILURES, RedisConnectionOptions, explain
from fspipeline_redis.entries import NewFields

if TYPE_CHECKING:
    from pipeline import Clock
    from redis.asyncio import Redis
    from structlog.typing import FilteringBoundLogger

    from fspipeline_redis.inflight import Entry

ACK_CHUNK = 1000
"""Entry ids per XACK command."""
RETRY_MIN = 0.5
RETRY_MAX = 30.0


class Settler:
    """Writes what the pipeline settled: XACK for delivered entries, dead letters for the rest.

    `ack` and `dead` only record (the engine calls them on the event loop); `run` writes
    everything recorded so far in one MULTI/EXEC round trip, so a dead-lettered entry is
    copied to the dead-letter stream and acknowledged together. While Redis is
    unreachable the records wait and the write is retried with a capped backoff.
    """

    def __init__(
        self,
        client: Redis,
        group: Group,
        options: RedisConnectionOptions,
        log: FilteringBoundLogger,
        clock: Clock,
    ) -> None:
        self.client = client
        self.group = group
        self.options = options
        self.log = log
        self.clock = clock
        self._acks: list[bytes] = []
        self._dead: list[tuple[Entry, str]] = []
        self._held: set[bytes] = set()
        self._wake = asyncio.Event()

    def __len__(self) -> int:
        """Entries recorded and not written yet."""
        return len(self._acks) + len(self._dead)

    def holds(self, entry_id: bytes) -> bool:
        """Whether `entry_id` is settled but not yet acknowledged in Redis."""
        return entry_id in self._held

    def ack(self, entry: Entry) -> None:
        self._acks.append(entry.entry_id)
        self._held.add(entry.entry_id)
        self._wake.set()

    def dead(self, entry: Entry, reason: str) -> None:
        self._dead.append((entry, reason))
        self._held.add(entry.entry_id)
        self._wake.set()

    async def run(self) -> None:
        """Write records as they come, until cancelled."""
        delay = RETRY_MIN
        while True:
            await self._wake.wait()
            self._wake.clear()
            try:
                await self.flush()
            except FAILURES as exc:
                self.log.warning(
                    "could not acknowledge entries in Redis; retrying",
                    entries=len(self),
                    retry_in=delay,
                    error=explain(exc, self.options),
                )
                await self.clock.sleep(delay)
                delay = min(RETRY_MAX, delay * 2)
                self._wake.set()
            else:
                delay = RETRY_MIN

    async def flush(self) -> None:
        """Write every record once; raises a FAILURES error and keeps them if Redis is down."""
        if not len(self):
            return
        acks, dead = self._acks, self._dead
        self._acks, self._dead = [], []
        group = self.group
        pipe = self.client.pipeline(transaction=True)
        for entry, reason in dead:
            pipe.xadd(group.dead_letter_stream, self._dead_fields(entry, reason))
        ids = acks + [entry.entry_id for entry, _ in dead]
        for start in range(0, len(ids), ACK_CHUNK):
            pipe.xack(group.stream, group.group, *ids[start : start + ACK_CHUNK])
        try:
            await pipe.execute()
        except ResponseError as exc:
            # Redis ran the transaction but refused a command in it (a consumer group lost
            # with a restart of a Redis without persistence): retrying cannot help.
            self.log.warning(
                "Redis refused to acknowledge entries; they may be delivered again",
                entries=len(ids),
                error=explain(exc, self.options),
            )
        except FAILURES:
            self._acks[:0] = acks
            self._dead[:0] = dead
            raise
        self._held.difference_update(ids)

    def _dead_fields(self, entry: Entry, reason: str) -> NewFields:
        about = {
            "reason": reason,
            "source_stream": self.group.stream,
            "source_entry": entry.entry_id.decode(),
            "group": self.group.group,
            "consumer": self.group.consumer,
            "dead_lettered_at": datetime.now(UTC).isoformat(),
        }
        fields: NewFields = dict(entry.fields.items())
        fields.update(about)
        return fields
