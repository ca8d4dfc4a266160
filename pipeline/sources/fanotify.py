"""The `fanotify` source: one kernel mark per file system, filtered to the watched paths."""

from __future__ import annotations

import asyncio
import os
from datetime import UTC, datetime
from typing import Literal

from pydantic import ValidationInfo, field_validator

from pipeline.components import ComponentContext, Emit, Source
from pipeline.event import ALL_KINDS, Event, EventKind
from pipeline.hookspecs import hookimpl
from pipeline.linux import fanotify as api
from pipeline.sources.common import WatchOptions, prepare_roots
from pipeline.sources.fanotify_index import TreeIndex, rescan
from pipeline.sources.fanotify_marks import MOUNT_KINDS, Group, open_group
from pipeline.sources.fanotify_paths import Folder, FolderMap, Root, Target, below
from pipeline.sources.snapshot import Change, Entry, Snapshot, is_dir

MERGED_ORDER: tuple[tuple[int, EventKind], ...] = (
    (api.FAN_CREATE, EventKind.CREATED),
    (api.FAN_OPEN, EventKind.OPENED),
    (api.FAN_MODIFY, EventKind.MODIFIED),
    (api.FAN_ATTRIB, EventKind.ATTRIB),
    (api.FAN_CLOSE_WRITE, EventKind.CLOSED_WRITE),
    (api.FAN_CLOSE_NOWRITE, EventKind.CLOSED_NOWRITE),
    (api.FAN_DELETE, EventKind.DELETED),
)
"""The order in which the kinds of one merged event are reported."""
# Opening a folder is listing it (ls, our own scans): noise, not a change, so not reported.
FOLDER_LISTING = frozenset({EventKind.OPENED, EventKind.CLOSED_NOWRITE})
STAT_CHANGES = api.FAN_CREATE | api.FAN_MODIFY | api.FAN_ATTRIB | api.FAN_CLOSE_WRITE


class FanotifyOptions(WatchOptions):
    mark: Literal["filesystem", "mount"] = "filesystem"
    """`filesystem`: every change on the file system of each path, whichever mount it came
    through. `mount`: only changes made through the mount of each path (blind to writes
    through bind mounts and containers); the kernel allows it only for the events opened,
    modified, closed_write and closed_nowrite."""
    index: bool = True
    """Keep the stat of every entry under the paths in memory (one scan at start, about
    350 bytes per entry: 350 MB for a million), so that after a kernel queue overflow
    exactly what changed is reported. Without it nothing is walked at start, but an
    overflow reports every file under the paths again (created, closed_write) and
    misses what was deleted meanwhile."""

    @field_validator("mark")
    @classmethod
    def _mount_kinds(cls, mark: str, info: ValidationInfo) -> str:
        if mark == "mount":
            events = info.data.get("events")
            kinds = set(events) if events is not None else set(ALL_KINDS)
            refused = sorted(kinds - MOUNT_KINDS - {EventKind.OVERFLOW})
            if refused:
                raise ValueError(
                    f"`mark: mount` cannot report {', '.join(refused)} (the kernel allows only "
                    "opened, modified, closed_write and closed_nowrite on a mount); set "
                    "`events` to some of those, or use `mark: filesystem`"
                )
        return mark


class FanotifySource(Source[FanotifyOptions]):
    """Watches whole trees with Linux fanotify: one mark per file system, no watch per folder.

    Needs CAP_SYS_ADMIN (and CAP_DAC_READ_SEARCH to turn file handles into paths) and Linux
    5.17 or later. There is no watch per folder and no watch limit: folders created later
    are covered at once, and without `index` nothing is walked at start. The mark sees the
    whole file system; an event outside the watched paths costs one dictionary lookup
    (the first event of a folder costs a handle lookup, whose verdict is then cached).

    A folder's path is looked up when it is first seen, then follows the renames in the
    event stream: an event queued before a folder was renamed may carry the new name. The
    kernel merges queued events of one object into one; their kinds are then reported in
    the order created, opened, modified, attrib, closed_write, closed_nowrite, deleted: a
    folder made and removed before it was read gives `created`, then `deleted`. A rename
    is one `moved` with `src_path` (null from outside the paths); a rename out of them is
    `deleted`; a folder moved in is followed by its contents (created, closed_write, with
    `meta.scan: true`). Opening and closing a folder (listing it) is not reported. After a
    kernel queue overflow an `overflow` event is emitted for each path, then the paths are
    scanned and what changed is reported (`meta.scan: true`).
    """

    type_name = "fanotify"
    Options = FanotifyOptions

    def __init__(self, options: FanotifyOptions, context: ComponentContext) -> None:
        super().__init__(options, context)
        self.wanted = frozenset(options.events) if options.events is not None else ALL_KINDS
        self.source = f"{context.pipeline}/{self.type_name}"
        self.group = Group()
        self.roots: list[Root] = []
        self.folders = FolderMap([], options.recursive, self.group.mounts)
        self.index: TreeIndex | None = None
        self._kinds: dict[int, tuple[EventKind, ...]] = {}
        self._batch: list[api.FanEvent] = []
        self._gone: dict[bytes, tuple[bytes, bytes]] | None = None

    # -- marks -----------------------------------------------------------------------

    async def open(self) -> None:
        roots: list[Root] = []
        missing: list[str] = []
        for path in prepare_roots(self.options):
            real = os.path.realpath(path)
            if not os.path.lexists(real):  # `wait_missing`: whatever appears there
                missing.append(path)
            roots.append(Root(path, real, path in missing or os.path.isdir(real)))
        if missing:
            # The file-system mark sees it appear: no waiting machinery is needed.
            self.log.warning("watched path does not exist yet; waiting for it", paths=missing)
        if self.context.state_dir is not None:
            self.log.warning(
                "the fanotify source does not catch up after a restart yet: changes made "
                "while it is stopped are not reported"
            )
        self.roots = sorted(roots, key=lambda r: len(r.path), reverse=True)
        open_group(self.group, roots, self.wanted, self.options.mark)
        self.folders = FolderMap(roots, self.options.recursive, self.group.mounts, self.log)
        self.folders.lookahead = self._lookahead
        if self.options.index:
            snapshot, _, handles = await asyncio.to_thread(self._scan, None)
            self._adopt(snapshot, handles)
        self.log.info(
            "watching",
            paths=[root.path for root in roots],
            mark=self.options.mark,
            file_systems=len(self.group.mounts),
            indexed=len(self.index) if self.index is not None else None,
        )

    # -- scans -----------------------------------------------------------------------

    def _scan(
        self, previous: dict[str, Entry] | None
    ) -> tuple[Snapshot, list[Change], list[tuple[str, bytes]]]:
        """Scan the trees (in a thread); the changes since `previous`, and folder handles."""
        snapshot, changes = rescan(
            [root.path for root in self.roots], self.options.recursive, previous
        )
        handles: list[tuple[str, bytes]] = []
        if self.options.index:
            for path, entry in snapshot.entries.items():
                root = self._root_of(path)
                if root is None or not is_dir(entry):
                    continue
                real = root.real + path[len(root.path) :]
                try:
                    handle = api.name_to_handle(os.fsencode(real))
                except OSError:
                    continue
                handles.append((real, self.group.fsids[root.path] + handle))
        return snapshot, changes, handles

    def _adopt(self, snapshot: Snapshot, handles: list[tuple[str, bytes]]) -> None:
        if self.options.index:
            self.index = TreeIndex.from_entries(snapshot.entries)
        for real, key in handles:
            self.folders.learn(real, key)

    def _root_of(self, path: str) -> Root | None:
        """The innermost configured path that `path` (as reported) is in."""
        for root in self.roots:
            if path == root.path or (root.is_dir and path.startswith(below(root.path))):
                return root
        return None

    # -- events ----------------------------------------------------------------------

    async def run(self, emit: Emit) -> None:
        loop = asyncio.get_running_loop()
        fd = self.group.fd
        while True:
            data = api.read_events(fd)
            if data:
                await self._handle(data, emit)
                continue
            future: asyncio.Future[None] = loop.create_future()
            loop.add_reader(fd, _wake, future)
            try:
                await future
            finally:
                loop.remove_reader(fd)

    def _lookahead(self, key: bytes) -> tuple[bytes, bytes] | None:
        """Where an event of this read says the (gone) folder `key` was: its rmdir or
        rename names its parent and name. Indexed once per read, on the first need."""
        if self._gone is None:
            gone = self._gone = {}
            for event in self._batch:
                if (
                    event.mask & api.FAN_ONDIR
                    and event.mask & (api.FAN_DELETE | api.FAN_RENAME)
                    and event.obj is not None
                    and event.dir is not None
                ):
                    gone.setdefault(event.obj, (event.dir, event.name))
        return self._gone.get(key)

    def _kinds_of(self, mask: int) -> tuple[EventKind, ...]:
        kinds = self._kinds.get(mask)
        if kinds is None:
            folder = bool(mask & api.FAN_ONDIR)
            kinds = tuple(
                kind
                for bit, kind in MERGED_ORDER
                if mask & bit and kind in self.wanted and not (folder and kind in FOLDER_LISTING)
            )
            self._kinds[mask] = kinds
        return kinds

    async def _handle(self, data: bytes, emit: Emit) -> None:
        seen = datetime.now(UTC)
        source, folders, index = self.source, self.folders, self.index
        known, outside = folders.known, folders.outside
        self._batch = batch = list(api.decode(data))
        self._gone = None
        for event in batch:
            mask = event.mask
            if event.fd >= 0:
                os.close(event.fd)  # not sent to a group that reports handles; be safe
            key = event.dir
            if key is None or mask & api.FAN_RENAME:
                await self._special(event, emit, seen)
                index = self.index  # an overflow replaces it
                continue
            folder = known.get(key)
            if folder is None:
                if outside.get(key) == folders.generation:
                    continue
                folder = folders.folder(key)
                if folder is None:
                    continue
            target = folder.target(event.name)
            if target is None:
                continue
            is_dir = bool(mask & api.FAN_ONDIR)
            if is_dir:
                self._folder_changed(folder, event)
            if index is not None:
                if mask & api.FAN_DELETE:
                    index.discard(target.path)
                elif mask & STAT_CHANGES:
                    index.refresh(target.path)
            meta = target.root.meta
            for kind in self._kinds_of(mask):
                await emit(Event(kind, target.path, source, is_dir, None, seen, meta))
        self._batch = []
        self._gone = None

    async def _special(self, event: api.FanEvent, emit: Emit, seen: datetime) -> None:
        """A rename, an overflow, or an event without a folder (not about a path: dropped)."""
        if event.mask & api.FAN_Q_OVERFLOW:
            await self._overflow(emit, seen)
        elif event.dir is not None:
            await self._renamed(event, emit, seen)

    def _folder_changed(self, parent: Folder, event: api.FanEvent) -> None:
        """Remember the handle of a folder made, and keep that of one removed, a while."""
        if event.obj is None or event.name == b".":
            return
        if event.mask & api.FAN_CREATE:
            self.folders.created(parent, event.name, event.obj)
        if event.mask & api.FAN_DELETE:
            self.folders.deleted(event.obj)

    async def _renamed(self, event: api.FanEvent, emit: Emit, seen: datetime) -> None:
        folders = self.folders
        old = folders.folder(event.dir) if event.dir is not None else None
        new = folders.folder(event.dir2) if event.dir2 is not None else None
        is_dir = bool(event.mask & api.FAN_ONDIR)
        if is_dir and event.obj is not None and (old is not None or new is not None):
            folders.moved(old, event.name, new, event.name2, event.obj)
        src = old.target(event.name) if old is not None else None
        dst = new.target(event.name2) if new is not None else None
        if dst is not None:
            if EventKind.MOVED in self.wanted:
                await emit(
                    Event(
                        EventKind.MOVED,
                        dst.path,
                        self.source,
                        is_dir,
                        src.path if src is not None else None,
                        seen,
                        dst.root.meta,
                    )
                )
            if self.index is not None:
                if src is not None:
                    self.index.move(src.path, dst.path)
                else:
                    self.index.refresh(dst.path)
            if src is None and is_dir and self.options.recursive:
                await self._announce(dst, emit, seen)
        elif src is not None:
            if EventKind.DELETED in self.wanted:
                await emit(
                    Event(
                        EventKind.DELETED, src.path, self.source, is_dir, None, seen, src.root.meta
                    )
                )
            if self.index is not None:
                self.index.discard_tree(src.path)

    async def _announce(self, top: Target, emit: Emit, seen: datetime) -> None:
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
                if self.index is not None:
                    self.index.refresh(path)
                if report_created:
                    await emit(
                        Event(EventKind.CREATED, path, self.source, folder, None, seen, meta)
                    )
                if report_closed and not folder:
                    await emit(
                        Event(EventKind.CLOSED_WRITE, path, self.source, False, None, seen, meta)
                    )

    async def _overflow(self, emit: Emit, seen: datetime) -> None:
        self.log.warning(
            "fanotify queue overflowed; events were lost by the kernel, rescanning",
            paths=[root.path for root in self.roots],
        )
        for root in self.roots:
            await emit(
                Event(
                    EventKind.OVERFLOW, root.path, self.source, root.is_dir, None, seen, root.meta
                )
            )
        self.folders.forget()  # folder renames may have been lost too
        previous = self.index.entries() if self.index is not None else {}
        snapshot, changes, handles = await asyncio.to_thread(self._scan, previous)
        self._adopt(snapshot, handles)
        report_closed = EventKind.CLOSED_WRITE in self.wanted
        roots = {root.path for root in self.roots}
        for change in changes:
            owner = self._root_of(change.path)
            if owner is None or (change.path in roots and not previous):
                continue
            if change.kind in self.wanted:
                await emit(self._scanned(change, change.kind, owner))
            if (
                report_closed
                and not change.is_dir
                and change.kind in (EventKind.CREATED, EventKind.MODIFIED)
            ):
                await emit(self._scanned(change, EventKind.CLOSED_WRITE, owner))
        self.log.info("rescan after overflow done", changes=len(changes))

    def _scanned(self, change: Change, kind: EventKind, root: Root) -> Event:
        return Event(
            kind, change.path, self.source, change.is_dir, change.src_path, meta=root.scan_meta
        )

    async def close(self) -> None:
        self.group.close()
        self.folders.forget()
        self.index = None


def _wake(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


@hookimpl
def pipeline_components() -> list[type[FanotifySource]]:
    return [FanotifySource]
