"""The `windows` source: ReadDirectoryChangesW, recursive, lossless across overflows."""

from __future__ import annotations

import asyncio
import os
import sys
from datetime import UTC, datetime
from types import MappingProxyType

from pydantic import Field, field_validator

from pipeline.components import ComponentContext, Emit, Source
from pipeline.errors import SourceError
from pipeline.event import Event, EventKind
from pipeline.hookspecs import hookimpl
from pipeline.options import ByteSize, ConfigPath, Duration
from pipeline.sources.catchup import Checkpoints, changes_since, merge_saved
from pipeline.sources.common import WatchOptions, prepare_roots
from pipeline.sources.snapshot import Change, Entry, below
from pipeline.windows.rdcw_decode import decode
from pipeline.windows.rdcw_events import RecordTranslator
from pipeline.windows.rdcw_known import KnownTree
from pipeline.windows.rdcw_paths import (
    NETWORK_BUFFER_LIMIT,
    LongNames,
    buffer_size_for,
    is_network_path,
)
from pipeline.windows.rdcw_reader import Chunk, ChunkQueue, DirectoryReader, Outcome
from pipeline.windows.rdcw_rescan import TreeScans
from pipeline.windows.rdcw_scan import api_path, probe_dir, stat_path

WINDOWS_KINDS: frozenset[EventKind] = frozenset(
    {EventKind.CREATED, EventKind.MODIFIED, EventKind.DELETED, EventKind.MOVED, EventKind.OVERFLOW}
)
"""What ReadDirectoryChangesW can tell: no opens, no closes, no attribute changes apart."""
QUEUE_CHUNKS = 256
"""Buffers read but not yet handled, across all watched folders."""
REOPEN_INTERVAL = 1.0
"""Seconds between tries to watch again a folder whose handle failed or is missing."""


class WindowsOptions(WatchOptions):
    paths: list[ConfigPath] = Field(min_length=1, examples=[["inbox"]])
    """Folders to watch, relative to the config file (a single file cannot be watched:
    watch its folder and add a `filter` stage)."""
    buffer_size: ByteSize = 64 * 1024
    """Bytes per read of changes (rounded up to a multiple of 8). Windows keeps changes in
    a buffer of this size between two reads and reports an overflow (then the tree is
    rescanned) when it fills. On a network share it is capped at 64 KiB, the most SMB
    accepts."""
    move_wait: Duration = 0.05
    """How long a rename's old name that ended one read waits for its new name in the
    next, before it counts as `deleted` (renamed out of the watched folders). With
    extended records a removal that ended a read waits too: it may be a move to another
    folder, which NTFS reports as a removal and an addition."""
    extended: bool = True
    """Ask for extended records (ReadDirectoryChangesExW, Windows 10 1709 and later):
    they tell folders from files without a stat and add `meta.inode` (file id),
    `meta.size`, `meta.mtime` and `meta.created`; where a file system cannot give them
    (FAT, many SMB servers) the basic records are used."""

    @field_validator("buffer_size")
    @classmethod
    def _sensible_buffer(cls, value: int) -> int:
        if not 64 <= value <= 16 * 1024 * 1024:
            raise ValueError("buffer_size must be between 64 bytes and 16MiB (64KiB is usual)")
        return value

    @field_validator("events")
    @classmethod
    def _visible_kinds(cls, kinds: list[EventKind] | None) -> list[EventKind] | None:
        unseen = sorted(set(kinds or ()) - WINDOWS_KINDS)
        if unseen:
            raise ValueError(
                f"the windows source cannot see {', '.join(unseen)}: Windows reports no "
                f"opens, closes or attribute changes apart; it reports "
                f"{', '.join(sorted(WINDOWS_KINDS))}. For one event per finished file, add "
                "the `ready` stage after it (its `auto` mode waits until a file stops changing)"
            )
        return kinds


class WindowsSource(Source[WindowsOptions]):
    """Watches folders with Windows ReadDirectoryChangesW: recursive, lossless across overflows.

    One handle per watched folder, read with overlapped I/O in a thread of its own.
    Reported: `created`, `modified`, `deleted`, `moved` and `overflow`. A rename's two
    records become one `moved`; a move between two folders of the tree too, when the
    records carry file ids (extended records); a rename out of the watched folders is
    `deleted`, one from outside a `moved` with `src_path: null`. The several `modified`
    records one write makes come as one event; folders' own `modified` are dropped. A
    folder moved in from outside comes as one record from Windows: what it holds is
    found by a scan and reported too (`meta.scan: true`).
    Names that arrive as 8.3 short names (`REPORT~1.CSV`) are expanded to long names, and
    paths longer than 260 characters work.

    Windows has no close event, so there is no `closed_write`: put the `ready` stage
    (mode `auto` or `stable`) after this source to get one event per file once it has
    stopped changing for `stable_for`.

    Nothing is lost. When Windows' buffer overflows (Windows reports it three ways; all
    count), one `overflow` event is emitted for the folder, it is rescanned, and what
    changed since the last known state is reported with `meta.scan: true`. A watched
    folder that is deleted, or whose handle fails (a network share gone), is reported,
    watched again once it is back, and rescanned. With a `state_dir`, what changed while
    the process was down is reported at start, before live events.

    Start-up stats every entry of the watched trees once (on Windows a full stat, about
    20-50 microseconds a file on a local disk), to know the state it rescans against.
    On other systems the source validates but does not run.
    """

    type_name = "windows"
    Options = WindowsOptions

    def __init__(self, options: WindowsOptions, context: ComponentContext) -> None:
        super().__init__(options, context)
        self.wanted = frozenset(options.events) if options.events is not None else WINDOWS_KINDS
        self.source = f"{context.pipeline}/{self.type_name}"
        self.known = KnownTree()
        self.roots: list[str] = []
        self.readers: dict[str, DirectoryReader] = {}
        self.translators: dict[str, RecordTranslator] = {}
        self.lost: set[str] = set()
        """Watched folders without a working handle, tried again every REOPEN_INTERVAL."""
        self._unwatchable: dict[str, str] = {}  # lost folder -> the error last logged
        self.checkpoints: Checkpoints | None = None
        if context.state_dir is not None:
            scope = {"source": self.type_name, "recursive": options.recursive}
            self.checkpoints = Checkpoints(
                context.state_dir, scope, options.checkpoint_interval, self.log
            )
        self.reader_type: type[DirectoryReader] = DirectoryReader
        """What reads a folder's changes (a thread on a Win32 handle); tests may swap it."""
        self._queue: ChunkQueue | None = None
        self._scans: TreeScans | None = None
        self._long_names = LongNames(_long_path_name)
        self._exclude: list[str] = []
        self._backlog: list[Change] = []
        self._unreported: tuple[dict[str, Entry], list[str]] | None = None
        self._previous: tuple[dict[str, Entry], list[str]] | None = None
        self._opened = False
        self._idle_now = False
        self._reopen_at = 0.0

    # -- start and stop --------------------------------------------------------------

    async def open(self) -> None:
        if self.reader_type is DirectoryReader:
            _require_windows(self.context.label)
        roots = [self._long_names.expand(root) for root in prepare_roots(self.options)]
        if self.options.recursive:  # a root inside another is watched with it
            roots = [r for r in roots if not any(r.startswith(below(o)) for o in roots)]
        self.roots = sorted(dict.fromkeys(roots), key=len, reverse=True)  # innermost first
        self.readers, self.translators, self.lost = {}, {}, set()
        for root in self.roots:
            if os.path.exists(api_path(root)) and probe_dir(root) is False:
                raise SourceError(
                    f"{root} is a file; the windows source watches folders: watch its "
                    "folder and add a `filter` stage for the file"
                )
        state_dir = self.context.state_dir
        self._exclude = [self._long_names.expand(str(state_dir))] if state_dir else []
        self._queue = ChunkQueue(QUEUE_CHUNKS)
        for root in self.roots:
            self.translators[root] = self._translator(root)
        scans = self._scans = TreeScans(
            self.known,
            source=self.source,
            wanted=self.wanted,
            recursive=self.options.recursive,
            exclude=self._exclude,
            metas={root: t.meta for root, t in self.translators.items()},
        )
        for root in self.roots:
            if not await self._watch(root, at_start=True):
                self.lost.add(root)
        # The first reads are running: what changes during this scan is reported anyway.
        snapshot = await scans.scan(self.roots)
        self.known.entries = dict(snapshot.entries)
        previous = self._previous_state()
        if previous is not None:
            saved, covered = previous
            self._backlog = changes_since(saved, self.known.entries, covered)
            self._unreported = previous if self._backlog else None
        elif self.checkpoints is not None:
            self.checkpoints.first_start(snapshot.entries)
        self.known.changed = self.checkpoints is not None
        self._opened = True
        self.log.info(
            "watching",
            paths=self.roots,
            entries=len(self.known),
            waiting_for=sorted(self.lost) or None,
            catching_up=len(self._backlog) if previous is not None else None,
        )

    def _translator(self, root: str) -> RecordTranslator:
        return RecordTranslator(
            root,
            source=self.source,
            wanted=self.wanted,
            known=self.known,
            meta=MappingProxyType({"root": root}),
            expand=self._long_names.expand,
            probe_dir=probe_dir,
            move_wait=self.options.move_wait,
            exclude=self._exclude,
        )

    async def _watch(self, root: str, *, at_start: bool) -> bool:
        """Open `root` and start reading it; False if it is missing (and may be waited for)."""
        assert self._queue is not None
        network = is_network_path(root, _drive_type)
        size = buffer_size_for(self.options.buffer_size, network=network)
        if size < self.options.buffer_size and at_start:
            self.log.info("buffer capped on a network share", path=root, buffer=size,
                          limit=NETWORK_BUFFER_LIMIT)  # fmt: skip
        reader = self.reader_type(
            root,
            api_path(root),
            recursive=self.options.recursive,
            buffer_size=size,
            extended=self.options.extended,
            queue=self._queue,
            log=self.log,
        )
        try:
            await asyncio.to_thread(reader.start)
        except OSError as exc:
            if not os.path.exists(api_path(root)) and (self.options.wait_missing or not at_start):
                return False
            raise SourceError(f"cannot watch {root}: {exc.strerror or exc}") from exc
        self.readers[root] = reader
        return True

    def _previous_state(self) -> tuple[dict[str, Entry], list[str]] | None:
        """What was known before this start: from this object's last run (the engine
        restarts a failed source in place), else from the saved snapshot."""
        previous, self._previous = self._previous, None
        if previous is not None:
            entries, known = previous
            return entries, [r for r in self.roots if r in known]
        if self.checkpoints is not None:
            return self.checkpoints.load(self.roots)
        return None

    async def close(self) -> None:
        """Stop reading; save the state reached if it is certain (stopped while waiting,
        nothing left unhandled), else the last checkpoint stays."""
        readers, self.readers = list(self.readers.values()), {}
        for reader in readers:
            await asyncio.to_thread(reader.stop)
        if not self._opened:
            return
        self._opened = False
        queue = self._queue.queue if self._queue is not None else None
        pending = any(t.pending is not None for t in self.translators.values())
        certain = self._idle_now and not pending and (queue is None or queue.empty())
        certain = certain and self._unreported is None
        self.known.settle(stat_path)
        state = dict(self.known.entries)
        if self._unreported is not None:  # stopped before the catch-up was emitted
            saved, covered = self._unreported
            state = merge_saved(state, saved, covered)
        if self.checkpoints is not None:
            await self.checkpoints.close(state if certain else None)
        self._previous = state, list(self.roots)

    # -- the loop ---------------------------------------------------------------------

    async def run(self, emit: Emit) -> None:
        assert self._queue is not None and self._scans is not None, "not open"
        queue = self._queue.queue
        loop = asyncio.get_running_loop()
        backlog, self._backlog = self._backlog, []
        await self._scans.report(backlog, emit)
        self._unreported = None
        while True:
            try:
                chunk: Chunk | None = queue.get_nowait()
            except asyncio.QueueEmpty:
                chunk = await self._wait(queue, loop.time())
            now = loop.time()
            for translator in self.translators.values():
                for event in translator.expired(now, datetime.now(UTC)):
                    await emit(event)
            if chunk is not None:
                await self._handle(chunk, emit)
            if self.lost and now >= self._reopen_at:
                await self._reopen(emit)
                self._reopen_at = loop.time() + REOPEN_INTERVAL

    async def _wait(self, queue: asyncio.Queue[Chunk], now: float) -> Chunk | None:
        """Nothing to read: save a checkpoint if due, then wait for a chunk or a timer."""
        if self.checkpoints is not None:
            self.checkpoints.tick(now, self.known.changed, lambda: self.known.take(stat_path))
        times = [t.next_deadline() for t in self.translators.values()]
        if self.checkpoints is not None:
            times.append(self.checkpoints.due(self.known.changed))
        if self.lost:
            times.append(self._reopen_at)
        deadline = min((t for t in times if t is not None), default=None)
        self._idle_now = True  # stays set if cancelled here: then nothing is left unhandled
        chunk: Chunk | None = None
        try:
            if deadline is None:
                chunk = await queue.get()
            else:
                chunk = await asyncio.wait_for(queue.get(), max(deadline - now, 0.0))
        except TimeoutError:
            pass
        self._idle_now = False
        return chunk

    async def _handle(self, chunk: Chunk, emit: Emit) -> None:
        root = chunk.root
        translator = self.translators.get(root)
        if translator is None or root in self.lost:
            return  # from a reader stopped since
        assert self._scans is not None
        seen = datetime.now(UTC)
        if chunk.outcome is Outcome.DATA:
            decoded = decode(chunk.data, extended=chunk.extended)
            now = asyncio.get_running_loop().time()
            for event in translator.translate(decoded.records, now, seen):
                await emit(event)
            for folder in translator.take_arrivals():
                found = await self._scans.arrival(folder, emit)
                translator.add_echoes(found, asyncio.get_running_loop().time())
            if decoded.error is not None:
                self.log.warning("damaged change buffer; rescanning what it held",
                                 path=root, error=decoded.error)  # fmt: skip
                await self._overflowed(root, emit, seen)
        elif chunk.outcome is Outcome.OVERFLOW:
            self.log.warning("Windows' change buffer overflowed; rescanning to report what "
                             "it dropped", path=root, buffer=self.options.buffer_size)  # fmt: skip
            await self._overflowed(root, emit, seen)
        else:
            self.log.warning("watching a folder failed; rescanning, and watching it again "
                             "once it is there", path=root, error=chunk.error)  # fmt: skip
            reader = self.readers.pop(root, None)
            if reader is not None:
                await asyncio.to_thread(reader.stop)
            self.lost.add(root)
            await self._rescan(root, emit)

    async def _overflowed(self, root: str, emit: Emit, seen: datetime) -> None:
        if EventKind.OVERFLOW in self.wanted:
            meta = self.translators[root].meta
            await emit(Event(EventKind.OVERFLOW, root, self.source, True, None, seen, meta))
        await self._rescan(root, emit)

    async def _rescan(self, root: str, emit: Emit) -> None:
        assert self._scans is not None
        self.translators[root].drop_pending()  # the rescan tells what became of it
        await self._scans.rescan(root, emit)

    async def _reopen(self, emit: Emit) -> None:
        """Watch again the folders that are back, and report what changed in them."""
        for root in sorted(self.lost):
            if not probe_dir(root):
                continue
            try:
                watching = await self._watch(root, at_start=False)
            except SourceError as exc:
                if self._unwatchable.get(root) != str(exc):  # say it once, not every second
                    self.log.warning("cannot watch the folder again yet", path=root, error=str(exc))
                    self._unwatchable[root] = str(exc)
                continue
            if watching:
                self.lost.discard(root)
                self._unwatchable.pop(root, None)
                self.log.info("watched folder is there; watching it again", path=root)
                await self._rescan(root, emit)


def _require_windows(label: str) -> None:
    if sys.platform != "win32":
        raise SourceError(
            f"{label}: the `windows` source needs Windows (it reads ReadDirectoryChangesW); "
            f"on {sys.platform} use the `inotify`, `fanotify`, `poll` or `watchdog` source"
        )


def _long_path_name(path: str) -> str | None:
    from pipeline.windows import win32

    return win32.long_path_name(path)


def _drive_type(root: str) -> int:
    from pipeline.windows import win32

    return win32.drive_type(root)


@hookimpl
def pipeline_components() -> list[type[WindowsSource]]:
    return [WindowsSource]
