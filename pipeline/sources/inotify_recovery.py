"""How an inotify source recovers what the kernel could not tell it: overflows, unmounts,
watched paths that go away and come back.

Each recovery rescans the tree concerned (watching what is new in it first, so nothing
made meanwhile is missed), diffs it against the index, reports the difference as scan
events, and swaps the fresh tree into the index. The kernel events still queued for
the same changes are dropped (`echoes`).
"""

from __future__ import annotations

import os
import stat as statmod
import time
from datetime import datetime

from pipeline.components import Emit
from pipeline.event import Event, EventKind
from pipeline.sources.inotify_trees import InotifyTrees
from pipeline.sources.snapshot import diff, entry_of
from pipeline.sources.treeindex import Folder, reconcile, subtree


class Recovery:
    """Rescans and restores the trees of one inotify source."""

    def __init__(self, trees: InotifyTrees) -> None:
        self.trees = trees
        self.stat = os.stat if trees.follow else os.lstat

    async def overflow(self, emit: Emit, seen: datetime) -> None:
        """The kernel dropped events: one `overflow` per watched path, then rescan them all."""
        trees = self.trees
        trees.log.warning(
            "inotify queue overflowed; rescanning to report what the kernel dropped",
            paths=list(trees.index.roots),
        )
        if EventKind.OVERFLOW in trees.wanted:
            for path, root in trees.index.roots.items():
                await emit(
                    Event(
                        EventKind.OVERFLOW,
                        path,
                        trees.source,
                        not root.single,
                        None,
                        seen,
                        root.meta,
                    )
                )
        trees.moves.drain()  # what those renames did, the rescan tells
        for root in list(trees.index.roots.values()):
            await self.rescan(root, emit)

    async def rescan(self, old: Folder, emit: Emit) -> None:
        """Read `old`'s tree again and report what changed in it since the index knew it."""
        trees = self.trees
        index, watches = trees.index, trees.watches
        before = index.flatten([old])
        unlisted = index.unlisted([old])
        mark = time.time_ns()
        parent = old.parent
        fresh: Folder | None
        if parent is None:
            del index.roots[old.path]
            fresh = trees.establish(old.path, mark=mark, stat=True)
        else:
            try:
                st = self.stat(old.path)
            except OSError:
                st = None
            if st is None or not statmod.S_ISDIR(st.st_mode):
                fresh = None
                index.detach(old)
            else:
                fresh = index.add_folder(parent, old.name, entry_of(st))
                if watches.watch(fresh):
                    watches.walk(fresh, mark=mark, stat=True)
                trees.adopt_limited(None)
        # What the fresh walk did not watch again is gone from the tree.
        watches.forget([f for f in subtree(old) if f.wd >= 0 and watches.by_wd.get(f.wd) is f])
        index.dirty.difference_update(subtree(old))
        after = index.flatten([fresh]) if fresh is not None else {}
        await trees.report(diff(reconcile(before, after, unlisted), after), emit)
        if fresh is None and parent is None:
            trees.wait_for(old.path, None)

    async def mounts_changed(self, points: set[str], emit: Emit) -> None:
        """Something was mounted over (or unmounted from) these paths: a watched folder
        there, or the root below one, now shows other content. Its watch sees the folder
        underneath, so watch it again and report what the change showed or hid."""
        trees = self.trees
        touched: list[Folder] = []
        for point in points:
            base = point.rstrip("/") or "/"
            for root in list(trees.index.roots.values()):
                if root.path == base or root.path.startswith(base.rstrip("/") + "/"):
                    touched.append(root)
                elif base.startswith(root.prefix):
                    folder = _find(root, base[len(root.prefix) :])
                    if folder is not None:
                        touched.append(folder)
        for folder in dict.fromkeys(touched):
            trees.log.warning(
                "a file system was mounted on or unmounted from a watched folder; "
                "watching it again and reporting what changed",
                folder=folder.path,
            )
            await self.rescan(folder, emit)

    async def root_lost(self, root: Folder, emit: Emit, seen: datetime, *, deleted: bool) -> None:
        """A watched path went away (`deleted`: deleted or moved away; else unmounted, or
        its watch ended): report it, and wait for it to come back."""
        trees = self.trees
        if trees.index.roots.get(root.path) is not root:
            return
        del trees.index.roots[root.path]
        trees.watches.forget(trees.index.detach(root))
        if trees.polled:
            trees.polled.drop(root.path)
        if deleted and EventKind.DELETED in trees.wanted:
            await emit(
                Event(
                    EventKind.DELETED,
                    root.path,
                    trees.source,
                    not root.single,
                    None,
                    seen,
                    root.meta,
                )
            )
        trees.wait_for(root.path, None if deleted else root)
        await self.check_waiter(emit)

    async def check_waiter(self, emit: Emit) -> None:
        """Restore the watched paths that are back."""
        for path in self.trees.waiter.check():
            await self.restore(path, emit)

    async def restore(self, path: str, emit: Emit) -> None:
        """A watched path is back: watch it and report what it holds (what changed in it)."""
        trees = self.trees
        known = trees.lost.pop(path, None)
        fresh = trees.establish(path, mark=time.time_ns(), stat=True)
        if fresh is None:
            trees.wait_for(path, known)
            return
        trees.log.info("watched path is there; watching it", path=path)
        index = trees.index
        before = index.flatten([known]) if known is not None else {}
        unlisted = index.unlisted([known]) if known is not None else {}
        after = index.flatten([fresh])
        await trees.report(diff(reconcile(before, after, unlisted), after), emit)


def _find(root: Folder, relative: str) -> Folder | None:
    """The indexed folder at `relative` below `root`, if the index has it."""
    folder: Folder | None = root
    for name in relative.split("/"):
        if not name:
            continue
        folder = folder.folders.get(name) if folder is not None else None
    return folder
