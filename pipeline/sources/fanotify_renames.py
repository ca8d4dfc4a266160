"""Renames seen by the `fanotify` source: one FAN_RENAME event names both places.

A rename inside the watched paths is one `moved`; one into them from outside is a
`moved` with no `src_path`, followed (for a folder) by what the folder holds; one out of
them is a `deleted`. The cached folder paths and the index follow each rename, the
index only once the event is emitted.
"""

from __future__ import annotations

import os
from datetime import datetime

from pipeline.components import Emit
from pipeline.event import Event, EventKind
from pipeline.linux import fanotify as api
from pipeline.sources.fanotify_paths import Excluded, FolderMap, Target
from pipeline.sources.fanotify_state import TreeState


class Renames:
    """Turns the FAN_RENAME events of one fanotify source into events."""

    def __init__(
        self,
        folders: FolderMap,
        state: TreeState,
        *,
        source: str,
        wanted: frozenset[EventKind],
        recursive: bool,
        excluded: Excluded,
    ) -> None:
        self.folders = folders
        self.state = state
        self.source = source
        self.wanted = wanted
        self.recursive = recursive
        self.excluded = excluded

    async def renamed(self, event: api.FanEvent, emit: Emit, seen: datetime, mark: int) -> None:
        """Report one FAN_RENAME: `moved`, or `deleted` for a rename out of the paths."""
        folders = self.folders
        old = folders.folder(event.dir) if event.dir is not None else None
        new = folders.folder(event.dir2) if event.dir2 is not None else None
        is_dir = bool(event.mask & api.FAN_ONDIR)
        if is_dir and event.obj is not None and (old is not None or new is not None):
            folders.moved(old, event.name, new, event.name2, event.obj)
        src = old.target(event.name) if old is not None else None
        dst = new.target(event.name2) if new is not None else None
        if src is not None and src.path in self.excluded:
            src = None
        if dst is not None and dst.path in self.excluded:
            dst = None
        if dst is not None:
            await self._moved(src, dst, is_dir, emit, seen=seen, mark=mark)
        elif src is not None:
            await self._moved_out(src, is_dir, emit, seen)

    async def _moved(
        self,
        src: Target | None,
        dst: Target,
        is_dir: bool,
        emit: Emit,
        *,
        seen: datetime,
        mark: int,
    ) -> None:
        """A rename into the watched paths (from outside them when `src` is None)."""
        echoes, index = self.state.echoes, self.state.index
        echoed = echoes.active and echoes.take_arrival(dst.path)
        if src is not None and echoes.active:
            echoes.take_gone(src.path)
        if EventKind.MOVED in self.wanted and not echoed:
            src_path = src.path if src is not None else None
            meta = dst.root.meta
            await emit(Event(EventKind.MOVED, dst.path, self.source, is_dir, src_path, seen, meta))
        if index is not None:
            if src is not None:
                index.move(src.path, dst.path, mark, folder=is_dir)
            else:
                index.touch(dst.path, mark, folder=is_dir)
            self.state.changed = True
        if src is None and is_dir and self.recursive and not echoed:
            await self._announce(dst, emit, seen, mark)

    async def _moved_out(self, src: Target, is_dir: bool, emit: Emit, seen: datetime) -> None:
        """A rename out of every watched path: a deletion."""
        echoes = self.state.echoes
        echoed = echoes.active and echoes.take_gone(src.path)
        if EventKind.DELETED in self.wanted and not echoed:
            meta = src.root.meta
            await emit(Event(EventKind.DELETED, src.path, self.source, is_dir, None, seen, meta))
        if self.state.index is not None:
            self.state.index.discard_tree(src.path)
            self.state.changed = True

    async def _announce(self, top: Target, emit: Emit, seen: datetime, mark: int) -> None:
        """Report what a folder moved in from outside holds (created, closed_write)."""
        meta = top.root.scan_meta
        report_created = EventKind.CREATED in self.wanted
        report_closed = EventKind.CLOSED_WRITE in self.wanted
        stack = [top.path]
        while stack:
            try:
                with os.scandir(stack.pop()) as listing:
                    found = [(e.path, e.is_dir(follow_symlinks=False)) for e in listing]
            except OSError:
                continue
            for path, folder in found:
                if folder:
                    stack.append(path)
                if report_created:
                    await emit(
                        Event(EventKind.CREATED, path, self.source, folder, None, seen, meta)
                    )
                if report_closed and not folder:
                    await emit(
                        Event(EventKind.CLOSED_WRITE, path, self.source, False, None, seen, meta)
                    )
                if self.state.index is not None:
                    self.state.index.touch(path, mark, folder=folder)
