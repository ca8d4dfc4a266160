"""What the `fanotify` source knows of its trees: the index, what scans found that events
did not tell (the catch-up at start, the rescan after an overflow), and the checkpoints
saved under the state_dir so that a restart can catch up.

A scan made while the marks are in place can see a change whose event is still queued;
what a scan reports is recorded in `echoes`, and the source drops those queued events.
A file a scan finds new or changed that some process still has open for writing gets
no `closed_write` from the scan: its own close is on its way.
"""

from __future__ import annotations

import functools
import os
import stat as statmod
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from pipeline.components import Emit
from pipeline.event import EventKind
from pipeline.linux import fanotify as api
from pipeline.sources.catchup import Checkpoints, changes_since, merge_saved
from pipeline.sources.echoes import ScanEchoes
from pipeline.sources.fanotify_index import TreeIndex
from pipeline.sources.report import change_events
from pipeline.sources.snapscan import scan
from pipeline.sources.snapshot import Change, Entry, Snapshot, diff
from pipeline.sources.writers import open_for_writing

State = tuple[dict[str, Entry], list[str]]
"""Every entry known, and the configured paths that covers."""
PROBED = frozenset({EventKind.OPENED, EventKind.CLOSED_NOWRITE})
"""What a scan's look at a file (is it still open for writing?) causes."""
DRAIN_EVERY = 256
"""Changes looked at, or events emitted, between two drains of the kernel queue."""


def unreported(
    events: Iterable[api.FanEvent], target: Callable[[bytes, bytes], str | None]
) -> tuple[list[str], bool]:
    """The watched paths (`target` of a folder key and a name) that `events`, read but
    maybe not emitted, are about; and whether an overflow is among them. A rename needs
    no note: the index follows one only once it is emitted, so the next comparison sees
    it (or its two halves)."""
    paths: list[str] = []
    lost = False
    for event in events:
        if event.fd >= 0:
            os.close(event.fd)
        if event.mask & api.FAN_Q_OVERFLOW:
            lost = True
        elif event.dir is not None and not event.mask & api.FAN_RENAME:
            path = target(event.dir, event.name)
            if path is not None:
                paths.append(path)
    return paths, lost


class TreeState:
    """The index of one fanotify source, and everything that keeps it right across
    overflows and restarts."""

    def __init__(
        self,
        *,
        source: str,
        wanted: frozenset[EventKind],
        recursive: bool,
        checkpoints: Checkpoints | None,
        exclude: Collection[str] = (),
    ) -> None:
        self.source = source
        self.wanted = wanted
        self.recursive = recursive
        self.checkpoints = checkpoints
        self.exclude = exclude
        """Folders that are neither scanned nor indexed (the state_dir, when inside a path)."""
        self.index: TreeIndex | None = None
        self.echoes = ScanEchoes()
        self.changed = False
        """Whether the index changed since the last checkpoint was taken."""
        self.backlog: list[Change] = []
        """The catch-up: what changed while the source was stopped, to report first."""
        self.unreported: State | None = None
        """The state before a scan's changes (the catch-up, an overflow's), until they
        have all been reported: what a stop in between keeps."""
        self._previous: State | None = None
        self._settled: list[str] = []

    # -- scans -------------------------------------------------------------------------

    def scan(self, roots: Sequence[str]) -> Snapshot:
        """Stat every path under `roots` (blocking: run it in a thread)."""
        return scan(roots, recursive=self.recursive, skip=self.exclude)

    def adopt(self, snapshot: Snapshot) -> None:
        """Make a fresh scan the index; the saved state is older than it now."""
        self.index = TreeIndex.from_entries(snapshot.entries)
        self.changed = True

    def load(self, roots: Sequence[str]) -> State | None:
        """What was known before this start, as far as it covers `roots`: from this
        object's last run (the engine restarts a failed source in place), else from the
        snapshot saved under the state_dir; None if nothing is."""
        previous, self._previous = self._previous, None
        if previous is not None:
            entries, known = previous
            covered = [root for root in roots if root in known]
            return (entries, covered) if covered else None
        if self.checkpoints is not None:
            return self.checkpoints.load(roots)
        return None

    def catch_up(self, previous: State, snapshot: Snapshot) -> None:
        """Set the backlog: what turned `previous` into the fresh `snapshot`."""
        saved, covered = previous
        self.backlog = changes_since(saved, snapshot.entries, covered)
        self.unreported = previous if self.backlog else None

    def changes_after_overflow(
        self, before: Mapping[str, Entry] | None, snapshot: Snapshot, roots: Sequence[str]
    ) -> list[Change]:
        """What a rescan after an overflow found: the changes since the index `before`
        (None when no index was kept: everything found counts as new)."""
        if before is None:
            return diff({}, snapshot.entries)
        return changes_since(before, snapshot.entries, roots)

    # -- reporting what a scan found ---------------------------------------------------

    async def report(
        self,
        changes: Iterable[Change],
        emit: Emit,
        meta_for: Callable[[str], Mapping[str, Any]],
        drain: Callable[[], None],
    ) -> None:
        """Emit the events of changes a scan found, keeping their queued events from
        being reported again and giving no early `closed_write` to a file still open.
        `drain` is called every so often: it takes the kernel queue into memory."""
        changes = list(changes)
        if not changes:
            return
        self.changed = True
        busy = self.echoes.note_scan(
            changes,
            want_closed=EventKind.CLOSED_WRITE in self.wanted,
            still_open=self._still_open,
            every=(DRAIN_EVERY, drain),
        )
        events = change_events(
            changes,
            wanted=self.wanted,
            source=self.source,
            meta_for=meta_for,
            seen=datetime.now(UTC),
            still_open=busy,
        )
        for count, event in enumerate(events):
            await emit(event)
            if count % DRAIN_EVERY == DRAIN_EVERY - 1:
                drain()

    def unechoed(self, kinds: tuple[EventKind, ...], path: str) -> tuple[EventKind, ...]:
        """`kinds` (of a queued event about `path`) without those a scan reported."""
        echoes = self.echoes
        kept: list[EventKind] = []
        for kind in kinds:
            if kind is EventKind.CREATED:
                echoed = echoes.take_arrival(path)
            elif kind is EventKind.CLOSED_WRITE:
                echoed = echoes.take_content(path)
            elif kind is EventKind.DELETED:
                echoed = echoes.take_gone(path)
            elif kind in PROBED:
                echoed = echoes.take_probe(path)
            else:
                echoed = False
            if not echoed:
                kept.append(kind)
        return tuple(kept)

    def _still_open(self, path: str, entry: Entry) -> bool:
        if not statmod.S_ISREG(entry[0]):
            return False
        return open_for_writing(path, functools.partial(self.echoes.probed, path)) is True

    # -- checkpoints -------------------------------------------------------------------

    def due(self) -> float | None:
        """When the next checkpoint is due (loop time), or None."""
        return self.checkpoints.due(self.changed) if self.checkpoints is not None else None

    def checkpoint(self, now: float) -> None:
        """Call only where every event read so far has been emitted."""
        index, checkpoints = self.index, self.checkpoints
        if index is None or checkpoints is None:
            return

        def take() -> dict[str, Entry]:
            index.settle()
            self.changed = False
            return index.entries()

        checkpoints.tick(now, self.changed, take)

    def settle(self) -> None:
        """At close, before the events still queued are read: stat what only marks tell."""
        if self.index is not None and self.checkpoints is not None:
            self._settled = self.index.settle()

    async def close(self, roots: Sequence[str], unknown: Iterable[str], *, lost: bool) -> None:
        """Keep the state reached (for a restart in place) and save it.

        `unknown`: the paths of events read but maybe not emitted, or still queued; they
        count as changed. `lost`: an overflow is among them, so changes to the paths just
        settled may have gone unreported too: they count as changed as well.
        """
        index = self.index
        if index is None:
            return
        for path in self._settled if lost else ():
            index.unknown(path)
        for path in unknown:
            index.unknown(path)
        self._settled = []
        state = index.entries()
        if self.unreported is not None:  # stopped before a scan's changes were reported
            saved, covered = self.unreported
            state = merge_saved(state, saved, covered)
        self._previous = state, list(roots)
        if self.checkpoints is not None:
            await self.checkpoints.close(state)
        self.index = None
        self.echoes.clear()
