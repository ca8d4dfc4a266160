"""Catch-up across restarts: a source's snapshot saved under its state_dir, and the diff
that tells what changed while the process was down.

A source uses it in three steps (the `inotify` and `poll` sources are examples):

1. at start, `load(roots)` the saved entries, scan, and report `changes_since(saved,
   scanned, roots)` before any live event (`pipeline.sources.report` makes the events);
   when nothing was loaded, `first_start(scanned)` saves the scan as the first state;
2. at points where everything it has read so far has been emitted, call `tick(now,
   dirty, take)`: `take()` returns the current entries, and is called at most once per
   `interval`; `due(dirty)` says when to call `tick` next (None: not needed);
3. when it stops, `await close(entries)` saves the state reached, or `close(None)` when
   that is not certain (stopped in the middle of emitting): the last snapshot taken is
   saved then, and the changes since are reported again at the next start.

How it stays correct after `kill -9`: the file on disk always trails the live state. A
snapshot taken at one `tick` is written at a later one, at least `interval` after it
was taken and only once the source got back to a safe point, so every change in the
file was emitted at least `interval` before it was written. After a kill, the restart
rescans and diffs against that file. It follows that:

- every change made while the process was down is reported once (the source drops the
  live events of changes the catch-up already reported);
- changes from up to about two `interval`s before the kill are reported again: delivery
  is at least once, never at most once;
- an event older than that which was still inside the pipeline at the kill (held by a
  stage, waiting in a sink's queue) is lost unless that queue is durable: keep
  `interval` above the time events spend in the pipeline (a debounce's quiet time);
- what two stat scans cannot tell apart is not caught up: a file created and deleted
  while down, or rewritten with the same inode, size and mtime.

A clean shutdown saves the state reached: the engine stops the sources first and then
delivers (or dead-letters) what they emitted before the process exits.

Writes are atomic (`snapfile.write_atomically`); a damaged or foreign file is logged
and ignored (no catch-up that time, never a flood of false `created`). Snapshots taken
with other options (`recursive`, ...) are ignored too.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pipeline.sources import snapfile
from pipeline.sources.snapshot import Change, Entry, below, diff
from pipeline.sources.treeindex import reconcile

if TYPE_CHECKING:
    from structlog.typing import FilteringBoundLogger

SNAPSHOT_FILE = "snapshot.bin"
FORMAT_VERSION = 1


def within(entries: Mapping[str, Entry], roots: Sequence[str]) -> dict[str, Entry]:
    """The entries of `entries` at or below one of `roots`."""
    prefixes = tuple(below(root) for root in roots)
    exact = set(roots)
    return {p: e for p, e in entries.items() if p in exact or p.startswith(prefixes)}


def merge_saved(
    current: Mapping[str, Entry], saved: Mapping[str, Entry], roots: Sequence[str]
) -> dict[str, Entry]:
    """`current`, with `saved` in place of what it holds within `roots`: the state to keep
    when the changes from `saved` to `current` there have not all been reported yet."""
    prefixes = tuple(below(root) for root in roots)
    exact = set(roots)
    merged = {p: e for p, e in current.items() if p not in exact and not p.startswith(prefixes)}
    merged.update(saved)
    return merged


def changes_since(
    saved: Mapping[str, Entry], current: Mapping[str, Entry], roots: Sequence[str]
) -> list[Change]:
    """What turned `saved` into `current` within `roots`, in an order a mirror can replay.

    Entries of `saved` known only by a mark (see `treeindex`) count as changed when the
    file's times are newer than the mark.
    """
    now = within(current, roots)
    return diff(reconcile(within(saved, roots), now), now)


class Checkpoints:
    """The saved snapshot of one source, in `folder` (its state_dir)."""

    def __init__(
        self,
        folder: Path,
        scope: Mapping[str, Any],
        interval: float,
        log: FilteringBoundLogger,
    ) -> None:
        self.path = folder / SNAPSHOT_FILE
        self.scope = {"version": FORMAT_VERSION, **scope}
        self.interval = interval
        self.log = log
        self._roots: list[str] = []
        self._pending: Mapping[str, Entry] | None = None
        self._pending_at = 0.0
        self._taken_at = -float("inf")
        self._writing: asyncio.Task[None] | None = None

    def load(self, roots: Sequence[str]) -> tuple[dict[str, Entry], list[str]] | None:
        """The saved entries, and those of `roots` they cover; None if there is no usable
        snapshot (first start, other options, a damaged file: the last two are logged)."""
        self._roots = list(roots)
        try:
            data = self.path.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            self.log.warning("cannot read the saved snapshot", path=str(self.path), error=str(exc))
            return None
        try:
            header, entries = snapfile.decode(data)
        except snapfile.SnapshotFileError as exc:
            self.log.warning(
                "saved snapshot is damaged; not catching up", path=str(self.path), error=str(exc)
            )
            return None
        if header.get("scope") != self.scope:
            self.log.info("saved snapshot was taken with other options; not catching up")
            return None
        saved_roots = header.get("roots")
        covered = [r for r in roots if isinstance(saved_roots, list) and r in saved_roots]
        if not covered:
            return None
        return within(entries, covered), covered

    def first_start(self, entries: Mapping[str, Entry]) -> None:
        """Nothing was loaded (a first start): save what exists now, in the background.
        None of it is reported, so it is safe to write at once, and a kill before the
        first checkpoint still leaves a state to catch up from. `entries` must not change
        afterwards."""
        self._writing = asyncio.create_task(self._write(entries))

    # -- while running -----------------------------------------------------------------

    def due(self, dirty: bool) -> float | None:
        """When `tick` should next be called (in the caller's `now` time), or None."""
        if self._pending is not None:
            return self._pending_at + self.interval
        if dirty:
            return self._taken_at + self.interval
        return None

    def tick(self, now: float, dirty: bool, take: Callable[[], Mapping[str, Entry]]) -> bool:
        """Write the pending snapshot if it is old enough; take a new one if `dirty` and
        the last was taken `interval` ago. Returns True when `take` was called."""
        if (
            self._pending is not None
            and now >= self._pending_at + self.interval
            and (self._writing is None or self._writing.done())
        ):
            entries, self._pending = self._pending, None
            self._writing = asyncio.create_task(self._write(entries))
        if dirty and self._pending is None and now >= self._taken_at + self.interval:
            self._pending = take()
            self._pending_at = self._taken_at = now
            return True
        return False

    async def _write(self, entries: Mapping[str, Entry]) -> None:
        try:
            await asyncio.to_thread(self._save, entries)
        except Exception as exc:
            self.log.error("cannot save the snapshot", path=str(self.path), error=str(exc))

    def _save(self, entries: Mapping[str, Entry]) -> None:
        header = {"scope": self.scope, "roots": self._roots, "saved": time.time()}
        snapfile.write_atomically(self.path, snapfile.encode(entries, header))

    async def close(self, entries: Mapping[str, Entry] | None) -> None:
        """Finish the write in progress; then save `entries`, the state reached (None:
        it is not certain; the snapshot taken last is saved, if it was not yet). At a
        shutdown, the engine delivers what was emitted before the process exits."""
        writing, self._writing = self._writing, None
        if writing is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await writing
        pending, self._pending = self._pending, None
        if entries is None:
            entries = pending
        if entries is not None:
            await self._write(entries)
