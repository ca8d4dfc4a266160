"""Pairs the two halves of a rename (MOVED_FROM, MOVED_TO) by their cookie."""

from __future__ import annotations

from collections import OrderedDict
from typing import NamedTuple


class MoveOrigin(NamedTuple):
    path: str
    is_dir: bool
    deadline: float


class MovePairer:
    """Holds MOVED_FROM halves until their MOVED_TO arrives or `wait` seconds pass.

    A FROM whose TO never comes was a rename out of every watched path: the caller
    reports it as `deleted` once it expires.
    """

    def __init__(self, wait: float) -> None:
        self.wait = wait
        self._pending: OrderedDict[int, MoveOrigin] = OrderedDict()

    def __len__(self) -> int:
        return len(self._pending)

    def __contains__(self, cookie: int) -> bool:
        return cookie in self._pending

    def moved_from(self, cookie: int, path: str, is_dir: bool, now: float) -> None:
        self._pending[cookie] = MoveOrigin(path, is_dir, now + self.wait)

    def moved_to(self, cookie: int) -> MoveOrigin | None:
        """The origin of this cookie's rename, or None if it came from outside."""
        return self._pending.pop(cookie, None)

    def expired(self, now: float) -> list[MoveOrigin]:
        """Remove and return the origins whose partner did not come in time, oldest first."""
        gone: list[MoveOrigin] = []
        while self._pending:
            cookie, origin = next(iter(self._pending.items()))
            if origin.deadline > now:
                break
            del self._pending[cookie]
            gone.append(origin)
        return gone

    def drain(self) -> list[MoveOrigin]:
        """Remove and return every pending origin (at shutdown, or before a rescan)."""
        gone = list(self._pending.values())
        self._pending.clear()
        return gone

    def next_deadline(self) -> float | None:
        if not self._pending:
            return None
        return next(iter(self._pending.values())).deadline
