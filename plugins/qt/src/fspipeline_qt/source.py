"""The `qt` source: QFileSystemWatcher says which folder or file changed, a listing says how."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
from collections.abc import Callable, Collection
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from pipeline import ComponentContext, Emit, Source
from pipeline.display import printable
from pipeline.sources.catchup import Checkpoints, changes_since, merge_saved
from pipeline.sources.common import prepare_roots
from pipeline.sources.snapscan import scan
from pipeline.sources.snapshot import Change, Entry, below, diff

from fspipeline_qt.events import EventMaker
from fspipeline_qt.options import QT_KINDS, QtOptions
from fspipeline_qt.refresh import Batch, collect
from fspipeline_qt.tree import Tree, same_file

if TYPE_CHECKING:
    from fspipeline_qt.runtime import QtRuntime
    from fspipeline_qt.watcher import QtWatcher
    from fspipeline_qt.watching import Watches

State = tuple[dict[str, Entry], list[str]]
"""Saved entries, and the watched paths they cover."""


class QtSource(Source[QtOptions]):
    """Watches folders with Qt's QFileSystemWatcher; one watcher API on Linux, macOS, Windows.

    Qt only says which watched folder or file changed; the source then reads that
    folder (or stats that file) and compares it with what it knew: `created`,
    `modified` (size or mtime), `attrib`, `deleted`, and `moved` (a path gone and
    another with the same inode, also from one folder to another). Signals are gathered
    for `coalesce` first, so a burst is read once. Events for files carry `meta.size`,
    `meta.mtime` and `meta.inode`; what exists at start is not reported. New folders
    are watched as they appear, and what was written into them before is reported.

    Every folder is watched, and with `watch_files` every file (Qt's folder watch does
    not see content changes); on Linux each is an inotify watch. Paths Qt cannot watch
    (no watch left, a name that is not UTF-8) are logged once and read every
    `poll_interval` instead; a watched path that disappears is reported deleted and
    looked for at the same pace. Qt does not report a kernel queue overflow, so every
    folder is also read every `rescan_interval`. With a `state_dir`, what changed while
    the process was down is reported at start (`meta.scan: true`), before live events.

    Qt runs in one thread per process, shared by every `qt` source, with a
    QCoreApplication (`QT_QPA_PLATFORM=offscreen` unless set: no display is needed).
    """

    type_name = "qt"
    Options = QtOptions

    def __init__(self, options: QtOptions, context: ComponentContext) -> None:
        super().__init__(options, context)
        wanted = frozenset(options.events) if options.events is not None else QT_KINDS
        state = [str(context.state_dir)] if context.state_dir is not None else []
        self.events = EventMaker(f"{context.pipeline}/{self.type_name}", [], wanted, state)
        self.roots: list[str] = []
        self.tree = Tree()
        self.lost: set[str] = set()
        """Watched paths that do not exist (now); looked for every poll_interval."""
        self.runtime: QtRuntime | None = None
        self.watcher: QtWatcher | None = None
        self.watches: Watches | None = None
        self.checkpoints: Checkpoints | None = None
        if context.state_dir is not None:
            scope = {"source": self.type_name, "recursive": options.recursive}
            self.checkpoints = Checkpoints(
                context.state_dir, scope, options.checkpoint_interval, self.log
            )
        self._folders: dict[str, bool] = {}
        """Folders to read, to whether Qt named them (their watch is then renewed)."""
        self._files: dict[str, bool] = {}
        self._wake = asyncio.Event()
        self._backlog: list[Change] = []
        self._unreported: State | None = None
        self._idle = False
        self._changed = False
        self._problems: set[str] = set()
        self._next_poll = 0.0
        self._next_rescan = 0.0

    # -- start and stop --------------------------------------------------------------

    async def open(self) -> None:
        # Qt is imported here, not with the plugin: every `pipeline` command loads the
        # plugin, and PySide6 takes about 0.2 s to import.
        from fspipeline_qt.runtime import QtRuntime
        from fspipeline_qt.watcher import QtWatcher
        from fspipeline_qt.watching import Watches

        options = self.options
        roots = prepare_roots(options)
        if options.recursive:  # a root inside another is watched with it
            roots = [r for r in roots if not any(r.startswith(below(o)) for o in roots)]
        self.roots = roots
        self.events = EventMaker(self.events.source, roots, self.events.wanted, self._hidden())
        previous = self._previous_state(roots)
        self.tree, self._folders, self._files = Tree(), {}, {}
        self.runtime = await asyncio.to_thread(QtRuntime.acquire)
        self.watcher = await QtWatcher.create(self.runtime, self._signalled)
        self.watches = Watches(
            self.watcher,
            roots=roots,
            recursive=options.recursive,
            watch_files=options.watch_files,
            poll_interval=options.poll_interval,
            log=self.log,
        )
        present = [root for root in roots if os.path.lexists(root)]
        self.lost = set(roots) - set(present)
        first = await asyncio.to_thread(
            functools.partial(scan, present, recursive=options.recursive)
        )
        self.tree.replace((), first.entries)
        self._note_problems(first.problems)
        watched = await self.watches.add(first.entries)
        self._verify(watched)  # what changed between the scan and the watches
        if previous is not None:
            saved, covered = previous
            self._backlog = changes_since(saved, self.tree.entries, covered)
            self._unreported = previous if self._backlog else None
        elif self.checkpoints is not None:
            self.checkpoints.first_start(dict(self.tree.entries))
        loop = asyncio.get_running_loop()
        self._next_poll = loop.time() + options.poll_interval
        self._next_rescan = loop.time() + (options.rescan_interval or 0)
        self.log.info(
            "watching",
            paths=roots,
            entries=len(self.tree),
            watched=len(watched),
            unwatched=len(self.watches.unwatched) or None,
            waiting_for=sorted(self.lost) or None,
            catching_up=len(self._backlog) if previous is not None else None,
        )

    def _previous_state(self, roots: list[str]) -> State | None:
        """What was reported before this start: by this object's last run (the engine
        restarts a failed source in place), else as saved under the state_dir."""
        if self.tree.entries:
            return dict(self.tree.entries), roots
        if self.checkpoints is not None:
            return self.checkpoints.load(roots)
        return None

    def _hidden(self) -> list[str]:
        state_dir = self.context.state_dir
        return [os.path.abspath(state_dir)] if state_dir is not None else []

    async def close(self) -> None:
        """Stop watching, save the state reached (if certain: stopped while waiting, the
        catch-up emitted), and release Qt (the last source stops its thread)."""
        if self.checkpoints is not None and self.watcher is not None:
            certain = self._idle and self._unreported is None
            state = dict(self.tree.entries)
            if self._unreported is not None:
                saved, covered = self._unreported
                state = merge_saved(state, saved, covered)
            await self.checkpoints.close(state if certain else None)
        watcher, self.watcher, self.watches = self.watcher, None, None
        if watcher is not None:
            await watcher.close()
        runtime, self.runtime = self.runtime, None
        if runtime is not None:
            await asyncio.to_thread(runtime.release)

    # -- the loop ---------------------------------------------------------------------

    def _signalled(self, path: str, folder: bool) -> None:
        """Qt named `path` (on the loop, from the Qt thread)."""
        (self._folders if folder else self._files)[path] = True
        self._wake.set()

    def _verify(self, paths: list[str]) -> None:
        """Read `paths` once more: they were watched after they were last read."""
        for path in paths:
            pending = self._folders if self.tree.is_folder(path) else self._files
            pending.setdefault(path, False)

    async def run(self, emit: Emit) -> None:
        backlog, self._backlog = self._backlog, []
        for event in self.events.caught_up(backlog, datetime.now(UTC)):
            await emit(event)
        self._unreported = None
        self._changed = bool(backlog) or self.checkpoints is not None
        while True:
            await self._refresh(emit)
            self._checkpoint()
            await self._wait()

    async def _wait(self) -> None:
        """Wait for Qt, or for the next poll, rescan or checkpoint; then queue the reads."""
        loop = asyncio.get_running_loop()
        options = self.options
        deadlines = []
        if self.watches is not None and (self.watches.unwatched or self.lost):
            deadlines.append(self._next_poll)
        if options.rescan_interval is not None:
            deadlines.append(self._next_rescan)
        due = self.checkpoints.due(self._changed) if self.checkpoints is not None else None
        if due is not None:
            deadlines.append(due)
        timeout = max(0.0, min(deadlines) - loop.time()) if deadlines else None
        self._idle = True
        try:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout)
        finally:
            self._idle = False
        signalled = self._wake.is_set()
        self._wake.clear()
        now = loop.time()
        if now >= self._next_poll:
            self._next_poll = now + options.poll_interval
            self._poll()
        if options.rescan_interval is not None and now >= self._next_rescan:
            self._next_rescan = now + options.rescan_interval
            self._rescan()
        if signalled and options.coalesce:
            await asyncio.sleep(options.coalesce)

    def _poll(self) -> None:
        """Queue the paths Qt does not watch, and the missing roots, to be read."""
        assert self.watches is not None
        for path, folder in self.watches.unwatched.items():
            (self._folders if folder else self._files).setdefault(path, False)
        for root in self.lost:
            self._folders.setdefault(root, False)

    def _rescan(self) -> None:
        """Queue every folder (and the roots) to be read; ask Qt again for what it refused."""
        assert self.watches is not None
        for folder in self.tree.folders():
            self._folders.setdefault(folder, False)
        for root in self.roots:
            if root in self.tree and not self.tree.is_folder(root):
                self._files.setdefault(root, False)
        for path, is_folder in self.watches.unwatched.items():
            (self._folders if is_folder else self._files)[path] = True

    def _checkpoint(self) -> None:
        if self.checkpoints is None:
            return
        take: Callable[[], dict[str, Entry]] = functools.partial(dict, self.tree.entries)
        if self.checkpoints.tick(asyncio.get_running_loop().time(), self._changed, take):
            self._changed = False

    # -- reading what Qt named ------------------------------------------------------------

    async def _refresh(self, emit: Emit) -> None:
        """Read every queued folder and file, report what changed, and keep the watches
        in step; repeat until nothing is queued (new watches are read once more)."""
        watches = self.watches
        assert watches is not None
        while self._folders or self._files:
            folders, self._folders = self._folders, {}
            files, self._files = self._files, {}
            named = {
                path: self.tree.entries[path]
                for path, by_qt in (*folders.items(), *files.items())
                if by_qt and path in self.tree
            }
            if named:  # Qt drops a watch when its path is deleted or renamed: renew it
                await watches.add(named, again=True)
            batch = await asyncio.to_thread(
                functools.partial(
                    collect,
                    self.tree,
                    folders,
                    files,
                    roots=self.roots,
                    lost=self.lost,
                    recursive=self.options.recursive,
                )
            )
            changes = diff(batch.old, batch.new)
            self.tree.replace(batch.old, batch.new)
            self._follow_roots(batch)
            self._note_problems(batch.problems, batch.old.keys())
            for folder in batch.recheck:
                if self.tree.is_folder(folder):
                    self._folders.setdefault(folder, False)
            if changes:
                self._changed = True
                for event in self.events.live(changes, datetime.now(UTC)):
                    await emit(event)
            await self._rewatch(batch)

    async def _rewatch(self, batch: Batch) -> None:
        """Drop the watches of paths gone (or now another file); watch what arrived."""
        assert self.watches is not None
        old, new = batch.old, batch.new
        gone = [p for p, e in old.items() if p not in new or not same_file(e, new[p])]
        arrived = {p: e for p, e in new.items() if p not in old or not same_file(old[p], e)}
        if gone:
            await self.watches.drop(gone)
        if arrived:
            self._verify(await self.watches.add(arrived))

    def _follow_roots(self, batch: Batch) -> None:
        for root in batch.lost:
            if root not in self.lost:
                self.lost.add(root)
                self.log.warning("watched path is gone; looking for it until it is back", path=root)
        for root in batch.found:
            if root in self.lost:
                self.lost.discard(root)
                self.log.info("watched path is back", path=root)

    def _note_problems(self, problems: dict[str, str], read: Collection[str] = ()) -> None:
        """Warn once per folder that cannot be read; say when one of `read` can be again."""
        for folder in sorted(problems.keys() - self._problems):
            self.log.warning(
                "folder not readable; keeping what was last seen in it",
                folder=printable(folder),
                error=problems[folder],
            )
        for folder in sorted(self._problems - problems.keys()):
            if folder in read:
                self.log.info("folder readable again", folder=printable(folder))
                self._problems.discard(folder)
        self._problems.update(problems)
