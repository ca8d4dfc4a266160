"""The messages a source has emitted and not yet settled, and the task that settles them.

The engine reports each event's outcome synchronously, on the event loop; the broker is
told asynchronously by one task that drains a queue of outcomes, so `settle` never blocks.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from typing import TYPE_CHECKING

from aiormq.exceptions import ChannelInvalidStateError
from pipeline import stop_tasks

if TYPE_CHECKING:
    from aio_pika.abc import AbstractIncomingMessage
    from structlog.typing import FilteringBoundLogger

TELL_TIMEOUT = 5.0
"""Seconds an ack or a reject may take to be written; a connection that broke without
saying so yet can otherwise hold the frame, and every outcome queued behind it, forever."""


class Deliveries:
    """Unsettled messages by event id, and their acks and nacks on their way to the broker.

    Keyed by event id, several messages per id: a publisher that retried after a lost
    confirm may have put one event in the queue twice, and both copies may be in flight.
    """

    def __init__(self, log: FilteringBoundLogger) -> None:
        self.log = log
        self._unsettled: dict[str, deque[AbstractIncomingMessage]] = {}
        self._count = 0
        self._outcomes: asyncio.Queue[tuple[AbstractIncomingMessage, bool]] = asyncio.Queue()
        self._idle = asyncio.Event()
        self._idle.set()
        self._task: asyncio.Task[None] | None = None
        self.acked = 0
        self.rejected = 0
        self.orphaned = 0
        """Outcomes that came after their channel closed: the broker redelivers those."""
        self.live_channel: object | None = None
        """The channel now consuming; messages from any other one cannot be settled."""

    def __len__(self) -> int:
        return self._count

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._settle_forever(), name="amqp settlements")

    def track(self, event_id: str, message: AbstractIncomingMessage) -> None:
        """Remember `message` until the event made of it settles."""
        self._unsettled.setdefault(event_id, deque()).append(message)
        self._count += 1
        self._idle.clear()

    def settle(self, event_id: str, delivered: bool) -> bool:
        """Queue the ack (delivered) or the reject (not) of the event's message; never blocks.

        False when no message of this id is unsettled (nothing to do)."""
        waiting = self._unsettled.get(event_id)
        if not waiting:
            return False
        message = waiting.popleft()
        if not waiting:
            del self._unsettled[event_id]
        self._count -= 1
        self._outcomes.put_nowait((message, delivered))
        return True

    def reject_now(self, message: AbstractIncomingMessage) -> None:
        """Reject a message that never became an event (its body is not one)."""
        self._idle.clear()
        self._outcomes.put_nowait((message, False))

    async def wait_idle(self, timeout: float) -> bool:
        """Wait until every tracked message is settled and told to the broker."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._idle.wait(), timeout)
        return self._idle.is_set()

    async def stop(self) -> None:
        await stop_tasks(self._task)
        self._task = None

    async def _settle_forever(self) -> None:
        while True:
            outcomes = [await self._outcomes.get()]
            while not self._outcomes.empty():
                outcomes.append(self._outcomes.get_nowait())
            for message, delivered in outcomes:
                try:
                    await self._tell_broker(message, delivered)
                except Exception as exc:  # this task must outlive any one message
                    self.orphaned += 1
                    self.log.warning(
                        "could not settle a message; the broker will redeliver it",
                        message_id=message.message_id,
                        error=f"{type(exc).__name__}: {exc}",
                    )
            if self._count == 0 and self._outcomes.empty():
                self._idle.set()

    async def _tell_broker(self, message: AbstractIncomingMessage, delivered: bool) -> None:
        if not self._on_live_channel(message):
            # The broker already put it back in the queue when its channel closed.
            self.orphaned += 1
            return
        if delivered:
            await asyncio.wait_for(message.ack(), TELL_TIMEOUT)
            self.acked += 1
        else:
            # requeue=False: the queue's dead-letter exchange gets it (or, without one,
            # the broker drops it) instead of redelivering it forever.
            await asyncio.wait_for(message.nack(requeue=False), TELL_TIMEOUT)
            self.rejected += 1

    def _on_live_channel(self, message: AbstractIncomingMessage) -> bool:
        try:
            channel = message.channel  # raises once that channel is closed
        except ChannelInvalidStateError:
            return False
        return channel is self.live_channel and not channel.is_closed
