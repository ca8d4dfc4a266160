"""Upstream delivery through a stage that holds events back (a window, a batch).

A source that tracks delivery (a broker consumer) acknowledges an event once the sinks
delivered what it became. When a stage keeps an event to emit later, or merges it into
another, the engine cannot see that on its own; the stage says so:

    async def process(self, event, emit):
        self.held[event.path] = (event, hold_delivery())   # may be None: nothing tracks it

    async def run(self, emit):                             # later, on a timer
        event, hold = self.held.pop(path)
        with delivering([hold]):
            await emit(event)                              # acknowledged once delivered

An event dropped on purpose is settled with `release([hold])`. Without any of this, a held
event counts as delivered once `process` returns: a crash before it is emitted loses it
from the broker's view.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator

from pipeline.receipts import CURRENT, Receipt, ReceiptGroup, current_share

Hold = Receipt
"""An open share of one source event's delivery; opaque to stages."""


def hold_delivery() -> Hold | None:
    """In `process`: keep the delivery of the event being processed open until the hold
    is emitted with (`delivering`) or released (`release`). None when no source tracks it."""
    return current_share()


@contextlib.contextmanager
def delivering(holds: Iterable[Hold | None]) -> Iterator[None]:
    """Emit, within the block, what the held events became: each source event settles once
    the sinks delivered it (or gave up). The holds are released when the block ends."""
    members = [hold for hold in holds if hold is not None]
    if not members:
        yield
        return
    group = members[0] if len(members) == 1 else ReceiptGroup(members)
    token = CURRENT.set(group)
    try:
        yield
    finally:
        CURRENT.reset(token)
        group.release()


def release(holds: Iterable[Hold | None], delivered: bool = True) -> None:
    """Settle holds whose events the stage dropped on purpose (`delivered=True`), or could
    not pass on (`delivered=False`: a broker source has the message sent again)."""
    for hold in holds:
        if hold is not None:
            hold.release(delivered)
