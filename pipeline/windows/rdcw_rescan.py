"""Rescans of the `windows` source's trees, reported as events against what it knows.

Whenever the records cannot be trusted to tell everything (an overflow, a damaged
buffer, a folder handle that failed, a restart) the tree is read again and compared with
the `KnownTree`, exactly as the inotify source does: `treeindex.reconcile` resolves the
marks, `snapshot.diff` orders the changes, `report.change_events` makes the events
(`meta.scan: true`). A folder that appears is scanned too, for what came in with it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Collection, Mapping, Sequence
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Any

from pipeline.components import Emit
from pipeline.event import EventKind
from pipeline.sources.report import change_events
from pipeline.sources.snapshot import Change, Entry, Snapshot, below, diff
from pipeline.sources.treeindex import reconcile
from pipeline.windows.rdcw_known import KnownTree
from pipeline.windows.rdcw_scan import scan_trees

NO_META: Mapping[str, Any] = MappingProxyType({})


class TreeScans:
    """Scans the watched trees in a worker thread and reports what changed."""

    def __init__(
        self,
        known: KnownTree,
        *,
        source: str,
        wanted: Collection[EventKind],
        recursive: bool,
        exclude: Sequence[str],
        metas: Mapping[str, Mapping[str, Any]],
    ) -> None:
        self.known = known
        self.source = source
        self.wanted = frozenset(wanted) - {EventKind.OVERFLOW}
        self.recursive = recursive
        self.exclude = list(exclude)
        """Paths never reported nor kept: the state_dir, when it is inside a watched tree."""
        self.metas = sorted(metas.items(), key=lambda item: len(item[0]), reverse=True)

    async def scan(self, roots: Sequence[str], previous: Snapshot | None = None) -> Snapshot:
        snapshot = await asyncio.to_thread(
            scan_trees, roots, recursive=self.recursive, previous=previous, skip=self.exclude
        )
        for excluded in self.exclude:
            inside = below(excluded)
            for path in [p for p in snapshot.entries if p == excluded or p.startswith(inside)]:
                del snapshot.entries[path]
        return snapshot

    async def rescan(self, root: str, emit: Emit) -> None:
        """Read `root`'s tree again; report what changed since the state known of it."""
        before = self.known.within(root)
        fresh = (await self.scan([root], Snapshot(dict(before)))).entries
        changes = diff(reconcile(dict(before), fresh), fresh)
        self.known.replace_within(root, fresh)
        await self.report(changes, emit)

    async def arrival(self, folder: str, emit: Emit) -> dict[str, Entry]:
        """Report what a folder that just appeared holds and no record told yet (it was
        moved in from outside: Windows says nothing of its contents). Returns those paths."""
        if not self.recursive:
            return {}
        fresh = (await self.scan([folder])).entries
        new = {path: entry for path, entry in fresh.items() if path not in self.known.entries}
        if new:
            self.known.entries.update(new)
            self.known.changed = True
            await self.report(diff({}, new), emit)
        return new

    async def report(self, changes: list[Change], emit: Emit) -> None:
        if not changes:
            return
        for event in change_events(
            changes,
            wanted=self.wanted,
            source=self.source,
            meta_for=self.meta_for,
            seen=datetime.now(UTC),
        ):
            await emit(event)

    def meta_for(self, path: str) -> Mapping[str, Any]:
        """The shared meta of the (innermost) watched folder `path` is in."""
        for root, meta in self.metas:
            if path == root or path.startswith(below(root)):
                return meta
        return NO_META
