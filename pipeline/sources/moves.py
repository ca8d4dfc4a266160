"""Pairs the two halves of a rename (IN_MOVED_FROM, IN_MOVED_TO) by their cookie.

The kernel queues the halves of one rename one right after the other, but another CPU's
event can slip in between them; so a first half is paired with any second half found
within the next `LOOKAHEAD` records, and counts as a rename out of every watched path
(reported `deleted`) only once those records have gone by without it, or once `wait`
seconds have passed when nothing more arrived.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from typing import Generic, TypeVar

from pipeline.linux.inotify import IN_MOVED_TO, Record

LOOKAHEAD = 64
"""Records searched for a rename's second half: far more than ever slip in between."""

T = TypeVar("T")


class MoveOrigin(Generic[T]):
    """A rename's first half: the old path, and whatever its caller attached (`where`)."""

    __slots__ = ("deadline", "is_dir", "path", "where")

    def __init__(self, path: str, is_dir: bool, where: T, deadline: float) -> None:
        self.path = path
        self.is_dir = is_dir
        self.where = where
        self.deadline = deadline


def partner_ahead(records: Sequence[Record], start: int, cookie: int) -> bool:
    """Whether the second half of rename `cookie` is among the LOOKAHEAD records from `start`."""
    for index in range(start, min(start + LOOKAHEAD, len(records))):
        _, mask, other, _ = records[index]
        if other == cookie and mask & IN_MOVED_TO:
            return True
    return False


class MovePairer(Generic[T]):
    """Holds first halves until their second half arrives or they expire."""

    def __init__(self, wait: float) -> None:
        self.wait = wait
        self._pending: OrderedDict[int, MoveOrigin[T]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._pending)

    def __contains__(self, cookie: int) -> bool:
        return cookie in self._pending

    def moved_from(self, cookie: int, path: str, is_dir: bool, where: T, now: float) -> None:
        self._pending[cookie] = MoveOrigin(path, is_dir, where, now + self.wait)

    def moved_to(self, cookie: int) -> MoveOrigin[T] | None:
        """The origin of this cookie's rename, or None if it came from outside."""
        return self._pending.pop(cookie, None)

    def unpartnered(self, records: Sequence[Record]) -> list[MoveOrigin[T]]:
        """Remove and return the pending first halves whose second half is not at the
        start of `records` (the next batch read), oldest first."""
        gone = [cookie for cookie in self._pending if not partner_ahead(records, 0, cookie)]
        return [self._pending.pop(cookie) for cookie in gone]

    def expired(self, now: float) -> list[MoveOrigin[T]]:
        """Remove and return the origins whose partner did not come in time, oldest first."""
        gone: list[MoveOrigin[T]] = []
        while self._pending:
            cookie, origin = next(iter(self._pending.items()))
            if origin.deadline > now:
                break
            del self._pending[cookie]
            gone.append(origin)
        return gone

    def drain(self) -> list[MoveOrigin[T]]:
        """Remove and return every pending origin (at shutdown, or before a rescan)."""
        gone = list(self._pending.values())
        self._pending.clear()
        return gone

    def next_deadline(self) -> float | None:
        if not self._pending:
            return None
        return next(iter(self._pending.values())).deadline
