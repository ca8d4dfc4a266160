"""The `fanotify` source: one kernel mark per file system, filtered to the watched paths."""

from __future__ import annotations

import asyncio
import os
import time
from collections import deque
from collections.abc import Awaitable, Mapping
from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import ValidationInfo, field_validator

from pipeline.components import ComponentContext, Emit, Source
from pipeline.event import ALL_KINDS, EMPTY_META, Event, EventKind
from pipeline.hookspecs import hookimpl
from pipeline.linux import fanotify as api
from pipeline.sources.catchup import Checkpoints
from pipeline.sources.common import WatchOptions, prepare_roots
from pipeline.sources.fanotify_index import TreeIndex
from pipeline.sources.fanotify_marks import MOUNT_KINDS, Group, open_group
from pipeline.sources.fanotify_paths import Excluded, Folder, FolderMap, Root, below
from pipeline.sources.fanotify_renames import Renames
from pipeline.sources.fanotify_state import TreeState, unreported
from pipeline.sources.snapshot import Snapshot, is_dir

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
ScanResult = tuple[Snapshot, list[tuple[str, bytes]]]
"""A scan, and the (real path, handle key) of each folder it found."""
HOLD_LIMIT = 64 << 20
"""Bytes of events read ahead into memory while a scan runs or its changes are reported."""


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
    misses what was deleted meanwhile. With a `state_dir` the index is always kept: it
    is the snapshot a restart catches up from."""

    unlimited_queue: bool = True
    """Ask the kernel for an event queue without its 16,384-event limit
    (`FAN_UNLIMITED_QUEUE`), so a burst faster than the pipeline waits in the queue instead
    of overflowing into a rescan. The queued events are kernel memory charged to the
    process's memory cgroup (a service's `MemoryMax` bounds them). `false`: the kernel's
    limit; past it one `overflow` event and a rescan, as with inotify."""

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

    With a `state_dir`, what changed while the source was stopped is reported at start,
    before live events (`meta.scan: true`; see `checkpoint_interval`): the marks are
    placed first, then the paths are scanned and compared with the saved snapshot, so
    nothing falls in between. The index is kept current from the events without a stat
    per event; changed entries are stat-ed in one batch per checkpoint. A scan's
    `closed_write` is held back for a file some process still has open for writing: its
    own close is reported live.
    """

    type_name = "fanotify"
    Options = FanotifyOptions
    capabilities_after_start = ("CAP_DAC_READ_SEARCH",)  # open_by_handle_at, per event

    def __init__(self, options: FanotifyOptions, context: ComponentContext) -> None:
        super().__init__(options, context)
        self.wanted = frozenset(options.events) if options.events is not None else ALL_KINDS
        self.source = f"{context.pipeline}/{self.type_name}"
        self.group = Group()
        self.roots: list[Root] = []
        self.folders = FolderMap([], options.recursive, self.group.mounts)
        checkpoints = None
        if context.state_dir is not None:
            scope = {"source": self.type_name, "recursive": options.recursive}
            checkpoints = Checkpoints(
                context.state_dir, scope, options.checkpoint_interval, self.log
            )
        self.state = TreeState(
            source=self.source,
            wanted=self.wanted,
            recursive=options.recursive,
            checkpoints=checkpoints,
        )
        self.keep_index = options.index or checkpoints is not None
        self._kinds: dict[int, tuple[EventKind, ...]] = {}
        self._batch: list[api.FanEvent] = []
        self._gone: dict[bytes, tuple[bytes, bytes]] | None = None
        self._unhandled: list[api.FanEvent] = []
        """Events read but maybe not emitted when the source was stopped mid-batch."""
        self._held: deque[bytes] = deque()
        """Reads taken off the kernel queue ahead of their turn (see `_drain`)."""
        self._held_size = 0
        self.excluded = Excluded()
        self.renames = self._renames()
        self._opened = False

    @property
    def index(self) -> TreeIndex | None:
        return self.state.index

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
        self.roots = sorted(roots, key=lambda r: len(r.path), reverse=True)
        self._exclude_state_dir()
        self._opened = False
        options = self.options
        open_group(self.group, roots, self.wanted, options.mark, options.unlimited_queue)
        self.folders = FolderMap(roots, self.options.recursive, self.group.mounts, self.log)
        self.folders.lookahead = self._lookahead
        self.renames = self._renames()
        previous = None
        if self.keep_index:
            # The marks are in place: whatever changes from now on is queued, so the
            # scan and the events between them miss nothing.
            previous = self.state.load([root.path for root in roots])
            snapshot, handles = await self._while_draining(asyncio.to_thread(self._scan))
            self._adopt(snapshot, handles)
            if previous is not None:
                self.state.catch_up(previous, snapshot)
            elif self.state.checkpoints is not None:
                self.state.checkpoints.first_start(snapshot.entries)
        self._opened = True
        self.log.info(
            "watching",
            paths=[root.path for root in roots],
            mark=self.options.mark,
            file_systems=len(self.group.mounts),
            indexed=len(self.index) if self.index is not None else None,
            catching_up=len(self.state.backlog) if previous is not None else None,
        )

    def _renames(self) -> Renames:
        return Renames(
            self.folders,
            self.state,
            source=self.source,
            wanted=self.wanted,
            recursive=self.options.recursive,
            excluded=self.excluded,
        )

    def _exclude_state_dir(self) -> None:
        """Leave the state_dir alone if it lies in a watched tree: saving a checkpoint
        is no change to report, and must not make the next checkpoint due."""
        state_dir = self.context.state_dir
        self.excluded = Excluded()
        self.state.exclude = ()
        if state_dir is None:
            return
        real = os.path.realpath(state_dir)
        for root in self.roots:
            if root.is_dir and root.contains(real) and real != root.real:
                path = root.outward(real)
                self.excluded = Excluded(path)
                self.state.exclude = [path]
                return

    # -- scans -----------------------------------------------------------------------

    def _scan(self) -> ScanResult:
        """Scan the trees (in a thread); the scan, and the handles of its folders."""
        snapshot = self.state.scan([root.path for root in self.roots])
        handles: list[tuple[str, bytes]] = []
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
        return snapshot, handles

    def _adopt(self, snapshot: Snapshot, handles: list[tuple[str, bytes]]) -> None:
        if self.keep_index:
            self.state.adopt(snapshot)
        for real, key in handles:
            self.folders.learn(real, key)

    def _root_of(self, path: str) -> Root | None:
        """The innermost configured path that `path` (as reported) is in."""
        for root in self.roots:
            if path == root.path or (root.is_dir and path.startswith(below(root.path))):
                return root
        return None

    def _scan_meta(self, path: str) -> Mapping[str, Any]:
        root = self._root_of(path)
        return root.meta if root is not None else EMPTY_META

    # -- events ----------------------------------------------------------------------

    async def run(self, emit: Emit) -> None:
        state = self.state
        if state.backlog:
            backlog, state.backlog = state.backlog, []
            await state.report(backlog, emit, self._scan_meta, self._drain)
        state.unreported = None
        loop = asyncio.get_running_loop()
        fd = self.group.fd
        while True:
            data = self._read()
            if data:
                await self._handle(data, emit)
                continue
            state.echoes.clear()  # every event queued before the last scan is handled
            state.checkpoint(loop.time())  # every event read so far is emitted
            await self._wait(fd, state.due())

    def _read(self) -> bytes:
        """The next read of events: those held in memory first, then the kernel's."""
        if self._held:
            data = self._held.popleft()
            self._held_size -= len(data)
            return data
        return api.read_events(self.group.fd)

    def _drain(self) -> None:
        """Take what the kernel queued into memory, to be handled in turn: while a scan
        runs, or its changes are reported (each probe of a file queues an event of its
        own), the kernel queue must not overflow for want of a reader."""
        while self._held_size < HOLD_LIMIT:
            data = api.read_events(self.group.fd)
            if not data:
                return
            self._held.append(data)
            self._held_size += len(data)

    async def _while_draining(self, work: Awaitable[ScanResult]) -> ScanResult:
        """Await `work` (a scan in a thread), draining the kernel queue meanwhile."""
        loop, fd = asyncio.get_running_loop(), self.group.fd

        def readable() -> None:
            self._drain()
            if self._held_size >= HOLD_LIMIT:  # full: let the kernel queue fill up now
                loop.remove_reader(fd)

        loop.add_reader(fd, readable)
        try:
            return await work
        finally:
            loop.remove_reader(fd)

    async def _wait(self, fd: int, deadline: float | None) -> None:
        """Until events are queued, or the loop time `deadline` (None: no limit)."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()
        loop.add_reader(fd, _wake, future)
        timer = loop.call_at(deadline, _wake, future) if deadline is not None else None
        try:
            await future
        finally:
            loop.remove_reader(fd)
            if timer is not None:
                timer.cancel()

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

    async def _handle(self, data: bytes, emit: Emit) -> None:  # noqa: PLR0912, PLR0915 - the hot path, kept in one loop: a call per event costs
        seen = datetime.now(UTC)
        mark = time.time_ns()
        source, folders, state = self.source, self.folders, self.state
        known, outside, echoes = folders.known, folders.outside, state.echoes
        excluded = self.excluded
        self._batch = batch = list(api.decode(data))
        self._gone = None
        changed = False
        position = 0
        try:
            for position, event in enumerate(batch):  # noqa: B007 - read in the handler
                mask = event.mask
                if event.fd >= 0:
                    os.close(event.fd)  # not sent to a group that reports handles; be safe
                key = event.dir
                if key is None or mask & api.FAN_RENAME:
                    await self._special(event, emit, seen, mark)
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
                path = target.path
                if excluded and path in excluded:
                    continue
                is_dir = bool(mask & api.FAN_ONDIR)
                if is_dir:
                    self._folder_changed(folder, event)
                kinds = self._kinds_of(mask)
                if echoes.active and kinds:
                    kinds = state.unechoed(kinds, path)
                meta = target.root.meta
                for kind in kinds:
                    await emit(Event(kind, path, source, is_dir, None, seen, meta))
                # Only once emitted: a stop in between leaves the change to the next start.
                index = state.index
                if index is not None:
                    if mask & api.FAN_DELETE:
                        index.discard(path)
                        changed = True
                    elif mask & STAT_CHANGES:
                        index.touch(path, mark, folder=is_dir)
                        changed = True
        except BaseException:
            self._unhandled = batch[position:]
            raise
        finally:
            if changed:
                state.changed = True
        self._batch = []
        self._gone = None

    async def _special(self, event: api.FanEvent, emit: Emit, seen: datetime, mark: int) -> None:
        """A rename, an overflow, or an event without a folder (not about a path: dropped)."""
        if event.mask & api.FAN_Q_OVERFLOW:
            await self._overflow(emit, seen)
        elif event.dir is not None:
            await self.renames.renamed(event, emit, seen, mark)

    def _folder_changed(self, parent: Folder, event: api.FanEvent) -> None:
        """Remember the handle of a folder made, and keep that of one removed, a while."""
        if event.obj is None or event.name == b".":
            return
        if event.mask & api.FAN_CREATE:
            self.folders.created(parent, event.name, event.obj)
        if event.mask & api.FAN_DELETE:
            self.folders.deleted(event.obj)

    async def _overflow(self, emit: Emit, seen: datetime) -> None:
        self.log.warning(
            "fanotify queue overflowed; events were lost by the kernel, rescanning",
            paths=[root.path for root in self.roots],
        )
        for root in self.roots:  # whatever `events` says: the user must know
            await emit(
                Event(
                    EventKind.OVERFLOW, root.path, self.source, root.is_dir, None, seen, root.meta
                )
            )
        self.folders.forget()  # folder renames may have been lost too
        before = self.index.entries() if self.index is not None else None
        snapshot, handles = await self._while_draining(asyncio.to_thread(self._scan))
        self._adopt(snapshot, handles)
        root_paths = [root.path for root in self.roots]
        changes = self.state.changes_after_overflow(before, snapshot, root_paths)
        roots = set(root_paths)
        if before is not None:  # until all is reported, a stop keeps the state before
            self.state.unreported = (before, root_paths)
        await self.state.report(
            (
                change
                for change in changes
                if self._root_of(change.path) is not None
                and not (change.path in roots and before is None)
            ),
            emit,
            self._scan_meta,
            self._drain,
        )
        self.state.unreported = None
        self.log.info("rescan after overflow done", changes=len(changes))

    # -- stop --------------------------------------------------------------------------

    async def close(self) -> None:
        if self._opened and self.group.fd >= 0:
            self.state.settle()  # stat first, read the queue after: what changes between is in it
            unknown, lost = self._unreported_paths()
            await self.state.close([root.path for root in self.roots], unknown, lost=lost)
        self._opened = False
        self._unhandled = []
        self._held.clear()
        self._held_size = 0
        self.group.close()
        self.folders.forget()

    def _unreported_paths(self) -> tuple[list[str], bool]:
        """See `fanotify_state.unreported`: the events read but maybe not emitted, and
        those still queued."""
        events = list(self._unhandled)
        while data := self._read():
            events.extend(api.decode(data))
        self._batch, self._gone = events, None  # where a gone folder's lookahead looks
        try:
            return unreported(events, self._target)
        finally:
            self._batch, self._gone = [], None

    def _target(self, key: bytes, name: bytes) -> str | None:
        target = self.folders.target(key, name)
        return target.path if target is not None and target.path not in self.excluded else None


def _wake(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


@hookimpl
def pipeline_components() -> list[type[FanotifySource]]:
    return [FanotifySource]
