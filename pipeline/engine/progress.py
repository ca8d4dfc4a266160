"""Progress of long jobs (initial tree walk, rescan after an overflow, catch-up), with ETA.

Components report `(task, done, total)` as often as they like; the live view shows the
jobs under way. Reporting is a dictionary update, cheap enough for every folder walked.
"""

from __future__ import annotations

import dataclasses
import functools
import time
from collections.abc import Callable

ProgressReport = Callable[[str, int, "int | None"], None]
"""`report(task, done, total)`: total is None while unknown (a walk that has not counted)."""

LINGER = 2.0
"""Seconds a finished job stays on show, so a short one is seen at all."""


@dataclasses.dataclass
class Job:
    """One long job of one component: how far it got, how fast, and when it should end."""

    component: str
    task: str
    done: int
    total: int | None
    started: float
    updated: float

    @property
    def finished(self) -> bool:
        return self.total is not None and self.done >= self.total

    @property
    def rate(self) -> float:
        """Units per second since the job started."""
        elapsed = self.updated - self.started
        return self.done / elapsed if elapsed > 0 else 0.0

    @property
    def eta(self) -> float | None:
        """Seconds left at the rate so far; None when the total or the rate is unknown."""
        if self.total is None or self.rate <= 0:
            return None
        return max(0.0, (self.total - self.done) / self.rate)


class ScanBoard:
    """Where components report their long jobs, and where the status views read them."""

    def __init__(self, now: Callable[[], float] = time.monotonic) -> None:
        self._now = now
        self._jobs: dict[tuple[str, str], Job] = {}

    def report(self, component: str, task: str, done: int, total: int | None = None) -> None:
        now = self._now()
        job = self._jobs.get((component, task))
        if job is None or job.finished:
            job = self._jobs[(component, task)] = Job(component, task, 0, total, now, now)
        job.done, job.total, job.updated = done, total, now

    def reporter(self, component: str) -> ProgressReport:
        """The `progress(task, done, total)` callback to hand to one component."""
        return functools.partial(self.report, component)

    def jobs(self) -> list[Job]:
        """Jobs under way, and those finished less than LINGER seconds ago."""
        now = self._now()
        for key, job in list(self._jobs.items()):
            if job.finished and now - job.updated > LINGER:
                del self._jobs[key]
        return list(self._jobs.values())
