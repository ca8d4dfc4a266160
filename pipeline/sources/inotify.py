"""The `inotify` source: Linux inotify(7), recursive, lossless across overflows and restarts."""

from __future__ import annotations

import asyncio
import errno
import os
import time
from typing import Literal

from pydantic import field_validator

from pipeline.components import ComponentContext, Emit, Source
from pipeline.errors import SourceError
from pipeline.event import ALL_KINDS, EventKind
from pipeline.hookspecs import hookimpl
from pipeline.linux import inotify as api
from pipeline.linux.mounts import MountWatch
from pipeline.options import Duration
from pipeline.sources.catchup import Checkpoints, changes_since, merge_saved
from pipeline.sources.common import WatchOptions, prepare_roots
from pipeline.sources.inotify_events import EventRouter
from pipeline.sources.inotify_reader import EventReader
from pipeline.sources.inotify_recovery import Recovery
from pipeline.sources.inotify_trees import InotifyTrees
from pipeline.sources.inotify_watches import ENCODING, ERRORS, Watches
from pipeline.sources.snapshot import Change, Entry
from pipeline.sources.treeindex import TreeIndex, subtree

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
# What keeps the index right, asked for whatever kinds are reported.
BASE_MASK = (
    api.IN_CREATE | api.IN_DELETE | api.IN_MOVED_FROM | api.IN_MOVED_TO
    | api.IN_DELETE_SELF | api.IN_MOVE_SELF | api.IN_EXCL_UNLINK
)  # fmt: skip
LIST_BUDGET = 32
"""Folders read per turn of the loop while the leaves skipped at start-up are read."""
BLIND_RECHECK = 1.0
"""Seconds between looks for a missing path when no folder above it can be watched."""

State = tuple[dict[str, Entry], list[str]]
"""What is known of the watched paths (every entry), and which paths that covers."""


class InotifyOptions(WatchOptions):
    move_wait: Duration = 0.05
    """How long a rename's first half waits for its second before it counts as `deleted`."""
    follow_symlinks: bool = False
    """Follow symlinks below the watched paths, to files and folders; a folder reached
    twice (a loop) is watched once. The watched paths themselves are always followed."""
    on_watch_limit: Literal["fail", "poll"] = "fail"
    """When fs.inotify.max_user_watches runs out: `fail` with an error that says how to
    raise it, or `poll` the folders left unwatched, every `poll_interval`."""
    poll_interval: Duration = 2.0
    """With `on_watch_limit: poll`: the pause between two scans of the unwatched folders."""

    @field_validator("poll_interval")
    @classmethod
    def _sensible_poll(cls, value: float) -> float:
        if value < 0.01:
            raise ValueError("poll_interval must be at least 10ms")
        return value


def _stat_following(path: str) -> os.stat_result:
    try:
        return os.stat(path)
    except OSError:
        return os.lstat(path)


class InotifySource(Source[InotifyOptions]):
    """Watches folders with Linux inotify: every kind of event, recursively, as it happens.

    New folders are watched as they appear, and what was written into them before the
    watch existed is reported (`created`, and `closed_write` for files, with
    `meta.scan: true`), each change once. The two halves of a rename become one `moved`
    event; a rename out of every watched folder is reported as `deleted`, one from
    outside as `moved` with `src_path: null`. Opening and closing a folder (listing it)
    is not reported.

    Nothing is lost. A slow pipeline does not make the kernel queue overflow: events
    wait in memory meanwhile (up to 64 MiB). If it overflows anyway, one `overflow`
    event per watched path is emitted, the trees are rescanned, and what changed since
    the last known state is reported with `meta.scan: true` (`created` and `modified`,
    each with a `closed_write` for files; `deleted`; `moved`; `attrib`). A file a scan
    finds still open for writing gets its `closed_write` once it is closed (a read lease
    tells; where none can be taken, for another user's file without CAP_LEASE, it may
    come early). A watched path that is deleted or unmounted is reported and waited
    for; once it is back, what it holds is reported. With a `state_dir`, what changed
    while the process was down is reported at start, before live events (see
    `checkpoint_interval`).

    The hot path does no I/O beyond reading events. Start-up reads every folder once
    (leaf folders just after start-up): about 0.5 s for 50,000 folders on tmpfs; with a
    `state_dir` it stats every entry too. Symlinks are not followed unless
    `follow_symlinks`; when the watches run out, `on_watch_limit` decides.
    """

    type_name = "inotify"
    Options = InotifyOptions

    def __init__(self, options: InotifyOptions, context: ComponentContext) -> None:
        super().__init__(options, context)
        self.wanted = frozenset(options.events) if options.events is not None else ALL_KINDS
        mask = BASE_MASK
        for kind in self.wanted:
            mask |= KIND_MASKS[kind]
        self.mask = mask
        self.source = f"{context.pipeline}/{self.type_name}"
        self.fd = -1
        self.trees: InotifyTrees | None = None
        self.router: EventRouter | None = None
        self.reader: EventReader | None = None
        self.mounts: MountWatch | None = None
        """Wakes the source when something is mounted over (or off) a watched folder."""
        self.checkpoints: Checkpoints | None = None
        if context.state_dir is not None:
            scope = {
                "source": self.type_name,
                "recursive": options.recursive,
                "follow_symlinks": options.follow_symlinks,
            }
            self.checkpoints = Checkpoints(
                context.state_dir, scope, options.checkpoint_interval, self.log
            )
        self._backlog: list[Change] = []
        self._unreported: State | None = None
        """The state before the catch-up, until the catch-up has been emitted."""
        self._previous: State | None = None
        self._opened = False
        self._idle_now = False
        """True while waiting for events: every event read so far has been emitted."""
        self._stat = _stat_following if options.follow_symlinks else os.lstat

    @property
    def index(self) -> TreeIndex:
        assert self.trees is not None, "not open"
        return self.trees.index

    @property
    def wds(self) -> dict[str, int]:
        """Watched folders, to their watch descriptors (for inspection)."""
        if self.trees is None:
            return {}
        return {folder.path: wd for wd, folder in self.trees.watches.by_wd.items()}

    # -- start and stop --------------------------------------------------------------

    async def open(self) -> None:
        roots = prepare_roots(self.options)
        if self.options.recursive:  # a root inside another is watched with it
            roots = [r for r in roots if not any(r.startswith(o.rstrip("/") + "/") for o in roots)]
        try:
            self.fd = api.init()
        except OSError as exc:
            if exc.errno == errno.EMFILE:
                raise SourceError(
                    "too many inotify instances for this user (fs.inotify.max_user_instances); "
                    "raise it with sysctl, or use the `poll` source"
                ) from exc
            raise SourceError(f"inotify is not available: {exc.strerror}") from exc
        options = self.options
        watches = Watches(
            self.fd,
            self.mask,
            TreeIndex(),
            self.log,
            follow_symlinks=options.follow_symlinks,
            on_limit=options.on_watch_limit,
            # Saving a checkpoint inside a watched tree must not make the next one due.
            exclude=frozenset([str(self.context.state_dir)] if self.context.state_dir else []),
        )
        trees = self.trees = InotifyTrees(
            watches,
            roots=roots,
            wanted=self.wanted,
            source=self.source,
            recursive=options.recursive,
            move_wait=options.move_wait,
            poll_interval=options.poll_interval,
            track=self.checkpoints is not None,
            log=self.log,
        )
        self.router = EventRouter(trees, Recovery(trees))
        self.reader = EventReader(self.fd)
        try:
            self.mounts = MountWatch()
        except OSError:  # no /proc: mounts over watched folders go unnoticed
            self.mounts = None
        self._opened = False
        previous = self._previous_state(roots)
        stat = previous is not None or self.checkpoints is not None
        mark = time.time_ns()
        progress = self.context.progress
        watches.on_progress = lambda walked: progress("initial walk", walked, None)
        for root in roots:
            if trees.establish(root, mark=mark, stat=stat) is None:
                trees.wait_for(root, None)
        progress("initial walk", watches.walked, watches.walked)
        watches.on_progress = lambda walked: progress("rescan", walked, None)
        if previous is not None:
            saved, covered = previous
            self._backlog = changes_since(saved, trees.flat(), covered)
            self._unreported = previous if self._backlog else None
        elif self.checkpoints is not None:
            self.checkpoints.first_start(trees.flat())
        trees.changed = self.checkpoints is not None  # the saved state is older than this
        self._opened = True
        self.log.info(
            "watching",
            paths=list(trees.index.roots),
            folders=len(watches.by_wd),
            waiting_for=list(trees.lost) or None,
            catching_up=len(self._backlog) if previous is not None else None,
        )

    def _previous_state(self, roots: list[str]) -> State | None:
        """What was known before this start: from this object's last run (the engine
        restarts a failed source in place), else from the saved snapshot."""
        previous, self._previous = self._previous, None
        if previous is not None:
            entries, known = previous
            return entries, [r for r in roots if r in known]
        if self.checkpoints is not None:
            return self.checkpoints.load(roots)
        return None

    async def close(self) -> None:
        """Save the state reached, if it is certain: stopped while waiting for events (as
        at a shutdown), with the catch-up emitted. Otherwise (stopped mid-emit) the last
        checkpoint stays, and changes since are reported again at the next start."""
        trees = self.trees
        if self.fd >= 0 and trees is not None and self._opened:
            certain = self._idle_now and self._unreported is None
            self._account_unhandled(trees)
            state = trees.flat()
            if self._unreported is not None:  # stopped before the catch-up was emitted
                saved, covered = self._unreported
                state = merge_saved(state, saved, covered)
            if self.checkpoints is not None:
                await self.checkpoints.close(state if certain else None)
            self._previous = state, [*trees.index.roots, *trees.lost]
        if trees is not None:
            trees.waiter.close()
        if self.mounts is not None:
            self.mounts.close()
            self.mounts = None
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1
        self.trees = self.router = None
        self.reader = None

    def _account_unhandled(self, trees: InotifyTrees) -> None:
        """Mark as unknown the files whose events were read but not handled, or are still
        queued, so that the state kept now (and a catch-up from it) counts them changed.
        Stat first, read the queue after: whatever changes in between is in the queue."""
        if self.checkpoints is not None:
            trees.index.settle(self._stat)
        records = self.router.unhandled if self.router is not None else []
        if self.reader is not None:
            for data in self.reader.pending():
                records.extend(api.decode(data))
        by_wd = trees.watches.by_wd
        for wd, mask, _, name in records:
            if mask & api.IN_Q_OVERFLOW:
                for root in trees.index.roots.values():
                    for below in subtree(root):
                        below.files = dict.fromkeys(below.files, 0)
                return
            folder = by_wd.get(wd)
            if folder is not None and name:
                text = name.decode(ENCODING, ERRORS)
                if text in folder.files:
                    folder.files[text] = 0
            elif folder is not None and folder.single:
                folder.known = 0

    # -- the loop ---------------------------------------------------------------------

    async def run(self, emit: Emit) -> None:
        trees, router = self.trees, self.router
        assert trees is not None and router is not None, "not open"
        loop = asyncio.get_running_loop()
        if self._backlog:
            backlog, self._backlog = self._backlog, []
            self.context.progress("catch-up", 0, len(backlog))
            await trees.report(backlog, emit)
            self.context.progress("catch-up", len(backlog), len(backlog))
        self._unreported = None
        if trees.waiter:
            await router.recovery.check_waiter(emit)
        reader, watches = self.reader, trees.watches
        assert reader is not None
        reader.start()
        try:
            while True:
                data = reader.next()
                if data:
                    await router.handle(api.decode_all(data), emit, loop.time())
                    continue
                trees.echoes.clear()  # every event queued before the last scan is handled
                if watches.unlisted:
                    watches.list_unlisted(LIST_BUDGET)
                    await asyncio.sleep(0)
                    continue
                await self._idle(emit)
        finally:
            reader.stop()

    async def _idle(self, emit: Emit) -> None:
        """Nothing to read: save a checkpoint if due, then wait for events or a timer."""
        trees, router, reader = self.trees, self.router, self.reader
        assert trees is not None and router is not None and reader is not None
        loop = asyncio.get_running_loop()
        if self.checkpoints is not None:
            self._checkpoint(loop.time())
        mounts = self.mounts.fd if self.mounts is not None else -1
        self._idle_now = True  # stays set if cancelled here: then nothing is left unhandled
        await reader.wait(self._deadline(trees, loop.time()), (trees.waiter.fd, mounts))
        self._idle_now = False
        if self.mounts is not None and (points := self.mounts.changes()):
            await router.recovery.mounts_changed(points, emit)
        now = loop.time()
        for origin in trees.moves.expired(now):
            await router.moved_out(origin, emit)
        if trees.waiter:
            await router.recovery.check_waiter(emit)
        if trees.polled and now >= trees.poll_at:
            await trees.report(await trees.polled.poll(), emit, queued=False)
            trees.poll_at = loop.time() + trees.polled.interval

    def _deadline(self, trees: InotifyTrees, now: float) -> float | None:
        times = [trees.moves.next_deadline()]
        if self.checkpoints is not None:
            times.append(self.checkpoints.due(trees.changed))
        if trees.polled:
            times.append(trees.poll_at)
        if trees.waiter.blind:
            times.append(now + BLIND_RECHECK)
        return min((t for t in times if t is not None), default=None)

    def _checkpoint(self, now: float) -> None:
        assert self.checkpoints is not None and self.trees is not None
        trees = self.trees

        def take() -> dict[str, Entry]:
            trees.index.settle(self._stat)
            trees.changed = False
            return trees.flat()

        self.checkpoints.tick(now, trees.changed, take)


@hookimpl
def pipeline_components() -> list[type[InotifySource]]:
    return [InotifySource]
