"""The `inotify` source: Linux inotify(7), recursive, with renames paired into `moved`."""

from __future__ import annotations

import asyncio
import errno
import os
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Any

from pipeline.components import ComponentContext, Emit, Source
from pipeline.errors import SourceError
from pipeline.event import ALL_KINDS, Event, EventKind
from pipeline.hookspecs import hookimpl
from pipeline.linux import inotify as api
from pipeline.options import Duration
from pipeline.sources.common import WatchOptions, prepare_roots
from pipeline.sources.moves import MovePairer

KIND_MASKS: dict[EventKind, int] = {
    EventKind.CREATED: api.IN_CREATE,
    EventKind.MODIFIED: api.IN_MODIFY,
    EventKind.ATTRIB: api.IN_ATTRIB,
    EventKind.OPENED: api.IN_OPEN,
    EventKind.CLOSED_WRITE: api.IN_CLOSE_WRITE,
    EventKind.CLOSED_NOWRITE: api.IN_CLOSE_NOWRITE,
    EventKind.DELETED: api.IN_DELETE | api.IN_MOVED_FROM,
    EventKind.MOVED: api.IN_MOVED_FROM | api.IN_MOVED_TO,
    EventKind.OVERFLOW: 0,
}
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
WATCH_LIMIT_FILE = "/proc/sys/fs/inotify/max_user_watches"


class InotifyOptions(WatchOptions):
    move_wait: Duration = 0.05
    """How long a rename's first half waits for its second before it counts as `deleted`."""


class _Dir:
    __slots__ = ("meta", "path", "root")

    def __init__(self, path: str, root: str, meta: Mapping[str, Any]) -> None:
        self.path = path
        self.root = root
        self.meta = meta


def _wake(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


def _watch_limit_message(path: str) -> str:
    try:
        with open(WATCH_LIMIT_FILE) as limit_file:
            limit = limit_file.read().strip()
    except OSError:
        limit = "?"
    return (
        f"inotify watch limit reached while watching {path}: fs.inotify.max_user_watches is "
        f"{limit}, one watch per folder. Raise it (sysctl -w fs.inotify.max_user_watches=1048576, "
        f"and in /etc/sysctl.d/ to keep it), or use the `fanotify` or `poll` source."
    )


class InotifySource(Source[InotifyOptions]):
    """Watches folders with Linux inotify: every kind of event, recursively, as it happens.

    New folders are watched as they appear, and what was written into them before the
    watch existed is reported (as `created`, plus `closed_write` for files, with
    `meta.scan: true`). The two halves of a rename become one `moved` event; a rename out
    of every watched folder is reported as `deleted`, one from outside as `moved` with
    `src_path: null`. Opening and closing a folder (listing it) is not reported. When the
    kernel queue overflows an `overflow` event is emitted for each watched path.
    """

    type_name = "inotify"
    Options = InotifyOptions

    def __init__(self, options: InotifyOptions, context: ComponentContext) -> None:
        super().__init__(options, context)
        self.wanted = frozenset(options.events) if options.events is not None else ALL_KINDS
        mask = api.IN_DELETE_SELF | api.IN_MOVE_SELF | api.IN_EXCL_UNLINK | api.IN_DONT_FOLLOW
        for kind in self.wanted:
            mask |= KIND_MASKS[kind]
        if options.recursive:
            mask |= api.IN_CREATE | api.IN_MOVED_FROM | api.IN_MOVED_TO
        self.mask = mask
        self.source = f"{context.pipeline}/{self.type_name}"
        self.fd = -1
        self.dirs: dict[int, _Dir] = {}
        self.wds: dict[str, int] = {}
        self.roots: dict[str, int] = {}
        self.moves = MovePairer(options.move_wait)
        self._denied: set[str] = set()

    # -- watches -------------------------------------------------------------------

    async def open(self) -> None:
        roots = prepare_roots(self.options)
        try:
            self.fd = api.init()
        except OSError as exc:
            if exc.errno == errno.EMFILE:
                raise SourceError(
                    "too many inotify instances for this user (fs.inotify.max_user_instances); "
                    "raise it with sysctl, or use the `poll` source"
                ) from exc
            raise SourceError(f"inotify is not available: {exc.strerror}") from exc
        for root in roots:
            meta = MappingProxyType({"root": root})
            wd = self._watch(root, root, meta)
            if wd is None:
                raise SourceError(f"cannot watch {root}")
            self.roots[root] = wd
            if self.options.recursive and os.path.isdir(root):
                for _ in self._walk(root, root, meta):
                    pass
        self.log.info("watching", paths=list(self.roots), folders=len(self.dirs))

    def _watch(self, path: str, root: str, meta: Mapping[str, Any]) -> int | None:
        try:
            wd = api.add_watch(self.fd, os.fsencode(path), self.mask)
        except OSError as exc:
            if exc.errno == errno.ENOSPC:
                raise SourceError(_watch_limit_message(path)) from exc
            if exc.errno in (errno.EACCES, errno.EPERM):
                if path not in self._denied:
                    self._denied.add(path)
                    self.log.warning("permission denied; folder not watched", folder=path)
            elif exc.errno not in (errno.ENOENT, errno.ENOTDIR):
                self.log.warning("cannot watch folder", folder=path, error=exc.strerror)
            return None
        old = self.dirs.get(wd)
        if old is not None and old.path != path:
            self.wds.pop(old.path, None)
        self.dirs[wd] = _Dir(path, root, meta)
        self.wds[path] = wd
        return wd

    def _walk(self, top: str, root: str, meta: Mapping[str, Any]) -> Iterator[tuple[str, bool]]:
        """Watch every folder below `top` (already watched); yield each entry found."""
        stack = [top]
        while stack:
            folder = stack.pop()
            try:
                with os.scandir(folder) as entries:
                    found = [(e.path, e.is_dir(follow_symlinks=False)) for e in entries]
            except OSError as exc:
                if exc.errno in (errno.EACCES, errno.EPERM) and folder not in self._denied:
                    self._denied.add(folder)
                    self.log.warning("permission denied; folder not read", folder=folder)
                continue
            for path, is_dir in found:
                if is_dir and self._watch(path, root, meta) is not None:
                    stack.append(path)
                yield path, is_dir

    def _forget_tree(self, top: str) -> None:
        prefix = top + "/"
        for path in [p for p in self.wds if p == top or p.startswith(prefix)]:
            wd = self.wds.pop(path)
            self.dirs.pop(wd, None)
            try:
                api.rm_watch(self.fd, wd)
            except OSError as exc:
                self.log.debug("rm_watch failed", folder=path, error=exc.strerror)

    def _rename_tree(self, old: str, new: str) -> None:
        prefix = old + "/"
        for path in [p for p in self.wds if p == old or p.startswith(prefix)]:
            wd = self.wds.pop(path)
            moved = new + path[len(old) :]
            self.wds[moved] = wd
            self.dirs[wd].path = moved

    # -- events --------------------------------------------------------------------

    async def run(self, emit: Emit) -> None:
        loop = asyncio.get_running_loop()
        fd = self.fd
        while True:
            data = api.read_events(fd)
            if data:
                await self._handle(data, emit, loop.time())
                continue
            future: asyncio.Future[None] = loop.create_future()
            loop.add_reader(fd, _wake, future)
            deadline = self.moves.next_deadline()
            timer = loop.call_at(deadline, _wake, future) if deadline is not None else None
            try:
                await future
            finally:
                loop.remove_reader(fd)
                if timer is not None:
                    timer.cancel()
            await self._expire_moves(emit, loop.time())

    async def _expire_moves(self, emit: Emit, now: float) -> None:
        for origin in self.moves.expired(now):
            await self._moved_out(origin.path, origin.is_dir, emit)

    async def _moved_out(self, path: str, is_dir: bool, emit: Emit) -> None:
        if is_dir:
            self._forget_tree(path)
        if EventKind.DELETED in self.wanted:
            await emit(
                Event(EventKind.DELETED, path, self.source, is_dir, meta=self._meta_for(path))
            )

    def _meta_for(self, path: str) -> Mapping[str, Any]:
        for root, wd in self.roots.items():
            if path == root or path.startswith(root + "/"):
                return self.dirs[wd].meta if wd in self.dirs else MappingProxyType({"root": root})
        return MappingProxyType({})

    async def _handle(self, data: bytes, emit: Emit, now: float) -> None:
        seen = datetime.now(UTC)
        wanted, dirs, source = self.wanted, self.dirs, self.source
        fsdecode = os.fsdecode
        moves = self.moves
        for wd, mask, cookie, name in api.decode(data):
            if moves and not (mask & api.IN_MOVED_TO and cookie in moves):
                # The kernel queues a rename's two halves back to back: a first half
                # followed by anything else was a rename out of every watched folder.
                for origin in moves.drain():
                    await self._moved_out(origin.path, origin.is_dir, emit)
            folder = dirs.get(wd)
            if folder is None or not name or mask & (api.IN_Q_OVERFLOW | api.IN_IGNORED):
                await self._special(wd, mask, folder, emit, seen)
                continue
            is_dir = bool(mask & api.IN_ISDIR)
            path = folder.path + "/" + fsdecode(name)
            if mask & api.IN_MOVED_FROM:
                moves.moved_from(cookie, path, is_dir, now)
                continue
            if mask & api.IN_MOVED_TO:
                await self._moved_in(path, is_dir, cookie, folder, emit=emit, seen=seen)
                continue
            kind = SIMPLE_KINDS.get(mask & ~api.IN_ISDIR)
            if kind is None or (is_dir and kind in FOLDER_LISTING):
                continue
            if kind in wanted:
                await emit(Event(kind, path, source, is_dir, None, seen, folder.meta))
            if kind is EventKind.CREATED and is_dir and self.options.recursive:
                await self._discover(path, folder, emit, seen)
        if moves:
            await self._expire_moves(emit, now)

    async def _moved_in(
        self, path: str, is_dir: bool, cookie: int, folder: _Dir, *, emit: Emit, seen: datetime
    ) -> None:
        origin = self.moves.moved_to(cookie)
        src = origin.path if origin is not None else None
        if is_dir and self.options.recursive:
            if src is not None and src in self.wds:
                self._rename_tree(src, path)
            else:
                await self._discover(path, folder, emit, seen, announce=False)
        if EventKind.MOVED in self.wanted:
            await emit(Event(EventKind.MOVED, path, self.source, is_dir, src, seen, folder.meta))
        if src is None and is_dir and self.options.recursive:
            await self._announce_tree(path, folder, emit, seen)

    async def _discover(
        self, path: str, parent: _Dir, emit: Emit, seen: datetime, *, announce: bool = True
    ) -> None:
        """Watch a new folder, then report what was already in it (the mkdir race)."""
        if self._watch(path, parent.root, parent.meta) is None:
            return
        if announce:
            await self._announce_tree(path, parent, emit, seen)

    async def _announce_tree(self, path: str, parent: _Dir, emit: Emit, seen: datetime) -> None:
        meta = MappingProxyType({**parent.meta, "scan": True})
        report_created = EventKind.CREATED in self.wanted
        report_closed = EventKind.CLOSED_WRITE in self.wanted
        for entry, is_dir in list(self._walk(path, parent.root, parent.meta)):
            if report_created:
                await emit(Event(EventKind.CREATED, entry, self.source, is_dir, None, seen, meta))
            if report_closed and not is_dir:
                await emit(
                    Event(EventKind.CLOSED_WRITE, entry, self.source, False, None, seen, meta)
                )

    async def _special(
        self, wd: int, mask: int, folder: _Dir | None, emit: Emit, seen: datetime
    ) -> None:
        """Overflow, a watch that ended, or an event on a watched folder itself."""
        if mask & api.IN_Q_OVERFLOW:
            await self._overflow(emit, seen)
        elif folder is None:
            return  # a late event of a watch already removed
        elif mask & api.IN_IGNORED:
            if self.dirs.get(wd) is folder:
                del self.dirs[wd]
                self.wds.pop(folder.path, None)
        else:
            await self._self_event(folder, mask, emit, seen)

    async def _self_event(self, folder: _Dir, mask: int, emit: Emit, seen: datetime) -> None:
        """An event on a watched folder itself. Only roots report these: for any other
        folder its parent's watch already reported the same event under the folder's name."""
        if folder.path not in self.roots:
            return
        is_dir = os.path.isdir(folder.path) or bool(mask & api.IN_ISDIR)
        if mask & (api.IN_DELETE_SELF | api.IN_MOVE_SELF):
            self.log.warning("a watched path was deleted or moved away", path=folder.path)
            if EventKind.DELETED in self.wanted:
                await emit(
                    Event(
                        EventKind.DELETED, folder.path, self.source, is_dir, None, seen, folder.meta
                    )
                )
            return
        if mask & api.IN_UNMOUNT:
            self.log.warning("the file system of a watched path was unmounted", path=folder.path)
            return
        kind = SIMPLE_KINDS.get(mask & ~api.IN_ISDIR)
        if kind is not None and kind in self.wanted and not (is_dir and kind in FOLDER_LISTING):
            await emit(Event(kind, folder.path, self.source, is_dir, None, seen, folder.meta))

    async def _overflow(self, emit: Emit, seen: datetime) -> None:
        self.log.warning("inotify queue overflowed; events were lost by the kernel")
        for root, wd in self.roots.items():
            folder = self.dirs.get(wd)
            meta = folder.meta if folder else MappingProxyType({"root": root})
            await emit(Event(EventKind.OVERFLOW, root, self.source, True, None, seen, meta))

    async def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1
        self.dirs.clear()
        self.wds.clear()


@hookimpl
def pipeline_components() -> list[type[InotifySource]]:
    return [InotifySource]
