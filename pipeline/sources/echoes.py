"""Keeps the kernel events of changes a scan has already reported from being reported twice.

A scan made while events are queued (a new folder read right after its watch was added,
a rescan after an overflow, the catch-up at start) can see a change whose event is
still in the queue: a file created after the watch was added but before the folder was
listed is both listed and announced by an IN_CREATE. The scan records what it reported
here; the source drops the matching queued events. Once the queue has been read empty,
every event queued before the scan has gone by, and the records are forgotten.
"""

from __future__ import annotations

import os
from collections.abc import Callable

from pipeline.event import EventKind
from pipeline.sources.report import WRITTEN
from pipeline.sources.snapshot import INO, MTIME_NS, SIZE, Change, Entry, entry_of
from pipeline.sources.treeindex import Known

UNREPORTED = 0
"""What an echo is known by while its content is not reported yet (its close will be)."""


class ScanEchoes:
    """What the scans since the kernel queue was last empty reported."""

    __slots__ = ("_arrived", "_content", "_gone", "_probes", "active")

    def __init__(self) -> None:
        self.active = False
        """True while anything is recorded: the hot path checks only this."""
        self._arrived: set[str] = set()
        self._content: dict[str, Known] = {}
        self._gone: set[str] = set()
        self._probes: dict[str, int] = {}

    def note_scan(
        self,
        changes: list[Change],
        *,
        want_closed: bool,
        still_open: Callable[[str, Entry], bool],
        every: tuple[int, Callable[[], None]] | None = None,
    ) -> set[str]:
        """Record the changes a scan is about to report, so their queued events are not
        reported again; return the files still open for writing (they get no early
        `closed_write`: their own close will say it). A file closed since the scan is
        recorded, and reported, as it is now (`changes` is updated in place). `every`:
        (n, call) calls `call` every n changes (to keep draining a kernel queue)."""
        busy: set[str] = set()
        for index, change in enumerate(changes):
            if every is not None and index % every[0] == every[0] - 1:
                every[1]()
            kind, path, entry = change.kind, change.path, change.entry
            if kind is EventKind.DELETED:
                self.gone(path)
                continue
            known: Known = entry if entry is not None else UNREPORTED
            if want_closed and kind in WRITTEN and entry is not None:
                if still_open(path, entry):
                    busy.add(path)
                    known = UNREPORTED
                elif (now := _entry_now(path)) is not None:
                    known = now
                    changes[index] = change._replace(entry=now)
            if kind is EventKind.MOVED and change.src_path is not None:
                self.gone(change.src_path)
            if kind in (EventKind.CREATED, EventKind.MOVED):
                self.arrived(path, known)
            else:
                self.changed(path, known)
        return busy

    def arrived(self, path: str, known: Known) -> None:
        """A scan reported `path` new (created, or moved in): as it is now, `known`."""
        self._arrived.add(path)
        self._content[path] = known
        self._gone.discard(path)
        self.active = True

    def changed(self, path: str, known: Known) -> None:
        """A scan reported the content of `path` changed (it now is `known`)."""
        self._content[path] = known
        self.active = True

    def gone(self, path: str) -> None:
        """A scan reported `path` deleted (or moved away)."""
        self._gone.add(path)
        self._arrived.discard(path)
        self._content.pop(path, None)
        self.active = True

    def probed(self, path: str) -> None:
        """The source opened `path` read-only to look at it: the IN_OPEN and
        IN_CLOSE_NOWRITE that follow are its own."""
        self._probes[path] = self._probes.get(path, 0) + 2
        self.active = True

    def take_probe(self, path: str) -> bool:
        """Whether an IN_OPEN / IN_CLOSE_NOWRITE of `path` is one of the source's own."""
        left = self._probes.get(path, 0)
        if not left:
            return False
        if left == 1:
            del self._probes[path]
        else:
            self._probes[path] = left - 1
        return True

    def take_arrival(self, path: str) -> bool:
        """Whether an IN_CREATE / IN_MOVED_TO of `path` is one a scan already reported."""
        if path in self._arrived:
            self._arrived.discard(path)
            return True
        return False

    def take_gone(self, path: str) -> bool:
        """Whether an IN_DELETE / IN_MOVED_FROM of `path` is one a scan already reported."""
        if path in self._gone:
            self._gone.discard(path)
            return True
        return False

    def take_content(self, path: str) -> bool:
        """Whether an IN_CLOSE_WRITE of `path` closed the content a scan already reported:
        the file still has the inode, size and mtime the scan saw (one stat, only for
        paths a scan reported)."""
        known = self._content.pop(path, None)
        if not isinstance(known, tuple):
            return False
        try:
            now = os.stat(path, follow_symlinks=False)
        except OSError:
            return False
        return (now.st_ino, now.st_size, now.st_mtime_ns) == (
            known[INO], known[SIZE], known[MTIME_NS],
        )  # fmt: skip

    def clear(self) -> None:
        if self.active:
            self._arrived.clear()
            self._content.clear()
            self._gone.clear()
            self._probes.clear()
            self.active = False


def _entry_now(path: str) -> Entry | None:
    """`path`'s entry now, or None if it cannot be read."""
    try:
        return entry_of(os.lstat(path))
    except OSError:
        return None
