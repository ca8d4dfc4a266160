"""Acknowledging JetStream messages once the pipeline has settled their events.

Every message the source emits is held here under its event id until the engine says
how its event ended (`settle`). Then one small message goes to the reply subject the
server gave the delivery: `+ACK` (done), `-NAK` (deliver it again, maybe after a delay)
or `+TERM` (never again). Those are plain publishes, sent in batches by one task, and
any connection of the account can send them: an ack survives a reconnection.

While an event is still in the pipeline (a slow command, a full queue), its message is
kept alive with `+WPI` ("work in progress") every `progress_every`, so the server does
not hand it to another worker after `ack_wait`. A worker that dies stops doing that,
and its messages go to the others once `ack_wait` has passed.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
from collections import deque
from typing import TYPE_CHECKING, Literal

import nats.errors

if TYPE_CHECKING:
    from pipeline import Clock
    from structlog.typing import FilteringBoundLogger

    from fspipeline_nats.link import NatsLink

ACK = b"+ACK"
NAK = b"-NAK"
TERM = b"+TERM"
PROGRESS = b"+WPI"

OnFailure = Literal["nak", "term"]


@dataclasses.dataclass(frozen=True, slots=True)
class Delivery:
    """One delivery of a JetStream message, as much of it as acknowledging needs."""

    reply: str
    """The subject acks go to (`$JS.ACK.<stream>.<consumer>....`)."""
    sequence: int
    """The message's sequence number in the stream."""
    attempt: int
    """How many times the server has delivered it, this time included."""


def nak_payload(delay: float) -> bytes:
    if delay <= 0:
        return NAK
    return NAK + b" " + json.dumps({"delay": int(delay * 1e9)}).encode()


class Acknowledger:
    """Holds the deliveries of emitted events and answers the server for each."""

    def __init__(
        self,
        link: NatsLink,
        *,
        on_failure: OnFailure,
        nak_delay: float,
        max_deliver: int,
        progress_every: float | None,
        log: FilteringBoundLogger,
        clock: Clock,
    ) -> None:
        self.link = link
        self.on_failure = on_failure
        self.nak_delay = nak_delay
        self.max_deliver = max_deliver
        self.progress_every = progress_every
        self.log = log
        self.clock = clock
        self._held: dict[str, deque[Delivery]] = {}
        self._count = 0
        self._outbox: deque[tuple[str, bytes]] = deque()
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._freed = asyncio.Event()
        self.acked = 0
        self.failed = 0

    @property
    def held(self) -> int:
        """Deliveries waiting for their event to be settled."""
        return self._count

    # -- called by the source and the engine (never blocks) ----------------------

    async def below(self, limit: int) -> None:
        """Return once fewer than `limit` deliveries are held."""
        while self._count >= limit:
            self._freed.clear()
            await self._freed.wait()

    def holds(self, event_id: str) -> bool:
        return event_id in self._held

    def hold(self, event_id: str, delivery: Delivery) -> None:
        self._held.setdefault(event_id, deque()).append(delivery)
        self._count += 1
        self._idle.clear()

    def settle(self, event_id: str, delivered: bool) -> None:
        """The event is done with: ack its delivery, or nak/term it as configured."""
        delivery = self._take(event_id)
        if delivery is None:
            self.log.warning("settled an event this source does not hold", id=event_id)
            return
        if delivered:
            self.acked += 1
            self._send(delivery.reply, ACK)
            return
        self.failed += 1
        if self.on_failure == "term":
            self.log.error(
                "event not delivered; terminating its message (the server will not deliver it "
                "again; the event is in the dead letters)",
                id=event_id,
                sequence=delivery.sequence,
            )
            self._send(delivery.reply, TERM)
            return
        last = 0 < self.max_deliver <= delivery.attempt
        log = self.log.error if last else self.log.warning
        log(
            "event not delivered; the server keeps its message but will not deliver it again "
            "(max_deliver reached)"
            if last
            else "event not delivered; the server will deliver its message again",
            id=event_id,
            sequence=delivery.sequence,
            attempt=delivery.attempt,
            redeliver_in=self.nak_delay,
        )
        self._send(delivery.reply, nak_payload(self.nak_delay))

    def give_back(self, event_id: str) -> None:
        """The event was never emitted (shutdown): have it delivered again at once."""
        delivery = self._take(event_id)
        if delivery is not None:
            self._send(delivery.reply, NAK)

    def give_back_all(self) -> None:
        """At the very end: every delivery still held goes back to the server at once."""
        for deliveries in self._held.values():
            self._outbox.extend((d.reply, NAK) for d in deliveries)
        self._held.clear()
        self._count = 0
        self._freed.set()

    def reject(self, delivery: Delivery) -> None:
        """A message that is no event at all: never deliver it again."""
        self._send(delivery.reply, TERM)

    def _take(self, event_id: str) -> Delivery | None:
        deliveries = self._held.get(event_id)
        if not deliveries:
            return None
        delivery = deliveries.popleft()
        if not deliveries:
            del self._held[event_id]
        self._count -= 1
        self._freed.set()
        return delivery

    def _send(self, reply: str, payload: bytes) -> None:
        self._outbox.append((reply, payload))
        self._idle.clear()
        self._wake.set()

    # -- the task that talks to the server ----------------------------------------

    async def run(self) -> None:
        """Send what settled, in batches, and keep held messages alive; until cancelled."""
        progress_at = self.clock.monotonic() + (self.progress_every or 0.0)
        while True:
            timeout = None
            if self.progress_every:
                timeout = max(0.0, progress_at - self.clock.monotonic())
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout)
            self._wake.clear()
            if self.progress_every and self.clock.monotonic() >= progress_at:
                progress_at = self.clock.monotonic() + self.progress_every
                for deliveries in self._held.values():
                    self._outbox.extend((d.reply, PROGRESS) for d in deliveries)
            await self.flush()

    async def flush(self) -> None:
        """Publish the outbox; on a lost connection, wait for the next one and go on."""
        while self._outbox:
            client = await self.link.wait()
            try:
                while self._outbox:
                    reply, payload = self._outbox[0]
                    await client.publish(reply, payload)
                    self._outbox.popleft()
            except (nats.errors.Error, OSError) as exc:
                self.log.info("acknowledgements wait for the connection", error=str(exc))
                self.link.lost(client)
                await self.clock.sleep(0.1)
        if not self._held:
            self._idle.set()

    async def idle(self) -> None:
        """Return once nothing is held and every answer has been handed to the client."""
        await self._idle.wait()

    async def last_flush(self, timeout: float) -> None:
        """At shutdown: push out the answers still queued, if the connection allows."""
        client = self.link.current()
        if client is None or not self._outbox:
            return
        with contextlib.suppress(Exception):
            async with asyncio.timeout(timeout):
                while self._outbox:
                    reply, payload = self._outbox.popleft()
                    await client.publish(reply, payload)
                await client.flush()
