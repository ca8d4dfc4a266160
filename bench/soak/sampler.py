"""Samples the pipeline process (RSS, open fds, threads) and its counters, once a second.

One thread does both: it polls /api/stats and /metrics a few times a second (the
generator paces itself on the freshest counters) and, every `interval`, reads
/proc/PID/status and /proc/PID/fd and appends a row to the CSV. Doing both in one thread
means no request of ours is in flight (holding a socket in the pipeline) while its fds
are counted.

"Behind" is the pacing signal for what the counters cannot show: a stage that holds
events (debounce) is not slowed by a slow stage after it, it holds more. So the monitor
watches the latency of the deliveries of the last second (the difference of two readings
of the logfile sink's histogram): when more than SLOW_SHARE of them took longer than the
limit, the pipeline is behind and the generator waits.
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import os
import threading
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import IO, TYPE_CHECKING

from stats import Stats, fetch_latency, fetch_stats

if TYPE_CHECKING:
    from _csv import Writer as CsvWriter

POLL = 0.25
"""Seconds between two reads of /api/stats and /metrics."""
LATENCY_WINDOW = 1.0
"""Seconds of deliveries whose latency says whether the pipeline is behind."""
SLOW_SHARE = 0.05
"""Share of those deliveries allowed to take longer than the limit."""


@dataclasses.dataclass(frozen=True)
class Sample:
    """One row of the CSV."""

    elapsed_s: float
    rss_kib: int
    fds: int
    threads: int
    redis_rss_kib: int
    generated: int
    behind: int
    """1 while the generator waits for the pipeline to catch up."""
    source_out: int
    filtered: int
    held_or_merged: int
    left_stages: int
    delivered_logfile: int
    delivered_redis: int
    sink_dead_lettered: int


FIELDS = [field.name for field in dataclasses.fields(Sample)]


def proc_status(pid: int) -> dict[str, str]:
    """/proc/PID/status as a mapping (`VmRSS` -> `123456 kB`, ...)."""
    entries: dict[str, str] = {}
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            key, _, value = line.partition(":")
            entries[key] = value.strip()
    return entries


def kib(value: str) -> int:
    return int(value.split(maxsplit=1)[0]) if value else 0


def open_fds(pid: int) -> list[str]:
    """What each open fd of `pid` is (`socket:[123]`, `anon_inode:inotify`, a path)."""
    targets = []
    for fd in os.listdir(f"/proc/{pid}/fd"):
        with contextlib.suppress(FileNotFoundError):  # closed since the listing
            targets.append(os.readlink(f"/proc/{pid}/fd/{fd}"))
    return targets


class Monitor(threading.Thread):
    """Polls the pipeline's counters and samples its process until `stop`."""

    def __init__(
        self,
        pid: int,
        http_port: int,
        csv_path: Path,
        generated: Callable[[], int],
        *,
        redis_pid: int | None,
        latency_limit: float,
        interval: float = 1.0,
    ) -> None:
        super().__init__(name="soak-monitor", daemon=True)
        self.pid = pid
        self.http_port = http_port
        self.csv_path = csv_path
        self.generated = generated
        self.redis_pid = redis_pid
        self.interval = interval
        self.samples: list[Sample] = []
        self.latest: Stats | None = None
        self.latency_limit = latency_limit
        self.behind = False
        """Whether recent deliveries were late: the generator should wait."""
        self._latency: deque[tuple[float, dict[float, float]]] = deque()
        self.errors: list[str] = []
        self.fds_first: list[str] = []
        self.fds_peak: list[str] = []
        """What the fds were at the first sample and at the sample with the most of them."""
        self._halt = threading.Event()
        self.started_at = time.monotonic()

    def stop(self) -> None:
        self._halt.set()
        self.join(30)

    def run(self) -> None:
        with self.csv_path.open("w", newline="") as out:
            writer = csv.writer(out)
            writer.writerow(FIELDS)
            next_sample = time.monotonic()
            while not self._halt.is_set():
                self._poll()
                if time.monotonic() >= next_sample:
                    next_sample += self.interval
                    if not self._sample(writer, out):
                        return
                self._halt.wait(POLL)

    def _poll(self) -> None:
        try:
            self.latest = fetch_stats(self.http_port)
            self._note_latency(fetch_latency(self.http_port, "logfile"))
        except (OSError, ValueError, KeyError) as exc:
            if len(self.errors) < 20:
                self.errors.append(f"{time.monotonic() - self.started_at:.1f}s: {exc}")

    def _note_latency(self, buckets: dict[float, float]) -> None:
        now = time.monotonic()
        readings = self._latency
        readings.append((now, buckets))
        while len(readings) > 2 and readings[1][0] <= now - LATENCY_WINDOW:
            readings.popleft()
        before = readings[0][1]
        limit, total = self.latency_limit, float("inf")
        count = buckets.get(total, 0.0) - before.get(total, 0.0)
        fast = buckets.get(limit, 0.0) - before.get(limit, 0.0)
        self.behind = count > 0 and count - fast > SLOW_SHARE * count

    def _sample(self, writer: CsvWriter, out: IO[str]) -> bool:
        try:
            status = proc_status(self.pid)
            targets = open_fds(self.pid)
        except FileNotFoundError:
            return False  # the pipeline is gone
        if not self.samples:
            self.fds_first = sorted(targets)
        if len(targets) > len(self.fds_peak):
            self.fds_peak = sorted(targets)
        redis_rss = 0
        if self.redis_pid is not None:
            with contextlib.suppress(FileNotFoundError):
                redis_rss = kib(proc_status(self.redis_pid).get("VmRSS", ""))
        sample = self._row(status, len(targets), redis_rss)
        self.samples.append(sample)
        writer.writerow([getattr(sample, name) for name in FIELDS])
        out.flush()
        return True

    def _row(self, status: dict[str, str], fds: int, redis_rss: int) -> Sample:
        counts = dict.fromkeys(FIELDS[FIELDS.index("source_out") :], 0)
        stats = self.latest
        if stats is not None:
            filt, deb = stats.one("stage", "filter"), stats.one("stage", "debounce")
            counts.update(
                source_out=stats.source.events_out,
                filtered=filt.events_in - filt.events_out,
                held_or_merged=deb.events_in - deb.events_out,
                left_stages=stats.events_seen,
                delivered_logfile=stats.one("sink", "logfile").delivered,
                delivered_redis=stats.one("sink", "redis").delivered,
                sink_dead_lettered=sum(s.dead_lettered for s in stats.sinks),
            )
        return Sample(
            elapsed_s=round(time.monotonic() - self.started_at, 3),
            rss_kib=kib(status.get("VmRSS", "")),
            fds=fds,
            threads=int(status.get("Threads", "0")),
            redis_rss_kib=redis_rss,
            generated=self.generated(),
            behind=int(self.behind),
            **counts,
        )
