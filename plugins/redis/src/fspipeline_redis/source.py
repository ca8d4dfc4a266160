"""The `redis` source: a consumer in a consumer group, acknowledging after delivery."""

from __future__ import annotations

import asyncio
import contextlib
import re
from typing import ClassVar

from pipeline import ComponentContext, Duration, Emit, Event, EventDecodeError, Source, stop_tasks
from pipeline.redact import redact
from pydantic import Field, field_validator
from redis.asyncio import Redis

from fspipeline_redis import commands
from fspipeline_redis.commands import Group, StreamEntry
from fspipeline_redis.connection import (
    FAILURES,
    RedisConnectionOptions,
    explain,
    make_client,
    opened,
    probe_stream,
)
from fspipeline_redis.entries import event_of, shown
from fspipeline_redis.inflight import Entry, InFlight
from fspipeline_redis.naming import FixedName, fixed_name
from fspipeline_redis.settle import Settler

BLOCK = 2.0
"""Longest wait of one XREADGROUP for new entries, in seconds (it returns at once when
entries come); also the slack added to the reply timeout for it."""
RECONNECT_MIN = 0.5
RECONNECT_MAX = 30.0
CLOSE_FLUSH = 5.0
"""Seconds `close` waits to write the acknowledgements still recorded."""
_ENTRY_ID = re.compile(r"^(0|\$|\d+(-\d+)?)$")


class RedisSourceOptions(RedisConnectionOptions):
    stream: FixedName
    """Stream to read, e.g. `fspipeline:landing` (the redis sink's default for a pipeline
    named `landing`). {pipeline}, {hostname} and {pid} are filled in."""
    group: FixedName = "{pipeline}"
    """Consumer group: every process in one group shares the entries (each goes to one of
    them); another group gets all of them again. Created if missing."""
    consumer: FixedName = "{hostname}-{pid}"
    """This consumer's name in the group. Give each worker a stable name (e.g.
    `${HOSTNAME}`) and a restarted worker resumes its own pending entries at once;
    otherwise they are claimed back after `claim_idle`."""
    start_id: str = "0"
    """Where a new group starts: `0` (every entry the stream holds), `$` (only entries
    added from now on) or an entry id. Ignored when the group exists."""
    count: int = Field(default=100, ge=1, le=10_000)
    """Entries fetched per read (XREADGROUP COUNT)."""
    max_in_flight: int = Field(default=256, ge=1)
    """Entries this consumer holds at most (read, their event not yet settled); it reads
    more only as they settle, so a slow pipeline leaves new entries to the other consumers
    of the group. Lower it to spread the work more evenly."""
    claim_idle: Duration = 30.0
    """An entry another consumer has left pending for this long (it died, or hangs) is
    claimed (XAUTOCLAIM) and processed here. Entries this consumer is still working on
    are claimed again before then, so no other consumer takes them over."""
    claim_interval: Duration = 10.0
    """How often to look for abandoned entries (and to re-claim this consumer's own)."""
    dead_letter_stream: FixedName | None = None
    """Stream that gets an entry the pipeline gave up on (a stage failed, a sink
    dead-lettered it) or that is not an event, with its fields plus `reason`,
    `source_stream`, `source_entry`, `group` and `consumer`. Default: `<stream>:dead`."""

    @field_validator("start_id")
    @classmethod
    def _entry_id(cls, value: str) -> str:
        if not _ENTRY_ID.match(value):
            raise ValueError(
                f"{value!r} is not a stream position; use 0 (everything), $ (only new "
                "entries) or an entry id like 1700000000000-0"
            )
        return value

    @field_validator("claim_idle", "claim_interval")
    @classmethod
    def _positive(cls, value: float) -> float:
        if value <= 0:
            raise ValueError("must be longer than 0, e.g. 30s")
        return value


class RedisSource(Source[RedisSourceOptions]):
    """Reads a Redis stream in a consumer group; acknowledges each entry once delivered.

    Entries are emitted in stream order. An entry is acknowledged (XACK, in batches) only
    once every sink that took its event delivered it (or a filter dropped it); when a
    stage or sink gives up on it, it is copied to `dead_letter_stream` and acknowledged.
    On start the consumer first re-reads its own pending entries, then takes over
    entries a dead consumer left pending longer than `claim_idle`, then reads new ones.

    Delivery is at least once: a crash between delivery and XACK, or a worker judged dead
    that was only slow, hands an entry out again. Sinks downstream should de-duplicate
    on the event id, which is kept from the producer. While Redis is unreachable the
    source retries with a capped backoff, logging each attempt.
    """

    type_name = "redis"
    Options = RedisSourceOptions
    tracks_delivery: ClassVar[bool] = True

    def __init__(self, options: RedisSourceOptions, context: ComponentContext) -> None:
        super().__init__(options, context)
        stream = fixed_name(options.stream, context.pipeline)
        self.group = Group(
            stream=stream,
            group=fixed_name(options.group, context.pipeline),
            consumer=fixed_name(options.consumer, context.pipeline),
            dead_letter_stream=fixed_name(
                options.dead_letter_stream or stream + ":dead", context.pipeline
            ),
        )
        self.inflight = InFlight()
        self._freed = asyncio.Event()
        self._client: Redis | None = None
        self._settler: Settler | None = None
        self._settling: asyncio.Task[None] | None = None

    # -- lifecycle -----------------------------------------------------------------

    async def open(self) -> None:
        # Connects on first use: an unreachable Redis is retried in `run`, not fatal here.
        self._client = make_client(self.options, reply_timeout=self.options.timeout + BLOCK)
        self._settler = Settler(
            self._client, self.group, self.options, self.log, self.context.clock
        )
        self._settling = asyncio.create_task(self._settler.run(), name="redis-acks")

    async def close(self) -> None:
        if self._settler is not None and len(self._settler):
            with contextlib.suppress(*FAILURES, TimeoutError):
                await asyncio.wait_for(self._settler.flush(), CLOSE_FLUSH)
            if len(self._settler):
                self.log.warning(
                    "Redis unreachable at close: entries stay pending and are delivered again",
                    entries=len(self._settler),
                )
        await stop_tasks(self._settling)
        self.inflight.clear()
        if self._client is not None:
            await self._client.aclose()
        self._client = self._settler = self._settling = None

    def settled(self, event: Event, delivered: bool) -> None:
        """The pipeline is done with `event`: acknowledge its entry, or dead-letter it."""
        entry = self.inflight.pop(event.id)
        self._freed.set()
        if entry is None or self._settler is None:
            return
        if delivered:
            self._settler.ack(entry)
        else:
            self._settler.dead(entry, "the pipeline gave up on it (see its dead letters)")

    # -- reading -------------------------------------------------------------------

    async def run(self, emit: Emit) -> None:
        keeper = asyncio.create_task(self._keep_claimed_forever(), name="redis-reclaim")
        try:
            await self._read_forever(emit)
        finally:
            await stop_tasks(keeper)

    async def _read_forever(self, emit: Emit) -> None:
        """Read until cancelled; reconnect with a capped backoff, logging each attempt."""
        delay = RECONNECT_MIN
        failures = 0
        while True:
            try:
                client = self._connected()
                if await commands.create_group(client, self.group, self.options.start_id):
                    self.log.info("created the consumer group", start_id=self.options.start_id)
                if failures:
                    self.log.info("reading from Redis again", url=redact(self.options.url))
                delay, failures = RECONNECT_MIN, 0
                await self._consume(client, emit)
            except FAILURES as exc:
                if "NOGROUP" in str(exc):
                    self.log.warning(
                        "the consumer group is gone (deleted, or Redis restarted without "
                        "persistence); creating it again",
                        stream=self.group.stream,
                        group=self.group.group,
                    )
                    await self.context.clock.sleep(RECONNECT_MIN)
                    continue
                # Unreachable, wrong credentials, or a refused command (a key of another
                # type): the message says what to fix, and a running pipeline keeps trying.
                failures += 1
                self.log.warning(
                    "cannot read from Redis; retrying",
                    attempt=failures,
                    retry_in=delay,
                    error=explain(exc, self.options),
                )
                await self.context.clock.sleep(delay)
                delay = min(RECONNECT_MAX, delay * 2)

    async def _consume(self, client: Redis, emit: Emit) -> None:
        """This consumer's pending entries, then new ones, with abandoned ones now and then."""
        await self._resume_own(client, emit)
        clock = self.context.clock
        block_ms = int(min(BLOCK, self.options.claim_interval) * 1000)
        next_claim = clock.monotonic()
        while True:
            if clock.monotonic() >= next_claim:
                await self._claim_abandoned(client, emit)
                next_claim = clock.monotonic() + self.options.claim_interval
            room = await self._room()
            entries = await commands.read_group(
                client, self.group, ">", min(self.options.count, room), block_ms
            )
            for entry in entries:
                await self._handle(entry, emit)

    async def _room(self) -> int:
        """How many more entries may be read, once that is at least one."""
        while len(self.inflight) >= self.options.max_in_flight:
            self._freed.clear()
            await self._freed.wait()
        return self.options.max_in_flight - len(self.inflight)

    async def _resume_own(self, client: Redis, emit: Emit) -> None:
        """Emit the entries this consumer read before (a restart) and has not settled."""
        position: bytes = b"0"
        resumed = 0
        while entries := await commands.read_group(
            client, self.group, position, self.options.count
        ):
            for entry in entries:
                position = entry[0]
                if not self._is_ours(entry[0]):
                    resumed += 1
                    await self._handle(entry, emit)
        if resumed:
            self.log.info("resumed this consumer's pending entries", entries=resumed)

    async def _claim_abandoned(self, client: Redis, emit: Emit) -> None:
        """Take over the entries other consumers left pending longer than `claim_idle`."""
        idle_ms = int(self.options.claim_idle * 1000)
        cursor = b"0-0"
        claimed = 0
        while True:
            cursor, entries, deleted = await commands.autoclaim(
                client, self.group, idle_ms, cursor, self.options.count
            )
            if deleted:
                self.log.warning(
                    "entries left pending were trimmed from the stream before anyone "
                    "processed them",
                    entries=len(deleted),
                )
            for entry in entries:
                if not self._is_ours(entry[0]):
                    claimed += 1
                    await self._handle(entry, emit)
            if cursor == b"0-0":
                break
        if claimed:
            self.log.info("claimed entries an idle consumer left pending", entries=claimed)

    async def _keep_claimed_forever(self) -> None:
        """Claim again, now and then, the entries still in flight here (however long the
        pipeline holds them back), so that no other consumer takes them over."""
        interval = min(self.options.claim_interval, self.options.claim_idle / 3)
        clock = self.context.clock
        while True:
            await clock.sleep(interval)
            due = self.inflight.claimed_before(clock.monotonic() - self.options.claim_idle / 2)
            if not due or self._client is None:
                continue
            # A failure here is the reader's to report; the next round tries again.
            with contextlib.suppress(*FAILURES):
                for start in range(0, len(due), self.options.count):
                    chunk = due[start : start + self.options.count]
                    await commands.claim_again(
                        self._client, self.group, [entry.entry_id for entry in chunk]
                    )
                    self.inflight.reclaimed(chunk, clock.monotonic())

    async def _handle(self, stream_entry: StreamEntry, emit: Emit) -> None:
        assert self._settler is not None
        entry_id, fields = stream_entry
        entry = Entry(entry_id, fields or {}, self.context.clock.monotonic())
        if not fields:
            self.log.warning("a pending entry was trimmed from the stream", entry=entry_id)
            self._settler.ack(entry)
            return
        try:
            event = event_of(fields)
        except EventDecodeError as exc:
            self.log.warning(
                "entry is not an event; moved to the dead-letter stream",
                entry=entry_id.decode(),
                dead_letter_stream=self.group.dead_letter_stream,
                error=str(exc),
                body=shown(fields),
            )
            self._settler.dead(entry, f"not an fspipeline event: {exc}")
            return
        # Recorded before emitting: a filter may settle the event before `emit` returns.
        self.inflight.add(event.id, entry)
        await emit(event)

    def _is_ours(self, entry_id: bytes) -> bool:
        """Whether this consumer holds the entry already: in flight, or settled, not acked."""
        return entry_id in self.inflight or (
            self._settler is not None and self._settler.holds(entry_id)
        )

    def _connected(self) -> Redis:
        return opened(self._client, "the redis source")

    # -- check --connect -----------------------------------------------------------

    async def probe(self) -> None:
        """Connect, and check that the stream is a stream (or absent: it is created)."""
        await probe_stream(self.options, self.group.stream, "choose another `stream`")
