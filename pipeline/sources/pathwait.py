"""Waits for watched paths that do not exist (yet), with an inotify instance of its own.

For each path it watches the nearest folder above it that exists, and looks again
whenever that folder changes, until the path is there. Using a separate instance keeps
these watches apart from the source's own (the kernel would merge two watches of one
folder into one descriptor).
"""

from __future__ import annotations

import errno
import os
import sys
from typing import TYPE_CHECKING

from pipeline.linux import inotify as api

if TYPE_CHECKING:
    from structlog.typing import FilteringBoundLogger

WAIT_MASK = (
    api.IN_CREATE | api.IN_MOVED_TO | api.IN_ATTRIB | api.IN_DELETE_SELF | api.IN_MOVE_SELF
    | api.IN_ONLYDIR
)  # fmt: skip
ENCODING = sys.getfilesystemencoding()
ERRORS = sys.getfilesystemencodeerrors()


class PathWaiter:
    """Paths being waited for; `check()` returns those that appeared."""

    def __init__(self, log: FilteringBoundLogger) -> None:
        self.log = log
        self.fd = -1
        self._paths: dict[str, int] = {}  # path -> watch of the folder above it, or -1
        self._watched: set[int] = set()
        self.blind = False
        """True when some path has no folder above it that can be watched: the caller
        should then call `check()` now and then."""

    def __bool__(self) -> bool:
        return bool(self._paths)

    def __contains__(self, path: str) -> bool:
        return path in self._paths

    def add(self, path: str) -> None:
        if self.fd < 0:
            self.fd = api.init()
        self._paths[path] = -1

    def discard(self, path: str) -> None:
        if self._paths.pop(path, None) is not None:
            self._prune()

    def check(self) -> list[str]:
        """Read this instance's events; return (and stop waiting for) the paths that exist."""
        if self.fd >= 0:
            while api.read_events(self.fd):
                pass
        ready: list[str] = []
        self.blind = False
        for path in list(self._paths):
            if not os.path.exists(path):
                # Watch first, then look again: a path made in between is not missed.
                self._paths[path] = self._watch_above(path)
                if not os.path.exists(path):
                    self.blind = self.blind or self._paths[path] < 0
                    continue
            ready.append(path)
            del self._paths[path]
        self._prune()
        return ready

    def _watch_above(self, path: str) -> int:
        folder = os.path.dirname(path)
        while True:
            wd = api.watcher(self.fd)(folder.encode(ENCODING, ERRORS), WAIT_MASK)
            if wd >= 0:
                self._watched.add(wd)
                return wd
            if -wd not in (errno.ENOENT, errno.ENOTDIR, errno.EACCES) or folder == "/":
                return -1
            parent = os.path.dirname(folder)
            if parent == folder:
                return -1
            folder = parent

    def _prune(self) -> None:
        """Remove the watches no waited-for path needs any more; close when none is left."""
        if self.fd < 0:
            return
        if not self._paths:
            os.close(self.fd)
            self.fd = -1
            self._watched.clear()
            return
        for wd in self._watched - set(self._paths.values()):
            self._watched.discard(wd)
            try:
                api.rm_watch(self.fd, wd)
            except OSError as exc:
                self.log.debug("rm_watch failed", error=exc.strerror)

    def close(self) -> None:
        self._paths.clear()
        self._prune()
