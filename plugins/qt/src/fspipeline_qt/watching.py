"""Which paths a `qt` source has Qt watch, and which Qt could not watch (read instead).

Qt refuses a path when inotify has no watch left (`fs.inotify.max_user_watches`), and
cannot name one whose name is not UTF-8. Such paths are kept in `unwatched` and read
again every `poll_interval` (a folder's listing, a file's stat), so a change there is
reported late, never lost. The first refusal is logged as a warning that says what to
do; Qt is asked again at each full rescan.
"""

from __future__ import annotations

import stat as statmod
from collections.abc import Collection, Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from pipeline.display import printable
from pipeline.sources.snapshot import MODE, Entry, is_dir

from fspipeline_qt.watcher import QtWatcher, nameable

if TYPE_CHECKING:
    from structlog.typing import FilteringBoundLogger

WATCH_LIMIT = Path("/proc/sys/fs/inotify/max_user_watches")
EXAMPLES = 3


def _watch_limit() -> str | None:
    try:
        return WATCH_LIMIT.read_text().strip()
    except OSError:
        return None  # not Linux


class Watches:
    """The watch policy of one source over its QtWatcher."""

    def __init__(
        self,
        watcher: QtWatcher,
        *,
        roots: Collection[str],
        recursive: bool,
        watch_files: bool,
        poll_interval: float,
        log: FilteringBoundLogger,
    ) -> None:
        self.watcher = watcher
        self.roots = frozenset(roots)
        self.recursive = recursive
        self.watch_files = watch_files
        self.poll_interval = poll_interval
        self.log = log
        self.unwatched: dict[str, bool] = {}
        """Paths Qt does not watch, to whether each is a folder; read every poll_interval."""
        self._refused: set[str] = set()
        self._warned_refused = False
        self._warned_unnameable = False

    def wanted(self, path: str, entry: Entry) -> bool:
        """Whether `path` should have a watch: every folder of a recursive source (the
        roots only otherwise), and regular files with `watch_files` (a watched file root
        always). Symlinks are not followed, so never watched."""
        if is_dir(entry):
            return self.recursive or path in self.roots
        return statmod.S_ISREG(entry[MODE]) and (self.watch_files or path in self.roots)

    async def add(self, entries: Mapping[str, Entry], *, again: bool = False) -> list[str]:
        """Watch the paths of `entries` that want it (`again`: drop their watches first);
        return those now watched. The others are read every poll_interval instead."""
        wanted = [path for path, entry in entries.items() if self.wanted(path, entry)]
        if not wanted:
            return []
        unnameable = [path for path in wanted if not nameable(path)]
        asked = [path for path in wanted if nameable(path)] if unnameable else wanted
        refused = set(await self.watcher.watch(asked, again=again)) if asked else set()
        watched = [path for path in asked if path not in refused] if refused else asked
        for path in watched:
            self.unwatched.pop(path, None)
        if refused:
            self._note_refused(sorted(refused), entries)
        elif self._refused:
            self._refused.difference_update(watched)
            if not self._refused:
                self.log.info("Qt watches every path again")
        if unnameable:
            self._note_unnameable(unnameable, entries)
        return watched

    async def drop(self, paths: Collection[str]) -> None:
        """Stop watching `paths` (gone, or now another file)."""
        for path in paths:
            self.unwatched.pop(path, None)
            self._refused.discard(path)
        asked = [path for path in paths if nameable(path)]
        if asked:
            await self.watcher.unwatch(asked)

    def _note_refused(self, refused: list[str], entries: Mapping[str, Entry]) -> None:
        fresh = not self._refused
        self._refused.update(refused)
        for path in refused:
            self.unwatched[path] = is_dir(entries[path])
        if not fresh:
            return
        details = {
            "count": len(refused),
            "paths": refused[:EXAMPLES],
            "max_user_watches": _watch_limit(),
            "every_seconds": self.poll_interval,
        }
        if self._warned_refused:
            self.log.info("Qt refused to watch more paths; reading them instead", **details)
            return
        self._warned_refused = True
        self.log.warning(
            "Qt could not watch some paths (inotify watch limit reached?); they are read "
            "every poll_interval instead, so their changes come late but are not lost. Raise "
            "the limit (sysctl -w fs.inotify.max_user_watches=N), set `watch_files: false` "
            "(one watch per folder), or use the `inotify` source with `on_watch_limit: poll`",
            **details,
        )

    def _note_unnameable(self, paths: list[str], entries: Mapping[str, Entry]) -> None:
        for path in paths:
            self.unwatched[path] = is_dir(entries[path])
        if self._warned_unnameable:
            return
        self._warned_unnameable = True
        self.log.warning(
            "Qt cannot watch paths whose names are not UTF-8; they are read every "
            "poll_interval instead (use the `inotify` source to watch them as they change)",
            count=len(paths),
            paths=[printable(path) for path in paths[:EXAMPLES]],
            every_seconds=self.poll_interval,
        )
