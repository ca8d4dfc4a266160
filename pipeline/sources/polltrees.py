"""Folders a watching source could not watch (no watch left), polled with stat scans instead.

Each such folder is scanned, with everything below it, every `interval`, in a worker
thread; what changed between two scans is reported like the `poll` source reports it. A
rescan lists only the folders whose times moved (see `snapscan.scan`, `reuse_listings`).
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Mapping

from pipeline.sources.snapscan import scan
from pipeline.sources.snapshot import Change, Entry, Snapshot, below, diff


class PolledTrees:
    """The polled folders (tops), each with its last scan."""

    def __init__(self, interval: float, *, follow_symlinks: bool) -> None:
        self.interval = interval
        self.follow = follow_symlinks
        self.tops: dict[str, Snapshot] = {}

    def __bool__(self) -> bool:
        return bool(self.tops)

    def _scan(self, top: str, previous: Snapshot | None) -> Snapshot:
        return scan([top], previous=previous, follow_symlinks=self.follow, reuse_listings=True)

    def add(self, top: str) -> Mapping[str, Entry]:
        """Start polling `top` (unless a top above it is polled); return what it holds."""
        if any(top == t or top.startswith(below(t)) for t in self.tops):
            return {}
        for inner in [t for t in self.tops if t.startswith(below(top))]:
            del self.tops[inner]
        snapshot = self._scan(top, None)
        self.tops[top] = snapshot
        return snapshot.entries

    def drop(self, path: str) -> None:
        """Stop polling the tops at or below `path` (it is gone)."""
        for top in [t for t in self.tops if t == path or t.startswith(below(path))]:
            del self.tops[top]

    def rename(self, old: str, new: str) -> None:
        """The folder `old` is now `new`: polled tops at or below it follow it."""
        for top in [t for t in self.tops if t == old or t.startswith(below(old))]:
            snapshot = self.tops.pop(top)
            moved = {new + p[len(old) :]: e for p, e in snapshot.entries.items()}
            self.tops[new + top[len(old) :]] = Snapshot(moved, {}, [])

    async def poll(self) -> list[Change]:
        """Scan every top again; return what changed since the last scan."""
        changes: list[Change] = []
        for top, previous in list(self.tops.items()):
            current = await asyncio.to_thread(functools.partial(self._scan, top, previous))
            if self.tops.get(top) is not previous:
                continue  # dropped or renamed meanwhile
            self.tops[top] = current
            # The top itself is in a watched folder, whose events report it.
            found = diff(previous.entries, current.entries, touched=current.touched)
            changes.extend(c for c in found if c.path != top)
        return changes
