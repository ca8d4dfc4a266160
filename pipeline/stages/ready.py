"""The `ready` stage: passes a file on once it is completely written, and only once."""

from __future__ import annotations

import asyncio
import fnmatch
import os
import re
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Any, Literal

from pydantic import Field

from pipeline.components import ComponentContext, Emit, Stage
from pipeline.delivery import Hold, delivering, hold_delivery, release
from pipeline.event import Event, EventKind
from pipeline.hookspecs import hookimpl
from pipeline.options import ComponentOptions, Duration
from pipeline.stages.fileinfo import (
    Offload,
    StatFn,
    content_key,
    hash_file,
    is_regular,
    stat_all,
    stat_meta,
    try_stat,
)

Mode = Literal["auto", "close", "stable", "marker", "rename"]
TEMP_PATTERNS = ["*.tmp", ".*", "*.part", "*.partial", "*.crdownload", "*.download", "*~", "*.swp"]


class ReadyOptions(ComponentOptions):
    mode: Mode = "auto"
    """How a file is known to be complete: `close` (closed after writing), `stable` (size and
    mtime unchanged for `stable_for`), `marker` (a marker file says so), `rename` (renamed
    from a temporary name), or `auto` (close or rename, and stable for sources that report
    no close events)."""
    stable_for: Duration = 2.0
    """`stable`/`auto`: how long size and mtime must stay unchanged."""
    poll_interval: Duration | None = None
    """`stable`/`auto`: how often files waiting to settle are stat-ed (unset: a quarter of
    `stable_for`)."""
    markers: list[str] = Field(default_factory=lambda: ["_SUCCESS"])
    """`marker`: file names that mark every file in their folder ready (Spark/Hadoop style)."""
    marker_suffixes: list[str] = Field(default_factory=lambda: [".done"])
    """`marker`: suffixes that mark one file ready: `x.csv.done` marks `x.csv`."""
    temp_patterns: list[str] = Field(default_factory=lambda: list(TEMP_PATTERNS))
    """Names (fnmatch on the file name) of files still being written: never passed on; a
    rename from one of them is a `rename` completion."""
    dedupe: bool = True
    """Pass a file on again only when its content changed (a new size, mtime or inode, or
    a new sha256 with `dedupe_by: sha256`)."""
    dedupe_by: Literal["stat", "sha256"] = "stat"
    """What tells content apart: `stat` (size, mtime_ns, inode; free) or `sha256` (reads the
    file in a worker thread; catches a rewrite with identical content, adds meta.sha256)."""
    remember: int = Field(default=100_000, ge=1)
    """How many files' last passed-on content are remembered for `dedupe` (oldest forgotten)."""
    max_tracked: int = Field(default=100_000, ge=1)
    """`stable`/`auto`: most files waiting to settle at once; beyond it the oldest is dropped
    with a warning."""


class _Watch:
    __slots__ = ("event", "holds", "key", "since")

    def __init__(self, event: Event, since: float) -> None:
        self.event = event
        self.key: Hashable | None = None
        self.since = since
        self.holds: list[Hold] = []  # upstream deliveries, when a source tracks them


class ReadyStage(Stage[ReadyOptions]):
    """Passes a file on once it is complete: closed, stable, marked, or renamed into place.

    Place it right after the source: it needs the raw events. What comes out is one event
    per complete file: `closed_write` (or `moved`, with `src_path`, for a rename) carrying
    `meta.size`, `meta.mtime`, `meta.mtime_ns` and `meta.inode` of the final content and
    `meta.ready` (close, stable, marker or rename). Everything else is dropped: events on
    folders, deletions, files with a temporary name (`temp_patterns`) and marker files;
    `overflow` passes through.

    - `close`: a `closed_write` event (inotify, fanotify) means the writer is done.
    - `rename`: a `moved` event onto a regular name from a temporary name, from outside the
      watched folders, or from another folder (atomic placement).
    - `stable`: for writers that produce no close events (NFS, SMB, the poll source): any
      event starts watching the file; it is stat-ed every `poll_interval` in a worker thread
      and passed on once size, mtime and inode have not changed for `stable_for`. A writer
      that pauses longer than that mid-file is taken for finished: choose it generously.
    - `marker`: a marker file makes files ready: `_SUCCESS` (`markers`) every file in its
      folder, `x.csv.done` (`marker_suffixes`) the file `x.csv`. A file closed or moved in
      after its marker already exists is ready at once.
    - `auto`: close and rename; events from a source that has never reported an open or
      close event (so cannot) are watched as in `stable`.

    With `dedupe` (the default) a file is passed on again only when its content changed,
    so a second close, a marker touched twice or a restarted poll does not repeat it.
    """

    type_name = "ready"
    Options = ReadyOptions

    def __init__(self, options: ReadyOptions, context: ComponentContext) -> None:
        super().__init__(options, context)
        self._temp = re.compile("|".join(fnmatch.translate(p) for p in options.temp_patterns))
        self._markers = frozenset(options.markers)
        self._suffixes = tuple(options.marker_suffixes)
        self._interval = options.poll_interval or max(options.stable_for / 4, 0.01)
        self._tracked: OrderedDict[str, _Watch] = OrderedDict()
        self._passed: OrderedDict[str, Hashable] = OrderedDict()
        self._close_sources: set[str] = set()
        self._arrived = asyncio.Event()
        self.stat: StatFn = try_stat
        """How files are stat-ed; tests may swap it."""
        self.listdir: Callable[[str], list[str]] = os.listdir
        """How a marked folder is listed; tests may swap it."""
        self.offload: Offload = asyncio.to_thread
        """Where file-system work runs: a worker thread (tests may run it inline)."""

    @property
    def tracked(self) -> int:
        """Files waiting to settle (`stable`/`auto`)."""
        return len(self._tracked)

    def is_temp(self, name: str) -> bool:
        return (
            bool(self.options.temp_patterns)
            and self._temp.match(name) is not None
            and not self.is_marker(name)
        )

    def is_marker(self, name: str) -> bool:
        if self.options.mode != "marker":
            return False
        return name in self._markers or any(
            name.endswith(s) and len(name) > len(s) for s in self._suffixes
        )

    async def process(self, event: Event, emit: Emit) -> None:
        kind, path = event.kind, event.path
        if kind is EventKind.OVERFLOW:
            await emit(event)
            return
        closing = kind in (EventKind.OPENED, EventKind.CLOSED_WRITE, EventKind.CLOSED_NOWRITE)
        if closing and event.source not in self._close_sources:
            self._reports_closes(event.source)
        if kind is EventKind.MOVED and event.src_path is not None:
            self._forget(event.src_path)
        if event.is_dir or kind in (EventKind.DELETED, EventKind.BATCH):
            self._forget(path)
            return
        name = os.path.basename(path)
        if self.is_marker(name):
            if kind in (EventKind.CREATED, EventKind.CLOSED_WRITE, EventKind.MOVED):
                await self._marked(event, emit)
            return
        if self.is_temp(name):
            self._forget(path)
            return
        await self._complete_or_wait(event, emit)

    async def _complete_or_wait(self, event: Event, emit: Emit) -> None:
        """A regular file's event: pass it on if this mode's completion signal, else watch it."""
        kind, path, mode = event.kind, event.path, self.options.mode
        if mode == "marker":
            if kind in (EventKind.CLOSED_WRITE, EventKind.MOVED) and await self.offload(
                self._has_marker, path
            ):
                await self._ready(event, "marker", emit)
        elif kind is EventKind.CLOSED_WRITE and mode == "auto" and event.meta.get("scan"):
            # Found by a scan (new folder, overflow, catch-up), not closed before our eyes:
            # the source could not always tell whether a writer still has it open.
            self._track(event)
        elif kind is EventKind.CLOSED_WRITE and mode in ("close", "auto"):
            with delivering(self._untrack(path)):
                await self._ready(event, "close", emit)
        elif kind is EventKind.MOVED and mode in ("rename", "auto") and self._placed(event):
            with delivering(self._untrack(path)):
                await self._ready(event, "rename", emit)
        elif kind in (EventKind.OPENED, EventKind.CLOSED_NOWRITE):
            return  # someone read it: no change to wait out
        elif mode == "stable" or (mode == "auto" and event.source not in self._close_sources):
            self._track(event)

    def _reports_closes(self, source: str) -> None:
        """`auto`: this source reports closes, so its files need no stability watch."""
        self._close_sources.add(source)
        if self.options.mode == "auto":
            for path in [p for p, w in self._tracked.items() if w.event.source == source]:
                self._forget(path)

    def _placed(self, event: Event) -> bool:
        """A rename that puts complete content in place at once."""
        src = event.src_path
        if src is None or os.path.dirname(src) != os.path.dirname(event.path):
            return True
        return self._temp.match(os.path.basename(src)) is not None

    def _track(self, event: Event) -> None:
        now = self.context.clock.monotonic()
        hold = hold_delivery()
        watch = self._tracked.get(event.path)
        if watch is not None:  # it changed again: the quiet time starts over
            watch.event, watch.since = event, now
        else:
            if len(self._tracked) >= self.options.max_tracked:
                dropped, oldest = self._tracked.popitem(last=False)
                release(oldest.holds, delivered=False)  # a broker source delivers it again
                self.log.warning("too many files waiting to settle; dropped one", path=dropped)
            watch = self._tracked[event.path] = _Watch(event, now)
            self._arrived.set()
        if hold is not None:
            watch.holds.append(hold)

    def _untrack(self, path: str) -> list[Hold]:
        """Stop watching `path`; the upstream deliveries its events held."""
        watch = self._tracked.pop(path, None)
        return watch.holds if watch is not None else []

    def _forget(self, path: str) -> None:
        """Stop watching `path` for good (deleted, a temp name, a folder): it is handled."""
        release(self._untrack(path))

    async def run(self, emit: Emit) -> None:
        while True:
            if not self._tracked:
                self._arrived.clear()
                await self._arrived.wait()
                continue
            await self.context.clock.sleep(self._interval)
            await self.poll(emit)

    async def poll(self, emit: Emit) -> None:
        """Stat every file waiting to settle (one worker-thread trip); pass on the settled."""
        paths = list(self._tracked)
        stats = await self.offload(stat_all, self.stat, paths)
        now = self.context.clock.monotonic()
        for path, st in zip(paths, stats, strict=True):
            watch = self._tracked.get(path)
            if watch is None:
                continue  # settled otherwise (a close, a rename, a deletion) meanwhile
            if st is None or not is_regular(st):
                self._forget(path)
                continue
            key = content_key(st)
            if key != watch.key:
                watch.key, watch.since = key, max(watch.since, now)
            elif now - watch.since >= self.options.stable_for:
                with delivering(self._untrack(path)):
                    await self._ready(watch.event, "stable", emit, st)

    def _has_marker(self, path: str) -> bool:
        folder = os.path.dirname(path)
        return any(self.stat(os.path.join(folder, m)) is not None for m in self._markers) or any(
            self.stat(path + s) is not None for s in self._suffixes
        )

    def _marked_files(self, folder: str) -> list[tuple[str, os.stat_result]]:
        try:
            names = sorted(self.listdir(folder))
        except (FileNotFoundError, NotADirectoryError):
            return []
        found = []
        for name in names:
            if self.is_marker(name) or self.is_temp(name):
                continue
            path = os.path.join(folder, name)
            st = self.stat(path)
            if st is not None and is_regular(st):
                found.append((path, st))
        return found

    async def _marked(self, marker: Event, emit: Emit) -> None:
        name = os.path.basename(marker.path)
        if name in self._markers:
            files = await self.offload(self._marked_files, os.path.dirname(marker.path))
            for path, st in files:
                await self._ready(marker, "marker", emit, st, path)
            return
        suffix = next(s for s in self._suffixes if name.endswith(s))
        target = marker.path[: -len(suffix)]
        if not self.is_temp(os.path.basename(target)):
            await self._ready(marker, "marker", emit, None, target)

    async def _ready(
        self,
        trigger: Event,
        reason: str,
        emit: Emit,
        st: os.stat_result | None = None,
        path: str | None = None,
    ) -> None:
        path = path or trigger.path
        if st is None:
            st = await self.offload(self.stat, path)
        if st is None or not is_regular(st):
            return  # gone (or replaced by a folder) before it could be passed on
        meta: dict[str, Any] = {**trigger.meta, **stat_meta(st), "ready": reason}
        if self.options.dedupe:
            key: Hashable = (content_key(st), st.st_dev)
            if self.options.dedupe_by == "sha256":
                try:
                    key = meta["sha256"] = await self.offload(hash_file, path, "sha256")
                except FileNotFoundError:
                    return
            if self._passed.get(path) == key:
                self._passed.move_to_end(path)
                return
            self._passed[path] = key
            self._passed.move_to_end(path)
            if len(self._passed) > self.options.remember:
                self._passed.popitem(last=False)
        kind = EventKind.MOVED if reason == "rename" else EventKind.CLOSED_WRITE
        if path == trigger.path:
            src = trigger.src_path if kind is EventKind.MOVED else None
            await emit(trigger.evolve(kind=kind, src_path=src, meta=meta))
        else:
            await emit(Event(kind, path, trigger.source, False, meta=meta))


@hookimpl
def pipeline_components() -> list[type[ReadyStage]]:
    return [ReadyStage]
