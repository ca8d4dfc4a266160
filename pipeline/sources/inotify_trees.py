"""What an inotify source knows of its watched paths: index, watches, and the paths it waits for.

The event router and the recovery of an inotify source share this state; it also holds
the few operations both need: establishing a watched path, adding a new folder, and
reporting what a scan found.
"""

from __future__ import annotations

import asyncio
import functools
import os
import stat as statmod
from collections.abc import Mapping
from datetime import UTC, datetime
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from pipeline.components import Emit
from pipeline.event import Event, EventKind
from pipeline.sources.echoes import UNREPORTED, ScanEchoes
from pipeline.sources.inotify_watches import Found, Watches
from pipeline.sources.moves import MovePairer
from pipeline.sources.pathwait import PathWaiter
from pipeline.sources.polltrees import PolledTrees
from pipeline.sources.report import change_events
from pipeline.sources.snapshot import Change, Entry, entry_of, is_dir
from pipeline.sources.treeindex import Folder, Known
from pipeline.sources.writers import open_for_writing

if TYPE_CHECKING:
    from structlog.typing import FilteringBoundLogger

EMPTY: Mapping[str, Any] = MappingProxyType({})


class InotifyTrees:
    """The watched trees of one inotify source."""

    def __init__(
        self,
        watches: Watches,
        *,
        roots: list[str],
        wanted: frozenset[EventKind],
        source: str,
        recursive: bool,
        move_wait: float,
        poll_interval: float,
        track: bool,
        log: FilteringBoundLogger,
    ) -> None:
        self.watches = watches
        self.index = watches.index
        self.wanted = wanted
        self.source = source
        self.recursive = recursive
        self.follow = watches.follow
        self.track = track
        """Whether changed folders are noted for checkpoints (`index.dirty`)."""
        self.changed = False
        """Whether the index changed since the last checkpoint was taken."""
        self.log = log
        self.echoes = ScanEchoes()
        self.moves: MovePairer[tuple[Folder, str]] = MovePairer(move_wait)
        self.polled = PolledTrees(poll_interval, follow_symlinks=self.follow)
        self.poll_at = 0.0
        self.waiter = PathWaiter(log)
        self.lost: dict[str, Folder | None] = {}
        """Watched paths not there now, to what was known of them (None: nothing)."""
        self._metas = sorted(
            ((root, root.rstrip("/") + "/", MappingProxyType({"root": root})) for root in roots),
            key=lambda item: len(item[0]),
            reverse=True,
        )

    def meta_for(self, path: str) -> Mapping[str, Any]:
        """The shared meta of the (innermost) watched path that `path` is in."""
        for root, prefix, meta in self._metas:
            if path == root or path.startswith(prefix):
                return meta
        return EMPTY

    def flat(self) -> dict[str, Entry]:
        """Every path known, with its entry: the index, and the polled folders."""
        entries = self.index.flatten(self.index.roots.values())
        for snapshot in self.polled.tops.values():
            entries.update(snapshot.entries)
        return entries

    # -- adding what is watched ---------------------------------------------------------

    def establish(
        self, root: str, *, mark: int, stat: bool, found: list[Found] | None = None
    ) -> Folder | None:
        """Watch `root` and read what it holds into the index; None if it is not there."""
        try:
            st = os.stat(root)
        except OSError:
            return None
        folder = Folder(root, "", None, self.meta_for(root), entry_of(st) if stat else mark)
        folder.single = not statmod.S_ISDIR(st.st_mode)
        if not self.watches.watch(folder, root=True):
            if folder not in self.watches.limited:
                return None
            folder.listed = False  # no watch left even for the root: all of it is polled
        elif not folder.single:
            self.watches.walk(folder, mark=mark, stat=stat, found=found, recursive=self.recursive)
        self.index.roots[root] = folder
        self.adopt_limited(found)
        return folder

    def discover(self, parent: Folder, name: str, mark: int) -> list[Found]:
        """Add folder `name` of `parent` to the index, watched and read; return its entries."""
        found: list[Found] = []
        if parent.prefix + name in self.watches.exclude:
            return found
        child = self.index.add_folder(parent, name, mark)
        if not self.recursive:
            return found
        if self.watches.watch(child):
            self.watches.walk(child, mark=mark, stat=True, found=found)
        else:
            child.listed = False
        self.adopt_limited(found)
        return found

    def adopt_limited(self, found: list[Found] | None) -> None:
        """Poll the folders a walk could not watch for lack of watches."""
        limited = self.watches.limited
        if not limited:
            return
        for folder in limited:
            entries = self.polled.add(folder.path)
            if found is not None:
                found.extend((p, is_dir(e), e) for p, e in entries.items() if p != folder.path)
        limited.clear()
        if self.poll_at == 0.0:
            self.poll_at = asyncio.get_running_loop().time() + self.polled.interval

    def drop_folder(self, parent: Folder, name: str, path: str) -> None:
        """Folder `name` of `parent` is gone: forget it, its watches and what is below."""
        child = parent.folders.pop(name, None)
        if child is not None:
            self.watches.forget(self.index.detach(child))
        if self.polled:
            self.polled.drop(path)

    def wait_for(self, root: str, known: Folder | None) -> None:
        self.lost[root] = known
        if root not in self.waiter:
            self.log.warning("watched path is not there; waiting for it", path=root)
            self.waiter.add(root)

    # -- reporting what a scan found ----------------------------------------------------

    def still_open(self, path: str, known: Known) -> bool:
        """Whether a file a scan found is still open for writing: its own close will then
        be reported (its folder is watched), so the scan does not report one early. Only
        asked when `closed_write` is wanted; the probe's own open is not reported."""
        if isinstance(known, tuple) and not statmod.S_ISREG(known[0]):
            return False
        return open_for_writing(path, functools.partial(self.echoes.probed, path)) is True

    async def announce(
        self, found: list[Found], base: Mapping[str, Any], emit: Emit, seen: datetime
    ) -> None:
        """Report what a walk of a new folder found: `created`, and `closed_write` for
        files no process has open for writing."""
        if not found:
            return
        meta = MappingProxyType({**base, "scan": True})
        want_created = EventKind.CREATED in self.wanted
        want_closed = EventKind.CLOSED_WRITE in self.wanted
        source, echoes = self.source, self.echoes
        for path, folder, known in found:
            closed = want_closed and not folder and not self.still_open(path, known)
            echoes.arrived(path, known if closed else UNREPORTED)
            if want_created:
                await emit(Event(EventKind.CREATED, path, source, folder, None, seen, meta))
            if closed:
                await emit(Event(EventKind.CLOSED_WRITE, path, source, False, None, seen, meta))

    async def report(self, changes: list[Change], emit: Emit, *, queued: bool = True) -> None:
        """Emit the events of changes a scan found. With `queued` (the folders are
        watched: their events may still be queued) those events are kept from being
        reported again, and files still open for writing get no early `closed_write`."""
        if not changes:
            return
        self.changed = True
        busy: set[str] = set()
        if queued:
            busy = self.echoes.note_scan(
                changes,
                want_closed=EventKind.CLOSED_WRITE in self.wanted,
                still_open=self.still_open,
            )
        events = change_events(
            changes,
            wanted=self.wanted,
            source=self.source,
            meta_for=self.meta_for,
            seen=datetime.now(UTC),
            still_open=busy,
        )
        for event in events:
            await emit(event)
