"""The `redis` sink: XADD each event to a stream, a batch in one pipelined round trip."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from pipeline import ComponentContext, Event, Sink
from pipeline.redact import redact
from pydantic import Field
from redis.asyncio import Redis

from fspipeline_redis.connection import (
    FAILURES,
    RedisConnectionOptions,
    explain,
    make_client,
    opened,
    probe_stream,
    translate,
)
from fspipeline_redis.entries import fields_of
from fspipeline_redis.naming import EventName, StreamName


class RedisSinkOptions(RedisConnectionOptions):
    stream: EventName = "fspipeline:{pipeline}"
    """Stream to append to. Placeholders: {pipeline}, and the event's {kind} {ext} {dir}
    {meta.KEY} … (e.g. `fs:{kind}`: one stream per kind)."""
    maxlen: int | None = Field(default=None, ge=1)
    """Keep the stream to about this many entries (`XADD … MAXLEN ~ N`: Redis trims whole
    nodes, so a few more may stay). Entries trimmed before a consumer group read them are
    gone. null: never trim."""


class RedisSink(Sink[RedisSinkOptions]):
    """Appends each event to a Redis stream (XADD); consumer groups read it on other hosts.

    Each entry has the fields `id` (the event id), `type` (`fs.<kind>`), `content-type`
    (`application/cloudevents+json`) and `body` (the event's CloudEvents JSON), so a
    consumer can route on `type` without parsing the body. With `batch_size` > 1 a batch
    is sent as one pipeline (all XADDs in one round trip, no MULTI).

    Delivery is at least once: an XADD that Redis applied but whose reply was lost is
    sent again, and Redis has no server-side de-duplication, so consumers de-duplicate
    on `id`. When Redis is down the sink fails the delivery, which the engine retries
    with backoff; with `spool: true` events wait on disk for as long as the outage lasts.
    """

    type_name = "redis"
    Options = RedisSinkOptions

    def __init__(self, options: RedisSinkOptions, context: ComponentContext) -> None:
        super().__init__(options, context)
        self.stream = StreamName(options.stream, context.pipeline)
        self._client: Redis | None = None

    async def open(self) -> None:
        # Each batch is bounded as a whole by `timeout` (one timer, not one per reply).
        self._client = make_client(self.options, reply_timeout=None)
        try:
            async with asyncio.timeout(self.options.timeout):
                await self._client.ping()
        except FAILURES as exc:
            # Not fatal: deliveries fail and are retried until Redis is back.
            self.log.warning(
                "Redis is not reachable yet; deliveries will be retried until it is",
                url=redact(self.options.url),
                error=explain(exc, self.options),
            )

    async def close(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    async def send(self, event: Event) -> None:
        client = self._connected()
        stream, fields = self.stream.of(event), fields_of(event)
        try:
            async with asyncio.timeout(self.options.timeout):
                await client.xadd(stream, fields, maxlen=self.options.maxlen, approximate=True)
        except FAILURES as exc:
            raise translate(exc, self.options) from exc

    async def send_batch(self, events: Sequence[Event]) -> None:
        pipe = self._connected().pipeline(transaction=False)
        maxlen = self.options.maxlen
        for event in events:
            pipe.xadd(self.stream.of(event), fields_of(event), maxlen=maxlen, approximate=True)
        try:
            async with asyncio.timeout(self.options.timeout):
                await pipe.execute()
        except FAILURES as exc:
            raise translate(exc, self.options) from exc

    def _connected(self) -> Redis:
        return opened(self._client, "the redis sink")

    async def probe(self) -> None:
        """Connect, and check that the stream (when its name is fixed) can be a stream."""
        await probe_stream(self.options, self.stream.fixed, "choose another `stream` or delete it")
