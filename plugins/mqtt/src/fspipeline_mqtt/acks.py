"""Which received messages the source may acknowledge now: settled ones, in arrival order."""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass


@dataclass(slots=True, eq=False)
class Received:
    """One message taken from the broker, waiting for the pipeline's verdict."""

    connection: int
    """Which connection it came on: its packet id means something only there."""
    mid: int
    """Packet identifier, what the PUBACK/PUBCOMP names."""
    qos: int
    topic: str
    payload: bytes
    delivered: bool | None = None
    """True once every sink delivered the event, False if it was dead-lettered."""


class AckLedger:
    """Received messages in arrival order, released for acknowledgement in that order.

    MQTT wants a client's PUBACKs in the order the PUBLISH packets came (3.1.1 section
    4.6), while a pipeline settles events in any order; a settled message therefore waits
    until every earlier one is settled too. A message whose event is already in the
    pipeline (the broker re-sent it after a reconnect, or a publisher sent it twice) is
    not emitted again: it is settled with that event.
    """

    def __init__(self) -> None:
        self._order: deque[Received] = deque()
        self._by_event: dict[str, list[Received]] = {}

    def add(self, message: Received, event_id: str | None) -> bool:
        """Record `message`; True if its event is new and should be emitted.

        `event_id` None: the message holds no event; it is settled as failed at once.
        """
        self._order.append(message)
        if event_id is None:
            message.delivered = False
            return False
        waiting = self._by_event.get(event_id)
        if waiting is not None:
            waiting.append(message)
            return False
        self._by_event[event_id] = [message]
        return True

    def settle(self, event_id: str, delivered: bool) -> bool:
        """Record the pipeline's verdict on an event; False if no message carried it."""
        messages = self._by_event.pop(event_id, None)
        if messages is None:
            return False
        for message in messages:
            message.delivered = delivered
        return True

    def ready(self) -> Iterator[Received]:
        """Take the settled messages at the head, oldest first."""
        while self._order and self._order[0].delivered is not None:
            yield self._order.popleft()

    @property
    def in_flight(self) -> int:
        """Events emitted and not yet settled."""
        return len(self._by_event)
