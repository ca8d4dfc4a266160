"""The last known state of the `fanotify` source's trees, to find what it missed.

An index holds an entry (see `pipeline.sources.snapshot.Entry`) for every path under the
configured paths, grouped by folder so that a folder rename moves its subtree without
looking at every path. It is built by one scan at start and kept current from the events
without any I/O on the hot path: a path an event touched holds a stand-in entry with the
*mark* of that event (`treeindex.pseudo_entry`) until `settle` stats it, in one batch per
checkpoint. After a kernel queue overflow, or at the next start, a scan is compared with
it (`treeindex.reconcile` resolves the marks) to tell what changed since.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Mapping

from pipeline.sources.snapshot import Entry, entry_of, is_dir
from pipeline.sources.treeindex import is_pseudo, pseudo_entry

UNKNOWN = 0
"""The mark of a path whose last change may not have been reported: any file time is
newer, so the next comparison reports it."""


def _split(path: str) -> tuple[str, str]:
    parent, _, name = path.rpartition("/")
    return (parent or "/"), name


def _join(parent: str, name: str) -> str:
    return parent + name if parent.endswith("/") else parent + "/" + name


class TreeIndex:
    """Path → entry (stat, or a stand-in for a mark), as {folder path: {entry name: entry}}."""

    __slots__ = ("dirty", "tree")

    def __init__(self) -> None:
        self.tree: dict[str, dict[str, Entry]] = {}
        self.dirty: set[str] = set()
        """Folders (keys of `tree`) holding stand-ins that `settle` should stat."""

    @classmethod
    def from_entries(cls, entries: Mapping[str, Entry]) -> TreeIndex:
        index = cls()
        tree = index.tree
        for path, entry in entries.items():
            parent, name = _split(path)
            folder = tree.get(parent)
            if folder is None:
                folder = tree[parent] = {}
            folder[name] = entry
            if is_pseudo(entry):
                index.dirty.add(parent)
        return index

    def __len__(self) -> int:
        return sum(len(folder) for folder in self.tree.values())

    def entries(self) -> dict[str, Entry]:
        """Every path and its entry, as one flat mapping."""
        return {
            _join(parent, name): entry
            for parent, folder in self.tree.items()
            for name, entry in folder.items()
        }

    def get(self, path: str) -> Entry | None:
        parent, name = _split(path)
        folder = self.tree.get(parent)
        return folder.get(name) if folder is not None else None

    # -- from events (no I/O) ----------------------------------------------------------

    def touch(self, path: str, mark: int, *, folder: bool) -> None:
        """An event about `path` was reported at `mark` (time_ns): remember only that."""
        parent, name = _split(path)
        entries = self.tree.get(parent)
        if entries is None:
            entries = self.tree[parent] = {}
        entries[name] = pseudo_entry(mark, folder=folder)
        self.dirty.add(parent)

    def unknown(self, path: str) -> None:
        """The last change of `path` may not have been reported: count it changed."""
        current = self.get(path)
        if current is not None:
            self.touch(path, UNKNOWN, folder=is_dir(current))

    def discard(self, path: str) -> None:
        """Forget `path` (a folder's entries are forgotten by their own deletions)."""
        parent, name = _split(path)
        folder = self.tree.get(parent)
        if folder is not None and folder.pop(name, None) is not None and not folder:
            del self.tree[parent]
            self.dirty.discard(parent)
        if self.tree.pop(path, None) is not None:
            self.dirty.discard(path)

    def discard_tree(self, path: str) -> None:
        """Forget `path` and everything below it (a folder moved out)."""
        self.discard(path)
        prefix = path + "/"
        for parent in [p for p in self.tree if p.startswith(prefix)]:
            del self.tree[parent]
            self.dirty.discard(parent)

    def move(self, old: str, new: str, mark: int, *, folder: bool) -> None:
        """`old` was renamed to `new` (reported at `mark`): move its entry and, for a
        folder, its subtree. Costs one step per folder of the index."""
        prefix = old + "/"
        for parent in [p for p in self.tree if p == old or p.startswith(prefix)]:
            moved = new + parent[len(old) :]
            self.tree[moved] = self.tree.pop(parent)
            if parent in self.dirty:
                self.dirty.discard(parent)
                self.dirty.add(moved)
        self.discard(old)
        self.touch(new, mark, folder=folder)

    # -- at checkpoints ----------------------------------------------------------------

    def settle(self, stat: Callable[[str], os.stat_result] = os.lstat) -> list[str]:
        """Replace the stand-ins by stat entries; return the paths replaced. A path gone
        keeps its stand-in: its deletion is on its way, or the next comparison finds it."""
        tree = self.tree
        settled: list[str] = []
        for parent in self.dirty:
            entries = tree.get(parent)
            if entries is None:
                continue
            for name, entry in entries.items():
                if is_pseudo(entry):
                    path = _join(parent, name)
                    with contextlib.suppress(OSError):
                        entries[name] = entry_of(stat(path))
                        settled.append(path)
        self.dirty.clear()
        return settled
