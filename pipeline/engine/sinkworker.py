"""One sink's queue and the tasks that deliver from it: lanes, batches, retries, dead letters."""

from __future__ import annotations

import asyncio
import itertools
import random
import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from pipeline.engine.stats import ComponentStats
from pipeline.errors import DeliveryError, PipelineError

if TYPE_CHECKING:
    from pipeline.clock import Clock
    from pipeline.components import Sink
    from pipeline.config.plan import DeliveryPolicy
    from pipeline.engine.deadletter import DeadLetters
    from pipeline.engine.queues import DeliveryQueue
    from pipeline.event import Event
    from pipeline.expr import Expression


def reason_of(exc: BaseException) -> str:
    """`TypeName: first line of the message`, for logs and dead letters."""
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__


class SinkWorker:
    """Feeds one sink from its queue with `policy.concurrency` lanes.

    Events about one path always share a lane, so they reach the sink in order. A lane
    takes up to `batch_size` events (waiting `batch_wait` for more) and hands them to the
    sink in one `send_batch` call; a failed call is retried with exponential backoff and
    jitter, then each of its events is dead-lettered.
    """

    def __init__(
        self,
        sink: Sink[Any],
        label: str,
        policy: DeliveryPolicy,
        *,
        queue: DeliveryQueue,
        dead_letters: DeadLetters,
        clock: Clock,
        when: Expression | None = None,
    ) -> None:
        self.sink = sink
        self.label = label
        self.policy = policy
        self.queue = queue
        self.dead_letters = dead_letters
        self.clock = clock
        self.when = when
        self.stats = ComponentStats(
            sink.context.pipeline, label, "sink", sink.type_name, queue_depth=queue.pending
        )

    @property
    def delivered(self) -> int:
        return self.stats.delivered

    def lanes(self) -> range:
        return range(self.sink.concurrent_sends() or self.policy.concurrency)

    async def run_lane(self, shard: int) -> None:
        shard %= self.queue.shards  # several tasks may read one arrival-order lane
        batch_size, batch_wait = self.policy.batch_size, self.policy.batch_wait
        while True:
            batch = [await self.queue.get(shard)]
            if batch_size > 1:
                self._take_ready(batch, shard)
                if len(batch) < batch_size and batch_wait > 0:
                    await self.clock.sleep(batch_wait)
                    self._take_ready(batch, shard)
            await self._deliver(batch)

    def _take_ready(self, batch: list[tuple[int, Event]], shard: int) -> None:
        while len(batch) < self.policy.batch_size:
            item = self.queue.get_nowait(shard)
            if item is None:
                return
            batch.append(item)

    async def _deliver(self, batch: list[tuple[int, Event]]) -> None:
        events = [event for _, event in batch]
        attempts = self.policy.max_attempts  # 0: until delivered
        stats = self.stats
        for attempt in itertools.count(1):
            started = time.monotonic()
            try:
                async with asyncio.timeout(self.policy.send_timeout):
                    if len(events) == 1:
                        await self.sink.send(events[0])
                    else:
                        await self.sink.send_batch(events)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                reason = reason_of(exc)
                if isinstance(exc, TimeoutError) and time.monotonic() - started >= (
                    self.policy.send_timeout or float("inf")
                ):
                    reason = (
                        f"TimeoutError: no answer within send_timeout {self.policy.send_timeout:g}s"
                    )

                stats.error(reason)
                stats.failing = True
                hint = exc if isinstance(exc, DeliveryError) else None
                if attempt == attempts or (hint is not None and hint.permanent):
                    stats.dead_lettered += len(events)
                    tries = f"{attempt} attempt{'s' if attempt != 1 else ''}"
                    for token, event in batch:
                        await self.dead_letters.put(event, self.label, f"{reason} (after {tries})")
                        self.queue.ack(token, delivered=False)
                    return
                stats.retries += 1
                delay = self._backoff(attempt)
                if hint is not None and hint.retry_after is not None:
                    delay = max(delay, hint.retry_after)  # the target said when to come back
                self.sink.log.warning(
                    "delivery failed; will retry",
                    path=events[0].path,
                    events=len(events),
                    attempt=attempt,
                    of=attempts or "unlimited",
                    retry_in=round(delay, 3),
                    error=reason,
                    exc_info=not isinstance(exc, OSError | TimeoutError | PipelineError),
                )
                await self.clock.sleep(delay)
            else:
                stats.delivery_seconds.observe(time.monotonic() - started)
                # One latency sample per call (its oldest event) keeps this off the hot path.
                stats.latency_seconds.observe(
                    max(0.0, (datetime.now(UTC) - events[0].time).total_seconds())
                )
                stats.delivered += len(events)
                stats.failing = False
                for token, _ in batch:
                    self.queue.ack(token)
                return

    def _backoff(self, attempt: int) -> float:
        delay = min(self.policy.retry_max_backoff, self.policy.retry_backoff * 2.0 ** (attempt - 1))
        return delay * random.uniform(0.5, 1.0)  # jitter keeps retries of many events apart

    async def abandon(self, reason: str) -> int:
        """After the lanes were cancelled: dead-letter what a memory queue still held.

        A spooled queue keeps its events on disk for the next start; returns how many
        events were dead-lettered."""
        left = self.queue.unsettled()
        for event in left:
            await self.dead_letters.put(event, self.label, reason)
        kept = self.queue.pending()
        if kept:
            self.sink.log.warning(
                "undelivered events stay in the spool for the next start", count=kept
            )
        return len(left)
