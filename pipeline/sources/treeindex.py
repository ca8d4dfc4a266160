"""What the watched trees hold, folder by folder: updated per event without I/O, flattened to diff.

A source that learns about changes from kernel events keeps this index so that, when it
has to rescan (the kernel dropped events, a watched path came back, the process
restarted), it can tell what changed since the last state it reported. Updating it is a
dict operation per event: the hot path never calls stat(). A path touched by an event is
therefore known only by a *mark* (the time, in ns, at which its last event was
reported) until a checkpoint stats it; `flatten` turns marks into stand-in entries that
`reconcile` resolves against a fresh scan.

Folders are nodes, so renaming a folder costs in proportion to the folders below it,
not to the size of the whole index.
"""

from __future__ import annotations

import contextlib
import stat as statmod
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

from pipeline.sources.snapshot import CTIME_NS, INO, MTIME_NS, SIZE, Entry, entry_of

Known = Entry | int
"""What is known of a path: its stat entry, or only the mark (time_ns) of its last event
(0: its content was never reported, as for a file created but not closed yet)."""

MARK_SLACK_NS = 10_000_000
"""File times come from the kernel's coarse clock, up to one tick (at most 10 ms) behind
the time of the write: a path changed within this long before its mark may have changed
after it."""


def pseudo_entry(mark: int, *, folder: bool) -> Entry:
    """The stand-in entry of a path known only by a mark: inode 0 and size -1 (no real
    entry has both), the mark in place of mtime and ctime."""
    return (statmod.S_IFDIR if folder else statmod.S_IFREG, 0, 0, -1, mark, mark, 0, 0)


def is_pseudo(entry: Entry) -> bool:
    return entry[INO] == 0 and entry[SIZE] == -1


def reconcile(
    old: dict[str, Entry], new: Mapping[str, Entry], unlisted: Mapping[str, int] = {}
) -> dict[str, Entry]:
    """`old` with its stand-in entries resolved against `new`, ready for `snapshot.diff`.

    A path known by a mark is unchanged if its times in `new` are older than the mark
    (less `MARK_SLACK_NS`), modified if its mtime is newer, attrib-changed if only its
    ctime is. A path in `new` below a folder of `unlisted` (folder path -> mark; its
    files were never listed) that `old` lacks existed before the mark if its ctime is
    older: it is taken as known, not as created.
    """
    for path, entry in old.items():
        if entry[INO] or entry[SIZE] != -1:
            continue
        now = new.get(path)
        if now is None:
            continue  # gone: reported deleted
        limit = entry[MTIME_NS] - MARK_SLACK_NS
        if statmod.S_ISDIR(now[0]):
            old[path] = now  # a folder's times follow its entries: not a change of its own
        elif now[MTIME_NS] > limit:  # written since: a size that cannot match
            old[path] = (now[0], now[1], now[2], -1, now[4], now[5], now[6], now[7])
        elif now[CTIME_NS] > limit:  # only its attributes changed since
            old[path] = (now[0], now[1], now[2], now[3], now[4], -1, now[6], now[7])
        else:
            old[path] = now
    if unlisted:
        for path, entry in new.items():
            if path in old:
                continue
            mark = unlisted.get(path.rpartition("/")[0])
            if mark is not None and entry[CTIME_NS] <= mark - MARK_SLACK_NS:
                old[path] = entry
    return old


class Folder:
    """One folder of a watched tree (or a single watched file: `single` is set)."""

    __slots__ = (
        "files", "folders", "known", "listed", "meta", "name", "parent", "path",
        "prefix", "single", "wd",
    )  # fmt: skip

    def __init__(
        self, path: str, name: str, parent: Folder | None, meta: Mapping[str, Any], known: Known
    ) -> None:
        self.path = path
        self.prefix = path if path.endswith("/") else path + "/"
        self.name = name
        self.parent = parent
        self.meta = meta
        self.known = known
        """The folder's own state."""
        self.files: dict[str, Known] = {}
        """Entries that are not folders (files, symlinks, ...), by name."""
        self.folders: dict[str, Folder] = {}
        self.wd = -1
        """Its watch (a kernel handle), or -1 while it has none."""
        self.listed = True
        """False while its files have not been read yet (`files` holds only later news)."""
        self.single = False

    def __repr__(self) -> str:
        return f"Folder({self.path!r}, wd={self.wd})"


def subtree(top: Folder) -> Iterator[Folder]:
    """`top` and every folder below it."""
    stack = [top]
    while stack:
        folder = stack.pop()
        yield folder
        stack.extend(folder.folders.values())


class TreeIndex:
    """The folders and files of every watched tree, with what is known of each."""

    def __init__(self) -> None:
        self.roots: dict[str, Folder] = {}
        self.dirty: set[Folder] = set()
        """Folders holding marks that a checkpoint should turn into stat entries."""

    def add_folder(self, parent: Folder, name: str, known: Known) -> Folder:
        folder = Folder(parent.prefix + name, name, parent, parent.meta, known)
        parent.files.pop(name, None)
        parent.folders[name] = folder
        return folder

    def detach(self, folder: Folder) -> list[Folder]:
        """Take `folder` out of its parent; return it and every folder below it."""
        parent = folder.parent
        if parent is not None and parent.folders.get(folder.name) is folder:
            del parent.folders[folder.name]
        gone = list(subtree(folder))
        if self.dirty:
            self.dirty.difference_update(gone)
        return gone

    def move(self, folder: Folder, parent: Folder, name: str) -> list[Folder]:
        """Make `folder` the child `name` of `parent`; return the folders it replaced.

        Costs one step per folder below `folder` (their paths change), whatever the
        size of the rest of the index.
        """
        old_parent = folder.parent
        if old_parent is not None and old_parent.folders.get(folder.name) is folder:
            del old_parent.folders[folder.name]
        replaced = parent.folders.get(name)
        gone = self.detach(replaced) if replaced is not None else []
        parent.files.pop(name, None)
        parent.folders[name] = folder
        folder.parent = parent
        folder.name = name
        for below in subtree(folder):
            above = below.parent
            assert above is not None
            below.path = above.prefix + below.name
            below.prefix = below.path + "/"
            below.meta = above.meta
        return gone

    def flatten(self, tops: Iterable[Folder]) -> dict[str, Entry]:
        """Every path in the trees of `tops` with its entry (stand-ins for marks)."""
        out: dict[str, Entry] = {}
        for top in tops:
            for folder in subtree(top):
                known = folder.known
                if not isinstance(known, tuple):
                    known = pseudo_entry(known, folder=not folder.single)
                out[folder.path] = known
                prefix = folder.prefix
                for name, value in folder.files.items():
                    out[prefix + name] = (
                        value if isinstance(value, tuple) else pseudo_entry(value, folder=False)
                    )
        return out

    @staticmethod
    def unlisted(tops: Iterable[Folder]) -> dict[str, int]:
        """Folders whose files were never read, to the mark of their watch."""
        return {
            folder.path: folder.known if isinstance(folder.known, int) else 0
            for top in tops
            for folder in subtree(top)
            if not folder.listed
        }

    def settle(self, stat: Callable[[str], Any]) -> None:
        """Replace the marks in dirty folders by stat entries (paths gone keep their mark)."""
        for folder in self.dirty:
            files, prefix = folder.files, folder.prefix
            for name, value in list(files.items()):
                if isinstance(value, int):
                    with contextlib.suppress(OSError):  # gone: its deletion is on its way
                        files[name] = entry_of(stat(prefix + name))
            if isinstance(folder.known, int):
                with contextlib.suppress(OSError):
                    folder.known = entry_of(stat(folder.path))
        self.dirty.clear()
