"""What the watched trees hold: every path's stat entry, and the entries of each folder."""

from __future__ import annotations

import os
import stat as statmod
from collections.abc import Iterable, Iterator, Mapping

from pipeline.sources.snapshot import DEV, INO, MODE, Entry, is_dir


def same_file(before: Entry, after: Entry) -> bool:
    """Whether two entries of one path are the same file (device, inode and type)."""
    return (
        before[INO] == after[INO]
        and before[DEV] == after[DEV]
        and statmod.S_IFMT(before[MODE]) == statmod.S_IFMT(after[MODE])
    )


class Tree:
    """The entries of every watched tree (roots included), as a snapshot scan gives them,
    with an index of each folder's entries so that one folder is read without the rest."""

    def __init__(self) -> None:
        self.entries: dict[str, Entry] = {}
        """Path (str, surrogate escapes for bytes that are not UTF-8) to its stat entry."""
        self._children: dict[str, set[str]] = {}

    def __contains__(self, path: object) -> bool:
        return path in self.entries

    def __len__(self) -> int:
        return len(self.entries)

    def is_folder(self, path: str) -> bool:
        entry = self.entries.get(path)
        return entry is not None and is_dir(entry)

    def children(self, folder: str) -> set[str]:
        """The paths directly in `folder` (empty for a folder whose entries are unknown)."""
        return self._children.get(folder, set())

    def subtree(self, path: str) -> Iterator[str]:
        """`path` and every path below it."""
        stack = [path]
        while stack:
            current = stack.pop()
            yield current
            stack.extend(self._children.get(current, ()))

    def folders(self) -> list[str]:
        return [path for path, entry in self.entries.items() if is_dir(entry)]

    def replace(self, old: Iterable[str], new: Mapping[str, Entry]) -> None:
        """Forget the paths of `old` that `new` lacks, then take every entry of `new`."""
        for path in old:
            if path not in new:
                self._forget(path)
        entries, children = self.entries, self._children
        for path, entry in new.items():
            entries[path] = entry
            if is_dir(entry):
                children.setdefault(path, set())
            else:
                children.pop(path, None)
        for path in new:
            siblings = children.get(os.path.dirname(path))
            if siblings is not None and path != os.path.dirname(path):
                siblings.add(path)

    def _forget(self, path: str) -> None:
        if self.entries.pop(path, None) is None:
            return
        self._children.pop(path, None)
        siblings = self._children.get(os.path.dirname(path))
        if siblings is not None:
            siblings.discard(path)
