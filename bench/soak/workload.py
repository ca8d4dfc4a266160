"""The soak's file-system workload: a realistic mix of operations and the events each must yield.

Every operation is done with plain system calls in the harness process, and the events the
`inotify` source must report for it (with `events: [created, closed_write, moved,
deleted]`) are recorded as they are made, so the run can be reconciled event by event
count. Two rules keep that expectation exact:

- Names are never reused: every file ever made has a fresh name, so one path has one life
  (born once, changed, renamed away or deleted once), and the delayed `deleted` of a
  rename out of the tree can never be mistaken for another file's.
- No two consecutive expected events are identical. The kernel merges an event identical
  to the one still at the tail of its queue (two `closed_write` of one file in a row,
  when the watcher has not read the first yet), so the generator never appends to the
  file whose `closed_write` was the last event it caused.

Folders are made before the pipeline starts, except the empty `batch-N` folders of the
folder churn (made and removed empty): a file written into a folder whose watch does not
exist yet is reported by a scan or not at all, depending on timing.
"""

from __future__ import annotations

import dataclasses
import os
import random
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import IO

AREAS = ("incoming", "reports", "exports", "archive")
DAYS = ("2026-11-24", "2026-11-25", "2026-11-26")
SCRATCH = "scratch"
"""A top-level folder the filter excludes (`/scratch/`)."""
EXCLUDE_GLOBS = ("*.tmp", ".*", f"/{SCRATCH}/")
"""The filter stage's `exclude` rule; `is_excluded` is the same rule in plain code."""
EXTENSIONS = (".csv", ".json", ".parquet", ".txt")
OUTSIDE_KEEP = 500
"""Files moved out of the tree are removed once more than this many pile up."""
CHURN_DIRS = 4
"""Empty folders of the folder churn alive at once."""

CREATED, CLOSED_WRITE, MOVED, DELETED = "created", "closed_write", "moved", "deleted"
SOURCE_KINDS = (CREATED, CLOSED_WRITE, MOVED, DELETED)


def is_excluded(relative: str) -> bool:
    """Whether the filter rule `EXCLUDE_GLOBS` drops this path (relative to the tree)."""
    parts = relative.split("/")
    return (
        parts[0] == SCRATCH
        or relative.endswith(".tmp")
        or any(part.startswith(".") for part in parts)
    )


@dataclasses.dataclass
class Expected:
    """The events the source must report, counted by (kind, excluded by the filter rule)."""

    counts: Counter[tuple[str, bool]] = dataclasses.field(default_factory=Counter)
    total: int = 0
    excluded: int = 0
    paths: set[str] = dataclasses.field(default_factory=set)
    """Every path (and moved-from path) of an event the filter lets through."""
    excluded_sources: set[str] = dataclasses.field(default_factory=set)
    """Moved-from paths the filter rule excludes (`x.csv.tmp` renamed to `x.csv`)."""
    last: tuple[str, str] | None = None
    """(kind, path) of the latest expected event."""

    def by_kind(self, kind: str, excluded: bool | None = None) -> int:
        if excluded is None:
            return self.counts[(kind, False)] + self.counts[(kind, True)]
        return self.counts[(kind, excluded)]


class _Pool:
    """Paths with O(1) add, remove and random choice."""

    def __init__(self) -> None:
        self.items: list[str] = []
        self.index: dict[str, int] = {}

    def __len__(self) -> int:
        return len(self.items)

    def add(self, path: str) -> None:
        self.index[path] = len(self.items)
        self.items.append(path)

    def remove(self, path: str) -> None:
        at = self.index.pop(path)
        last = self.items.pop()
        if last != path:
            self.items[at] = last
            self.index[last] = at

    def choice(self, rng: random.Random) -> str:
        return self.items[rng.randrange(len(self.items))]


class Workload:
    """Makes files change in `tree` like a busy landing zone, and records what must be seen.

    Steady-state mix by operation (population held near `target_files`): new files
    written in one to three writes, appends to existing files, renames inside the tree,
    renames out of it and in from outside, deletions, `x.csv.tmp` written then renamed
    into place, excluded files (`scratch/`, dot-files) made and removed, empty folders
    made and removed.
    """

    def __init__(
        self,
        tree: Path,
        outside: Path,
        *,
        seed: int,
        target_files: int,
        ledger: IO[str] | None = None,
    ) -> None:
        self.tree = str(tree)
        self.outside = str(outside)
        self.rng = random.Random(seed)
        self.target_files = target_files
        self.ledger = ledger
        self.expected = Expected()
        self.ops: Counter[str] = Counter()
        self.folders = [f"{self.tree}/{area}/{day}" for area in AREAS for day in DAYS]
        self.live = _Pool()
        self.hidden = _Pool()  # excluded files still present (scratch/, dot-files)
        self.churn: list[str] = []
        self.moved_out: list[str] = []
        self._serial = 0
        self._payload = self.rng.randbytes(1 << 16)
        self._mix: list[tuple[Callable[[], None], int]] = [
            (self.create, 30),
            (self.append, 25),
            (self.rename_within, 10),
            (self.move_out, 4),
            (self.move_in, 5),
            (self.delete, 10),
            (self.tmp_then_rename, 8),
            (self.excluded_file, 6),
            (self.churn_folder, 2),
        ]
        self._ops = [op for op, _ in self._mix]
        self._weights = [weight for _, weight in self._mix]

    # -- setup -------------------------------------------------------------------

    def prepare(self) -> None:
        """Make the folders (before the pipeline starts: they are not part of the events)."""
        for folder in [*self.folders, f"{self.tree}/{SCRATCH}", self.outside]:
            os.makedirs(folder, exist_ok=True)

    def initial_dirs(self) -> set[str]:
        return {os.path.dirname(f) for f in self.folders} | {*self.folders}

    # -- the driver --------------------------------------------------------------

    def step(self) -> None:
        """Do one operation, chosen by the mix; removals replace additions above target."""
        op = self.rng.choices(self._ops, self._weights)[0]
        population = len(self.live)
        if op in (self.create, self.move_in, self.tmp_then_rename):
            if population >= self.target_files:
                op = self.delete if self.rng.random() < 0.7 else self.move_out
        elif population < 2 and op is not self.excluded_file and op is not self.churn_folder:
            op = self.create
        self.ops[op.__name__] += 1
        op()

    # -- operations --------------------------------------------------------------

    def create(self) -> None:
        path = self._fresh(self.rng.choice(self.folders), self.rng.choice(EXTENSIONS))
        self._write(path, os.O_CREAT | os.O_EXCL, self.rng.randint(1, 3))
        self._expect(CREATED, path)
        self._expect(CLOSED_WRITE, path)
        self.live.add(path)

    def append(self) -> None:
        at = self.rng.randrange(len(self.live))
        path = self.live.items[at]
        if self.expected.last == (CLOSED_WRITE, path):
            # The kernel would merge this close with the previous one: take a neighbour.
            path = self.live.items[(at + 1) % len(self.live)]
        self._write(path, os.O_APPEND, 1)
        self._expect(CLOSED_WRITE, path)

    def rename_within(self) -> None:
        old = self.live.choice(self.rng)
        new = self._fresh(self.rng.choice(self.folders), os.path.splitext(old)[1])
        os.rename(old, new)
        self._expect(MOVED, new, old)
        self.live.remove(old)
        self.live.add(new)

    def move_out(self) -> None:
        path = self.live.choice(self.rng)
        target = self._fresh(self.outside, ".out")
        os.rename(path, target)
        self._expect(DELETED, path)
        self.live.remove(path)
        self.moved_out.append(target)
        if len(self.moved_out) > OUTSIDE_KEEP:
            for gone in self.moved_out:
                os.unlink(gone)  # outside every watch: no event
            self.moved_out.clear()

    def move_in(self) -> None:
        staged = self._fresh(self.outside, ".in")
        self._write(staged, os.O_CREAT | os.O_EXCL, 1)
        path = self._fresh(self.rng.choice(self.folders), self.rng.choice(EXTENSIONS))
        os.rename(staged, path)
        self._expect(MOVED, path, None)
        self.live.add(path)

    def delete(self) -> None:
        path = self.live.choice(self.rng)
        os.unlink(path)
        self._expect(DELETED, path)
        self.live.remove(path)

    def tmp_then_rename(self) -> None:
        final = self._fresh(self.rng.choice(self.folders), ".csv")
        temporary = final + ".tmp"
        self._write(temporary, os.O_CREAT | os.O_EXCL, self.rng.randint(1, 3))
        self._expect(CREATED, temporary)
        self._expect(CLOSED_WRITE, temporary)
        os.rename(temporary, final)
        self._expect(MOVED, final, temporary)
        self.live.add(final)

    def excluded_file(self) -> None:
        if len(self.hidden) > 200 and self.rng.random() < 0.5:
            path = self.hidden.choice(self.rng)
            os.unlink(path)
            self._expect(DELETED, path)
            self.hidden.remove(path)
            return
        if self.rng.random() < 0.5:
            path = self._fresh(f"{self.tree}/{SCRATCH}", ".dat")
        else:
            folder = self.rng.choice(self.folders)
            self._serial += 1
            path = f"{folder}/.~lock.{self._serial:08d}#"
        self._write(path, os.O_CREAT | os.O_EXCL, 1)
        self._expect(CREATED, path)
        self._expect(CLOSED_WRITE, path)
        self.hidden.add(path)

    def churn_folder(self) -> None:
        if len(self.churn) >= CHURN_DIRS:
            folder = self.churn.pop(0)
            os.rmdir(folder)
            self._expect(DELETED, folder)
            return
        self._serial += 1
        folder = f"{self.rng.choice(self.folders)}/batch-{self._serial:08d}"
        os.mkdir(folder)
        self._expect(CREATED, folder)
        self.churn.append(folder)

    def remove_churn(self) -> None:
        """At the end, remove the remaining churn folders (so none is left half-known)."""
        while self.churn:
            folder = self.churn.pop(0)
            os.rmdir(folder)
            self._expect(DELETED, folder)

    # -- helpers -----------------------------------------------------------------

    def _fresh(self, folder: str, suffix: str) -> str:
        self._serial += 1
        return f"{folder}/f{self._serial:08d}{suffix}"

    def _write(self, path: str, flags: int, writes: int) -> None:
        fd = os.open(path, os.O_WRONLY | flags, 0o644)
        try:
            for _ in range(writes):
                start = self.rng.randrange(0, 1 << 15)
                os.write(fd, self._payload[start : start + self.rng.randint(64, 8192)])
        finally:
            os.close(fd)

    def _expect(self, kind: str, path: str, src: str | None = None) -> None:
        relative = path[len(self.tree) + 1 :]
        excluded = is_excluded(relative)
        expected = self.expected
        expected.counts[(kind, excluded)] += 1
        expected.total += 1
        expected.last = (kind, path)
        if excluded:
            expected.excluded += 1
        else:
            expected.paths.add(path)
            if src is not None and is_excluded(src[len(self.tree) + 1 :]):
                expected.excluded_sources.add(src)
            elif src is not None:
                expected.paths.add(src)
        if self.ledger is not None:
            self.ledger.write(f"{kind}\t{path}\t{src or ''}\t{int(excluded)}\n")
