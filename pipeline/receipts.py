"""Tells a delivery-tracking source when each event it emitted is settled.

A receipt counts what is still open for one source event: the chain call that carries it
through the stages, plus one share per sink queue its event (or an event a stage made of
it on the way) entered. The chain call runs with the receipt as the current one, so the
fan-out finds it without the stages knowing about it.
"""

from __future__ import annotations

import contextvars
from typing import TYPE_CHECKING, Any

import structlog

if TYPE_CHECKING:
    from pipeline.components import Source
    from pipeline.event import Event

log = structlog.get_logger("pipeline.receipts")


class Receipt:
    """Open shares of one source event; calls `source.settled` when the last one closes."""

    __slots__ = ("_delivered", "_event", "_open", "_source")

    def __init__(self, source: Source[Any], event: Event) -> None:
        self._source = source
        self._event = event
        self._open = 1  # the chain call itself
        self._delivered = True

    def hold(self) -> bool:
        """Open one more share; False once settled (a late straggler is not tracked)."""
        if self._open == 0:
            return False
        self._open += 1
        return True

    def fail(self) -> None:
        """A stage or sink gave up on the event: it settles as not delivered."""
        self._delivered = False

    def release(self, delivered: bool = True) -> None:
        if self._open == 0:
            return
        if not delivered:
            self._delivered = False
        self._open -= 1
        if self._open == 0:
            try:
                self._source.settled(self._event, self._delivered)
            except Exception:
                self._source.log.error("settled() failed", path=self._event.path, exc_info=True)


class ReceiptGroup(Receipt):
    """The receipts of several source events, opened and released together: for an event
    a stage made of events it held (a debounced path, a batch)."""

    __slots__ = ("_members",)

    def __init__(self, members: list[Receipt]) -> None:
        self._members = members

    def hold(self) -> bool:
        # A member already settled (released to zero) is no longer tracked; the rest are.
        self._members = [member for member in self._members if member.hold()]
        return bool(self._members)

    def fail(self) -> None:
        for member in self._members:
            member.fail()

    def release(self, delivered: bool = True) -> None:
        for member in self._members:
            member.release(delivered)


CURRENT: contextvars.ContextVar[Receipt | None] = contextvars.ContextVar(
    "fspipeline_receipt", default=None
)
"""The receipt of the source event whose chain call is running, if its source tracks."""


def current_share() -> Receipt | None:
    """The current receipt with one more share opened, for a queue about to take an event."""
    receipt = CURRENT.get()
    if receipt is not None and receipt.hold():
        return receipt
    return None


def fail_current() -> None:
    receipt = CURRENT.get()
    if receipt is not None:
        receipt.fail()
