"""The `poll` source: stat scans at an interval, for file systems inotify misses (NFS, SMB)."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import threading
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Any

from pydantic import field_validator

from pipeline.components import ComponentContext, Emit, Source
from pipeline.event import EMPTY_META, Event, EventKind
from pipeline.hookspecs import hookimpl
from pipeline.options import Duration
from pipeline.sources.catchup import Checkpoints, changes_since, merge_saved
from pipeline.sources.common import WatchOptions, prepare_roots
from pipeline.sources.snapscan import ScanDir, ScanProgress, scan
from pipeline.sources.snapshot import INO, MTIME_NS, SIZE, Change, Entry, Snapshot, below, diff

POLL_KINDS: frozenset[EventKind] = frozenset(
    {EventKind.CREATED, EventKind.MODIFIED, EventKind.ATTRIB, EventKind.DELETED, EventKind.MOVED}
)
"""The kinds a stat poller can see."""
MIN_INTERVAL = 0.01
WATCH_TICK = 1.0
"""Longest pause between two looks at a running scan, to spot a hung folder."""
MAX_STALLED_PER_ROOT = 4
"""Folders of one root left hanging before the whole root is skipped until one answers."""
CLOSE_WAIT = 2.0

ScanResult = tuple[Snapshot, list[Change]]


class PollOptions(WatchOptions):
    interval: Duration = 1.0
    """Pause between the end of one scan and the start of the next (at least 10ms)."""
    stall_timeout: Duration = 10.0
    """How long one file-system call may hang (a dead NFS or SMB server) before the scan
    skips its folder, keeping what was last seen there; the folder is read again once the
    call returns."""
    trust_folder_times: bool = True
    """List a folder again only when its modification or change time moved since it was
    last listed (its files are still stat-ed at every scan, so a change to a file is
    always seen): about a third less CPU per scan. Turn it off on a file system that does
    not update a folder's times when an entry is added, removed or renamed (some FUSE
    file systems)."""

    @field_validator("interval")
    @classmethod
    def _sensible_interval(cls, value: float) -> float:
        if value < MIN_INTERVAL:
            raise ValueError("the poll interval must be at least 10ms")
        return value

    @field_validator("stall_timeout")
    @classmethod
    def _positive_timeout(cls, value: float) -> float:
        if value <= 0:
            raise ValueError("stall_timeout must be more than 0")
        return value

    @field_validator("events")
    @classmethod
    def _visible_kinds(cls, kinds: list[EventKind] | None) -> list[EventKind] | None:
        unseen = sorted(set(kinds or ()) - POLL_KINDS)
        if unseen:
            raise ValueError(
                f"the poll source cannot see {', '.join(unseen)}; it reports "
                f"{', '.join(sorted(POLL_KINDS))}"
            )
        return kinds


class _ScanJob:
    """One scan in its own daemon thread, so that a scan stuck in the kernel can be left
    behind without holding up the event loop, a thread pool, or the process's exit."""

    def __init__(self, work: Callable[[ScanProgress], ScanResult]) -> None:
        self.progress = ScanProgress()
        self.loop = asyncio.get_running_loop()
        self.done: asyncio.Future[ScanResult] = self.loop.create_future()
        self.thread = threading.Thread(
            target=self._run, args=(work,), name="fspipeline-poll", daemon=True
        )
        self.thread.start()

    def _run(self, work: Callable[[ScanProgress], ScanResult]) -> None:
        try:
            result = work(self.progress)
        except Exception as exc:
            self._settle(functools.partial(_fail, self.done, exc))
        else:
            self._settle(functools.partial(_succeed, self.done, result))

    def _settle(self, callback: Callable[[], None]) -> None:
        # A closed loop raises RuntimeError: nobody waits for this scan any more.
        with contextlib.suppress(RuntimeError):
            self.loop.call_soon_threadsafe(callback)


def _itself(entries: dict[str, Entry]) -> dict[str, Entry]:
    return entries  # a scan's entries are never changed once it is done: no copy needed


def _succeed(future: asyncio.Future[ScanResult], result: ScanResult) -> None:
    if not future.done():
        future.set_result(result)


def _fail(future: asyncio.Future[ScanResult], exc: Exception) -> None:
    if not future.done():
        future.set_exception(exc)


class PollSource(Source[PollOptions]):
    """Polls folders with stat() at an interval; for NFS, SMB, FUSE and others inotify misses.

    Each scan lists every folder (symlinks are not followed) and compares what it finds
    with the previous scan: `created`, `modified` (size or mtime changed), `attrib` (only
    mode, owner, link count or ctime changed), `deleted`, and `moved` (a path vanished and
    another appeared with the same inode, size and mtime). Only the net change between two
    scans is seen: a file created and deleted in between is never reported, and a file
    replaced by a new one is reported as `created`. What exists at start is not reported
    (with a `state_dir`, what changed since the last run is, first), and folders are not
    reported as modified when their entries change.

    Within one scan, events come in an order a mirror can replay: new folders that
    something moves into, then moves, then deletions (a folder's entries before the
    folder), then creations (a folder before its entries), then `modified` and `attrib`.
    Entries that moved along with their folder are covered by the folder's `moved`.
    Events for files carry `meta.size`, `meta.mtime` (seconds) and `meta.inode`.

    A scan stats every entry, and lists only the folders whose times moved since their
    last listing (`trust_folder_times`): about 2.5 microseconds of CPU per entry on a
    local disk (0.25 s for 100,000 files; `bench/poll.py` measures it), more over a
    network, so raise `interval` for big trees. A folder that
    cannot be read, or whose file system stops answering (`stall_timeout`), is skipped
    with one warning and keeps what was last seen in it. A watched path that disappears is
    reported deleted, with its contents, and polled until it comes back.
    """

    type_name = "poll"
    Options = PollOptions

    def __init__(self, options: PollOptions, context: ComponentContext) -> None:
        super().__init__(options, context)
        self.wanted = frozenset(options.events) if options.events is not None else POLL_KINDS
        self.source = f"{context.pipeline}/{self.type_name}"
        self.scandir: ScanDir = os.scandir
        """What lists a folder; tests may swap it to act out a hung file system."""
        self.roots: list[str] = []
        self.snapshot = Snapshot()
        self.checkpoints: Checkpoints | None = None
        if context.state_dir is not None:
            scope = {"source": self.type_name, "recursive": options.recursive}
            self.checkpoints = Checkpoints(
                context.state_dir, scope, options.checkpoint_interval, self.log
            )
        self._reported = self.snapshot
        """The last snapshot whose every change has been emitted."""
        self._backlog: list[Change] = []
        self._opened = False
        self._metas: list[tuple[str, str, Mapping[str, Any]]] = []  # root, prefix, meta
        self._job: _ScanJob | None = None
        self._stalled: dict[str, str] = {}  # hung folder -> its root
        self._problems: set[str] = set()
        self._missing: set[str] = set()

    async def open(self) -> None:
        roots = prepare_roots(self.options)
        if self.options.recursive:  # a root inside another is scanned with it
            roots = [r for r in roots if not any(r.startswith(below(o)) for o in roots)]
        self.roots = list(dict.fromkeys(roots))
        self._metas = sorted(
            ((root, below(root), MappingProxyType({"root": root})) for root in self.roots),
            key=lambda item: len(item[0]),
            reverse=True,
        )
        started = time.perf_counter()
        self._opened = False
        before = self._previous()
        self.snapshot, _ = await self._scan(None)
        self._reported = self.snapshot
        self._note_problems(self.snapshot)
        if before is not None:
            saved, covered = before
            self._backlog = changes_since(saved, self.snapshot.entries, covered)
            if self._backlog:  # reported once emitted, by run()
                self._reported = Snapshot(merge_saved(self.snapshot.entries, saved, covered))
        elif self.checkpoints is not None:
            self.checkpoints.first_start(self.snapshot.entries)
        self._opened = True
        self.log.info(
            "polling",
            paths=self.roots,
            entries=len(self.snapshot.entries),
            scan_seconds=round(time.perf_counter() - started, 3),
            interval=self.options.interval,
            catching_up=len(self._backlog) if before is not None else None,
        )

    def _previous(self) -> tuple[dict[str, Entry], list[str]] | None:
        """What was reported before this start: by this object's last run (the engine
        restarts a failed source in place), else as saved under the state_dir."""
        if self._reported.entries:
            return dict(self._reported.entries), list(self.roots)
        if self.checkpoints is not None:
            return self.checkpoints.load(self.roots)
        return None

    async def run(self, emit: Emit) -> None:
        clock = self.context.clock
        loop = asyncio.get_running_loop()
        backlog, self._backlog = self._backlog, []
        await self._emit_all(backlog, emit)
        self._reported = self.snapshot
        changed = bool(backlog)
        while True:
            if self.checkpoints is not None:
                taken = functools.partial(_itself, self._reported.entries)
                if self.checkpoints.tick(loop.time(), changed, taken):
                    changed = False
            await clock.sleep(self.options.interval)
            changed = await self.poll(emit) or changed

    async def poll(self, emit: Emit) -> bool:
        """Scan once, now, and emit what changed since the last scan; whether anything did.
        (`run` calls it every `interval`; a benchmark may call it directly.)"""
        snapshot, changes = await self._scan(self.snapshot)
        self.snapshot = snapshot
        self._note_problems(snapshot)
        await self._emit_all(changes, emit)
        self._reported = snapshot
        return bool(changes)

    async def _emit_all(self, changes: list[Change], emit: Emit) -> None:
        if not changes:
            return
        seen = datetime.now(UTC)
        wanted = self.wanted
        for change in changes:
            if change.kind in wanted:
                await emit(self._event(change, seen))

    async def close(self) -> None:
        job, self._job = self._job, None
        if job is not None:
            if not job.done.done():
                job.progress.cancelled = True
                await asyncio.wait({job.done}, timeout=CLOSE_WAIT)
            if job.done.done():  # its thread is returning: let it end before we do
                await asyncio.to_thread(job.thread.join, CLOSE_WAIT)
        if self.checkpoints is not None and self._opened:
            await self.checkpoints.close(self._reported.entries)

    # -- scanning ------------------------------------------------------------------

    def _scan_and_diff(
        self, previous: Snapshot | None, skip: frozenset[str], progress: ScanProgress
    ) -> ScanResult:
        """Runs in the job's thread."""
        snapshot = scan(
            self.roots,
            recursive=self.options.recursive,
            previous=previous,
            skip=skip,
            progress=progress,
            scandir=self.scandir,
            reuse_listings=self.options.trust_folder_times,
        )
        progress.folder = ""  # comparing now: no file-system calls left to hang
        if previous is None:
            return snapshot, []
        return snapshot, diff(previous.entries, snapshot.entries, touched=snapshot.touched)

    async def _scan(self, previous: Snapshot | None) -> ScanResult:
        """Scan (and diff) in a thread; restart without a folder that stops answering."""
        while True:
            job = _ScanJob(functools.partial(self._scan_and_diff, previous, self._skipped()))
            self._job = job
            try:
                result = await self._watch(job)
            except asyncio.CancelledError:
                job.progress.cancelled = True
                raise
            if result is not None:
                return result

    def _skipped(self) -> frozenset[str]:
        """Hung folders, and the roots that have too many of them."""
        per_root: dict[str, int] = {}
        for root in self._stalled.values():
            per_root[root] = per_root.get(root, 0) + 1
        crowded = {root for root, count in per_root.items() if count >= MAX_STALLED_PER_ROOT}
        return frozenset(self._stalled) | crowded

    async def _watch(self, job: _ScanJob) -> ScanResult | None:
        """The job's result; or None once it has been stuck in one call for `stall_timeout`."""
        loop = asyncio.get_running_loop()
        timeout = self.options.stall_timeout
        progress = job.progress
        mark = (progress.folder, progress.steps)
        since = loop.time()
        while True:
            done, _ = await asyncio.wait({job.done}, timeout=min(WATCH_TICK, timeout / 4))
            if done:
                return job.done.result()
            now = loop.time()
            current = (progress.folder, progress.steps)
            if current != mark or not current[0]:
                mark, since = current, now
            elif now - since >= timeout:
                self._abandon(job, current[0])
                return None

    def _abandon(self, job: _ScanJob, folder: str) -> None:
        job.progress.cancelled = True
        found = self._root_of(folder)
        root = found[0] if found is not None else folder
        self._stalled[folder] = root
        self.log.warning(
            "folder not answering; skipped until it does",
            folder=folder,
            waited=self.options.stall_timeout,
        )
        if sum(1 for r in self._stalled.values() if r == root) == MAX_STALLED_PER_ROOT:
            self.log.warning("too many folders not answering; skipping the whole path", path=root)
        job.done.add_done_callback(functools.partial(self._answered, folder))

    def _answered(self, folder: str, future: asyncio.Future[ScanResult]) -> None:
        if not future.cancelled():
            future.exception()  # retrieved: it is expected (the scan was cancelled)
        if self._stalled.pop(folder, None) is not None:
            self.log.info("folder answers again", folder=folder)

    def _note_problems(self, snapshot: Snapshot) -> None:
        """Warn once per folder that cannot be read, and once per root that is gone."""
        problems = snapshot.problems
        for folder in sorted(problems.keys() - self._problems):
            self.log.warning(
                "folder not readable; keeping what was last seen in it",
                folder=folder,
                error=problems[folder],
            )
        for folder in sorted(self._problems - problems.keys()):
            self.log.info("folder readable again", folder=folder)
        self._problems = set(problems)
        missing = set(snapshot.missing)
        for root in sorted(missing - self._missing):
            self.log.warning("watched path is gone; polling until it comes back", path=root)
        for root in sorted(self._missing - missing):
            self.log.info("watched path is back", path=root)
        self._missing = missing

    # -- events --------------------------------------------------------------------

    def _root_of(self, path: str) -> tuple[str, Mapping[str, Any]] | None:
        """The (innermost) watched path that `path` is in, and its shared meta."""
        for root, prefix, meta in self._metas:
            if path == root or path.startswith(prefix):
                return root, meta
        return None

    def _event(self, change: Change, seen: datetime) -> Event:
        found = self._root_of(change.path)
        meta = found[1] if found is not None else EMPTY_META
        entry = change.entry
        if entry is not None and not change.is_dir:
            meta = MappingProxyType(
                {**meta, "size": entry[SIZE], "mtime": entry[MTIME_NS] / 1e9, "inode": entry[INO]}
            )
        return Event(
            change.kind, change.path, self.source, change.is_dir, change.src_path, seen, meta
        )


@hookimpl
def pipeline_components() -> list[type[PollSource]]:
    return [PollSource]
