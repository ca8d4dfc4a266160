"""One sink's bounded queue and the task that delivers from it, with retries."""

from __future__ import annotations

import asyncio
import random
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pipeline.clock import Clock
    from pipeline.components import Sink
    from pipeline.config.plan import DeliveryPolicy
    from pipeline.engine.deadletter import DeadLetters
    from pipeline.event import Event

MAX_BACKOFF = 30.0


def _reason(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__


class SinkWorker:
    """Feeds one sink from its own queue; `put` waits while the queue is full."""

    def __init__(
        self,
        sink: Sink[Any],
        label: str,
        policy: DeliveryPolicy,
        dead_letters: DeadLetters,
        clock: Clock,
    ) -> None:
        self.sink = sink
        self.label = label
        self.policy = policy
        self.dead_letters = dead_letters
        self.clock = clock
        self.queue: asyncio.Queue[Event] = asyncio.Queue(maxsize=policy.queue_size)
        self.in_flight: Event | None = None
        self.delivered = 0
        self.failed = 0

    async def put(self, event: Event) -> None:
        await self.queue.put(event)

    async def run(self) -> None:
        while True:
            event = await self.queue.get()
            self.in_flight = event
            await self._deliver(event)  # if cancelled here, `abandon` still sees in_flight
            self.in_flight = None
            self.queue.task_done()

    async def _deliver(self, event: Event) -> None:
        attempts = self.policy.max_attempts
        for attempt in range(1, attempts + 1):
            try:
                await self.sink.send(event)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                reason = _reason(exc)
                if attempt == attempts:
                    self.failed += 1
                    self.dead_letters.put(
                        event, self.label, f"{reason} (after {attempts} attempts)"
                    )
                    return
                delay = min(MAX_BACKOFF, self.policy.retry_backoff * 2 ** (attempt - 1))
                delay *= random.uniform(0.5, 1.0)  # full jitter keeps retries from aligning
                self.sink.log.warning(
                    "delivery failed; will retry",
                    path=event.path,
                    attempt=attempt,
                    of=attempts,
                    retry_in=round(delay, 3),
                    error=reason,
                    exc_info=not isinstance(exc, OSError | ConnectionError | TimeoutError),
                )
                await self.clock.sleep(delay)
            else:
                self.delivered += 1
                return

    def abandon(self, reason: str) -> int:
        """Dead-letter the in-flight event and everything still queued; return how many."""
        left: list[Event] = [self.in_flight] if self.in_flight is not None else []
        self.in_flight = None
        while not self.queue.empty():
            left.append(self.queue.get_nowait())
            self.queue.task_done()
        for event in left:
            self.dead_letters.put(event, self.label, reason)
        return len(left)
