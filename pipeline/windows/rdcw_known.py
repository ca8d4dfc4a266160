"""What the `windows` source knows of its trees, kept up to date from change records.

A rescan (after an overflow, a lost handle, a restart) must tell what changed since the
state last reported. That state is a flat map of path -> snapshot entry, updated per
record without I/O: a path touched by a record is known only by a *mark* (a stand-in
entry, `treeindex.pseudo_entry`) that `treeindex.reconcile` resolves against the fresh
scan, exactly as the inotify source's index does. `settle` turns marks into stat entries
before a checkpoint is saved.

Paths use the platform separator (`sep`), as `snapscan.scan` writes them.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable, Mapping

from pipeline.sources.snapshot import Entry, entry_of, is_dir
from pipeline.sources.treeindex import is_pseudo, pseudo_entry

MARK_LAG_NS = 32_000_000
"""How much earlier than the handling of a record its mark is set. NTFS stamps file times
from the coarse system clock (15.6 ms ticks unless a program asks for finer), so a write
just after a mark can carry a time up to a tick before it; `reconcile` allows 10 ms. Set
early, the mark still counts such a write as a change: a rescan may report a file
written shortly before the mark again, never miss one written after it."""


def record_mark() -> int:
    """The mark for a record handled now."""
    return time.time_ns() - MARK_LAG_NS


class KnownTree:
    """Every path of the watched trees, to its entry or its mark."""

    def __init__(self, sep: str = os.sep) -> None:
        self.sep = sep
        self.entries: dict[str, Entry] = {}
        self.changed = False
        """Whether anything changed since the last `take` (a checkpoint is due)."""

    def __len__(self) -> int:
        return len(self.entries)

    def is_dir(self, path: str) -> bool | None:
        """Whether `path` is a folder, as far as known (None: not known)."""
        entry = self.entries.get(path)
        return None if entry is None else is_dir(entry)

    def touch(self, path: str, folder: bool, mark: int) -> None:
        """`path` was created or changed at `mark` (time_ns)."""
        before = self.entries.get(path)
        if folder and before is not None and is_dir(before):
            return  # a folder's own times follow its entries: nothing to remember
        self.entries[path] = pseudo_entry(mark, folder=folder)
        self.changed = True

    def remove(self, path: str) -> None:
        """`path` is gone, with everything below it if it was a folder."""
        before = self.entries.pop(path, None)
        if before is None or is_dir(before):
            prefix = path + self.sep
            for below in [p for p in self.entries if p.startswith(prefix)]:
                del self.entries[below]
        self.changed = True

    def move(self, src: str, dst: str, folder: bool, mark: int) -> None:
        """`src` was renamed to `dst` (with everything below it, for a folder)."""
        self.remove(dst)
        entry = self.entries.pop(src, None)
        self.entries[dst] = pseudo_entry(mark, folder=folder) if entry is None else entry
        if folder:
            prefix, moved = src + self.sep, dst + self.sep
            below = [p for p in self.entries if p.startswith(prefix)]
            for path in below:
                self.entries[moved + path[len(prefix) :]] = self.entries.pop(path)
        self.changed = True

    def within(self, root: str) -> dict[str, Entry]:
        """The entries of `root` and below (a copy)."""
        prefix = root + self.sep if not root.endswith(self.sep) else root
        return {p: e for p, e in self.entries.items() if p == root or p.startswith(prefix)}

    def replace_within(self, root: str, fresh: Mapping[str, Entry]) -> None:
        """Forget what was known at and below `root`; know `fresh` there instead."""
        for path in self.within(root):
            del self.entries[path]
        self.entries.update(fresh)
        self.changed = True

    def settle(self, stat: Callable[[str], os.stat_result]) -> None:
        """Replace marks by stat entries (a path gone keeps its mark: its record is due)."""
        for path, entry in list(self.entries.items()):
            if is_pseudo(entry):
                with contextlib.suppress(OSError):
                    self.entries[path] = entry_of(stat(path))

    def take(self, stat: Callable[[str], os.stat_result]) -> dict[str, Entry]:
        """The settled state to save in a checkpoint."""
        self.settle(stat)
        self.changed = False
        return dict(self.entries)
