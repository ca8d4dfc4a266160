"""Turns inotify records into events, keeping the index of the watched trees in step.

This is the hot path: per record, a dict lookup for the folder, building the path, one
index update (a dict operation, no stat) and the event. Everything rarer (new folders,
renames, deletions of folders, events on a watched path itself) has its own method.
"""

from __future__ import annotations

import os
import time
from datetime import UTC, datetime

from pipeline.components import Emit
from pipeline.event import Event, EventKind
from pipeline.linux import inotify as api
from pipeline.sources.echoes import UNREPORTED
from pipeline.sources.inotify_recovery import Recovery
from pipeline.sources.inotify_trees import InotifyTrees
from pipeline.sources.inotify_watches import ENCODING, ERRORS, Found
from pipeline.sources.moves import MoveOrigin, partner_ahead
from pipeline.sources.treeindex import Folder

SIMPLE_KINDS: dict[int, EventKind] = {
    api.IN_CREATE: EventKind.CREATED,
    api.IN_MODIFY: EventKind.MODIFIED,
    api.IN_ATTRIB: EventKind.ATTRIB,
    api.IN_OPEN: EventKind.OPENED,
    api.IN_CLOSE_WRITE: EventKind.CLOSED_WRITE,
    api.IN_CLOSE_NOWRITE: EventKind.CLOSED_NOWRITE,
    api.IN_DELETE: EventKind.DELETED,
}
# Opening a folder is listing it (ls, our own scans): noise, not a change, so not reported.
FOLDER_LISTING = frozenset({EventKind.OPENED, EventKind.CLOSED_NOWRITE})
SPECIAL = api.IN_Q_OVERFLOW | api.IN_IGNORED | api.IN_UNMOUNT
FILE_CHANGES = (api.IN_MODIFY, api.IN_ATTRIB)

Origin = MoveOrigin[tuple[Folder, str]]


class EventRouter:
    """Handles batches of inotify records for one source."""

    def __init__(self, trees: InotifyTrees, recovery: Recovery) -> None:
        self.trees = trees
        self.recovery = recovery
        self.seen = datetime.now(UTC)
        """When the batch being handled was read."""
        self.mark = 0
        """The same, in ns: what the index records for paths the batch touches."""
        self.unhandled: list[api.Record] = []
        """Records of the batch that was cancelled (at shutdown), not handled."""
        self._written = UNREPORTED if EventKind.CLOSED_WRITE in trees.wanted else None
        """The mark of a file seen modified: unreported if `closed_write` will tell."""

    async def handle(self, records: list[api.Record], emit: Emit, now: float) -> None:  # noqa: PLR0912, PLR0915 - the hot path, kept in one loop: a call per record costs
        """Handle one batch; `now` is the loop time (for rename deadlines)."""
        trees = self.trees
        self.seen = seen = datetime.now(UTC)
        self.mark = mark = time.time_ns()
        moves = trees.moves
        if moves:
            for origin in moves.unpartnered(records):
                await self.moved_out(origin, emit)
        by_wd = trees.watches.by_wd
        wanted, source, echoes = trees.wanted, trees.source, trees.echoes
        track, dirty, follow = trees.track, trees.index.dirty, trees.follow
        want_closed = EventKind.CLOSED_WRITE in wanted
        want_created = EventKind.CREATED in wanted
        closed_write, created = EventKind.CLOSED_WRITE, EventKind.CREATED
        in_isdir, in_close_write, in_create = api.IN_ISDIR, api.IN_CLOSE_WRITE, api.IN_CREATE
        in_delete, in_moved_from, in_moved_to = api.IN_DELETE, api.IN_MOVED_FROM, api.IN_MOVED_TO
        last = len(records) - 1
        position = 0
        changed = False  # opening and reading files changes nothing a checkpoint keeps
        try:
            for position, (wd, mask, cookie, name) in enumerate(records):
                folder = by_wd.get(wd)
                if folder is None or not name or mask & SPECIAL:
                    await self.special(wd, mask, folder, emit)
                    continue
                text = name.decode(ENCODING, ERRORS)
                path = folder.prefix + text
                what = mask & ~in_isdir
                if what == in_close_write:
                    changed = True
                    folder.files[text] = mark
                    if track:
                        dirty.add(folder)
                    if echoes.active and echoes.take_content(path):
                        continue
                    if want_closed:
                        meta = folder.meta
                        await emit(Event(closed_write, path, source, False, None, seen, meta))
                elif what == in_create:
                    changed = True
                    if mask & in_isdir or (follow and os.path.isdir(path)):
                        await self.folder_created(folder, text, path, emit)
                        continue
                    folder.files[text] = UNREPORTED
                    if track:
                        dirty.add(folder)
                    if echoes.active and echoes.take_arrival(path):
                        continue
                    if want_created:
                        await emit(Event(created, path, source, False, None, seen, folder.meta))
                elif what in FILE_CHANGES:
                    changed = True
                    is_dir = bool(mask & in_isdir)
                    self.touched(folder, text, is_dir=is_dir, written=what != api.IN_ATTRIB)
                    kind = SIMPLE_KINDS[what]
                    if kind in wanted:
                        await emit(Event(kind, path, source, is_dir, None, seen, folder.meta))
                elif what == in_delete:
                    changed = True
                    is_dir = bool(mask & in_isdir)
                    await self.deleted(folder, text, path, is_dir=is_dir, emit=emit)
                elif what == in_moved_from:
                    changed = True
                    is_dir = bool(mask & in_isdir) or (follow and text in folder.folders)
                    if echoes.active and echoes.take_gone(path):
                        continue
                    if position == last or partner_ahead(records, position + 1, cookie):
                        moves.moved_from(cookie, path, is_dir, (folder, text), now)
                    else:
                        await self.moved_out(MoveOrigin(path, is_dir, (folder, text), now), emit)
                elif what == in_moved_to:
                    changed = True
                    is_dir = bool(mask & in_isdir)
                    await self.moved_in(folder, text, path, cookie, is_dir=is_dir, emit=emit)
                elif not mask & in_isdir:
                    other = SIMPLE_KINDS.get(what)  # opened, closed_nowrite
                    if echoes.active and echoes.take_probe(path):
                        continue
                    if other is not None and other in wanted:
                        await emit(Event(other, path, source, False, None, seen, folder.meta))
        except BaseException:
            self.unhandled = records[position:]
            raise
        finally:
            if changed:
                trees.changed = True

    def touched(self, folder: Folder, name: str, *, is_dir: bool, written: bool) -> None:
        """A file (or folder) changed in place: `written` to, or its attributes changed."""
        if is_dir:
            child = folder.folders.get(name)
            if child is None:
                return
            child.known = self.mark
            folder = child
        elif written:
            folder.files[name] = self.mark if self._written is None else self._written
        elif isinstance(folder.files.get(name), tuple):
            folder.files[name] = self.mark  # its content is still the one reported
        if self.trees.track:
            self.trees.index.dirty.add(folder)

    def _event(self, kind: EventKind, path: str, folder: Folder, *, is_dir: bool) -> Event:
        return Event(kind, path, self.trees.source, is_dir, None, self.seen, folder.meta)

    async def folder_created(self, parent: Folder, name: str, path: str, emit: Emit) -> None:
        """A folder was made: watch it, then report what was already in it (the mkdir race)."""
        trees = self.trees
        echoed = trees.echoes.active and trees.echoes.take_arrival(path)
        want = EventKind.CREATED in trees.wanted
        if name in parent.folders:
            # A walk has read it already: it is watched, what is in it reported or known.
            if want and not echoed:
                await emit(self._event(EventKind.CREATED, path, parent, is_dir=True))
            return
        if want:
            await emit(self._event(EventKind.CREATED, path, parent, is_dir=True))
        found = trees.discover(parent, name, self.mark)
        await trees.announce(found, parent.meta, emit, self.seen)

    async def deleted(
        self, folder: Folder, name: str, path: str, *, is_dir: bool, emit: Emit
    ) -> None:
        trees = self.trees
        if is_dir or (trees.follow and name in folder.folders):
            is_dir = True
            trees.drop_folder(folder, name, path)
        else:
            folder.files.pop(name, None)
        if trees.echoes.active and trees.echoes.take_gone(path):
            return
        if EventKind.DELETED in trees.wanted:
            await emit(self._event(EventKind.DELETED, path, folder, is_dir=is_dir))

    async def moved_out(self, origin: Origin, emit: Emit) -> None:
        """A rename whose second half never came: out of every watched path."""
        trees = self.trees
        folder, name = origin.where
        if origin.is_dir:
            trees.drop_folder(folder, name, origin.path)
        else:
            folder.files.pop(name, None)
        if EventKind.DELETED in trees.wanted:
            await emit(self._event(EventKind.DELETED, origin.path, folder, is_dir=origin.is_dir))

    async def moved_in(
        self, folder: Folder, name: str, path: str, cookie: int, *, is_dir: bool, emit: Emit
    ) -> None:
        """A rename's second half: paired with its first, or from outside every watched path."""
        trees = self.trees
        origin = trees.moves.moved_to(cookie)
        found: list[Found] = []
        if origin is not None:
            is_dir = is_dir or origin.is_dir
            self._rename(origin, folder, name, path, is_dir=is_dir)
        else:
            if trees.echoes.active and trees.echoes.take_arrival(path):
                return  # a scan reported it already
            if is_dir or (trees.follow and os.path.isdir(path)):
                is_dir = True
                if name not in folder.folders:
                    found = trees.discover(folder, name, self.mark)
            else:
                folder.files[name] = self.mark
        if EventKind.MOVED in trees.wanted:
            src = origin.path if origin is not None else None
            await emit(
                Event(EventKind.MOVED, path, trees.source, is_dir, src, self.seen, folder.meta)
            )
        await trees.announce(found, folder.meta, emit, self.seen)

    def _rename(
        self, origin: Origin, folder: Folder, name: str, path: str, *, is_dir: bool
    ) -> None:
        """Move what the index knows of `origin` to `name` in `folder` (for a folder: with
        its watches and everything below it, in steps proportional to its subfolders)."""
        trees = self.trees
        old_folder, old_name = origin.where
        if not is_dir:
            folder.files[name] = old_folder.files.pop(old_name, self.mark)
            return
        node = old_folder.folders.get(old_name)
        if node is not None:
            trees.watches.forget(trees.index.move(node, folder, name))
            if trees.polled:
                trees.polled.rename(origin.path, path)
        elif name not in folder.folders:
            trees.discover(folder, name, self.mark)  # not known before: watched, not reported

    async def special(self, wd: int, mask: int, folder: Folder | None, emit: Emit) -> None:
        """Overflow, a watch that ended, or an event on a watched path itself."""
        trees, recovery = self.trees, self.recovery
        if mask & api.IN_Q_OVERFLOW:
            await recovery.overflow(emit, self.seen)
            return
        if folder is None:
            return  # a late event of a watch already removed
        is_root = folder.parent is None and trees.index.roots.get(folder.path) is folder
        if mask & api.IN_IGNORED:
            if trees.watches.ended(wd) is folder and is_root:
                await recovery.root_lost(folder, emit, self.seen, deleted=False)
            return
        if mask & api.IN_UNMOUNT:
            trees.log.warning("a watched folder's file system was unmounted", folder=folder.path)
            if not is_root:
                await recovery.rescan(folder, emit)
            return  # a root's watch ends next (IN_IGNORED)
        if not is_root:
            return  # its parent's watch reports the same event under its name
        if mask & (api.IN_DELETE_SELF | api.IN_MOVE_SELF):
            await recovery.root_lost(folder, emit, self.seen, deleted=True)
            return
        what = mask & ~api.IN_ISDIR
        if folder.single and what in (api.IN_CLOSE_WRITE, api.IN_MODIFY):
            written = what == api.IN_MODIFY and self._written is not None
            folder.known = UNREPORTED if written else self.mark
            if trees.track:
                trees.index.dirty.add(folder)
        kind = SIMPLE_KINDS.get(what)
        if kind is None or kind not in trees.wanted:
            return
        if not folder.single and kind in FOLDER_LISTING:
            return
        await emit(self._event(kind, folder.path, folder, is_dir=not folder.single))
