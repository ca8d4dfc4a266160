"""The last known state of the `fanotify` source's trees, to find what an overflow hid.

An index holds the stat entry (see `pipeline.sources.snapshot.Entry`) of every path under
the configured paths, grouped by folder so that a folder rename moves its subtree without
looking at every path. It is built by one scan at start and kept current from the events
(one `lstat` per reported change). After a kernel queue overflow the trees are scanned
again and `snapshot.diff` turns index → scan into the changes to report.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence

from pipeline.sources.snapshot import Change, Entry, Snapshot, diff, entry_of, is_dir, scan


def _split(path: str) -> tuple[str, str]:
    parent, _, name = path.rpartition("/")
    return (parent or "/"), name


def _join(parent: str, name: str) -> str:
    return parent + name if parent.endswith("/") else parent + "/" + name


class TreeIndex:
    """Path → stat entry, as {folder path: {entry name: entry}}."""

    __slots__ = ("tree",)

    def __init__(self) -> None:
        self.tree: dict[str, dict[str, Entry]] = {}

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

    def folders(self) -> Iterable[str]:
        """Every path known to be a folder."""
        for parent, folder in self.tree.items():
            for name, entry in folder.items():
                if is_dir(entry):
                    yield _join(parent, name)

    def refresh(self, path: str) -> None:
        """Record what `path` is now (forget it if it is gone)."""
        try:
            st = os.lstat(path)
        except OSError:
            self.discard(path)
            return
        parent, name = _split(path)
        folder = self.tree.get(parent)
        if folder is None:
            folder = self.tree[parent] = {}
        folder[name] = entry_of(st)

    def discard(self, path: str) -> None:
        """Forget `path` (a folder's entries are forgotten by their own deletions)."""
        parent, name = _split(path)
        folder = self.tree.get(parent)
        if folder is not None and folder.pop(name, None) is not None and not folder:
            del self.tree[parent]
        self.tree.pop(path, None)

    def discard_tree(self, path: str) -> None:
        """Forget `path` and everything below it (a folder moved out)."""
        self.discard(path)
        prefix = path + "/"
        for parent in [p for p in self.tree if p.startswith(prefix)]:
            del self.tree[parent]

    def move(self, old: str, new: str) -> None:
        """`old` was renamed to `new`: move its entry and, for a folder, its subtree."""
        prefix = old + "/"
        for parent in [p for p in self.tree if p == old or p.startswith(prefix)]:
            self.tree[new + parent[len(old) :]] = self.tree.pop(parent)
        self.discard(old)
        self.refresh(new)


def rescan(
    roots: Sequence[str], recursive: bool, previous: Mapping[str, Entry] | None
) -> tuple[Snapshot, list[Change]]:
    """Scan the trees; return the scan and the changes since `previous` (none if None).

    Blocking (one stat per entry): run it in a thread.
    """
    snapshot = scan(roots, recursive=recursive)
    return snapshot, ([] if previous is None else diff(previous, snapshot.entries))
