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

from pipeline.sources.snapshot import INO, MTIME_NS, SIZE
from pipeline.sources.treeindex import Known


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
