"""The five workloads: burst, latency, overflow, startup, idle. Each returns one run's figures.

All run in a scratch folder on tmpfs; each raises BenchError when a run cannot be measured.
"""

from __future__ import annotations

import dataclasses
import os
import statistics
import time
from collections.abc import Callable
from pathlib import Path

from contenders import Contender
from harness import BenchError, Cleanup, Watcher
from writing import Writer

QUEUE_SYSCTL = "/proc/sys/fs/inotify/max_queued_events"
READY_TIMEOUT = 120.0
DRAIN_TIMEOUT = 60.0
BATCH_PAUSE = 0.002  # a 1 MiB pipe holds over 2,000 JSON lines: 20 ms at 100k lines/s

Figures = dict[str, float | int | bool | None]


@dataclasses.dataclass(frozen=True)
class Sizes:
    runs: int
    burst_files: int
    latency_files: int
    latency_interval_us: int
    overflow_files: int
    overflow_queue: int
    tree_dirs: int
    idle_s: float
    quiet_budget_s: float


FULL = Sizes(3, 100_000, 500, 5_000, 20_000, 256, 50_000, 10.0, 120.0)
QUICK = Sizes(1, 20_000, 200, 5_000, 5_000, 256, 10_000, 3.0, 15.0)


class Context:
    """What every workload shares: the scratch folder, the writer, sizes and cleanup."""

    def __init__(
        self,
        base: Path,
        sizes: Sizes,
        writer: Writer,
        cleanup: Cleanup,
        watcher_cpus: set[int] | None,
    ) -> None:
        self.base = base
        self.watcher_cpus = watcher_cpus
        self.sizes = sizes
        self.writer = writer
        self.cleanup = cleanup
        self._tree: Path | None = None

    def tree(self) -> tuple[Path, list[Path]]:
        """The many-folder tree (built once): its root and the folders to probe in."""
        fanout = 50
        per_top = self.sizes.tree_dirs // fanout - 1
        if self._tree is None:
            self._tree = self.cleanup.temp_dir(self.base, "tree")
            for i in range(fanout):
                top = self._tree / f"d{i:03d}"
                top.mkdir()
                for j in range(per_top):
                    (top / f"s{j:04d}").mkdir()
        first = self._tree / "d000" / "s0000"
        last = self._tree / f"d{fanout - 1:03d}" / f"s{per_top - 1:04d}"
        return self._tree, [first, last]


def _launch(ctx: Context, contender: Contender, root: Path, *, batched: bool = False) -> Watcher:
    """Start the contender on `root`. `batched`: read its output every 2 ms rather than at
    once, which keeps the harness's wake-ups off the CPUs during a burst."""
    watcher = Watcher(
        contender.name,
        contender.argv(root),
        contender.parse,
        ctx.cleanup,
        contender.ready_marker,
        cpus=ctx.watcher_cpus,
        read_pause=BATCH_PAUSE if batched else 0.0,
    )
    watcher.start()
    return watcher


def _ready(watcher: Watcher, contender: Contender, root: Path) -> None:
    """Wait for the watcher's own ready line, or (without one) until it reports a probe."""
    if contender.ready_marker is not None:
        watcher.wait_signal(READY_TIMEOUT)
    else:
        watcher.probe([root], READY_TIMEOUT)


def _expected(root: Path, count: int) -> list[str]:
    return [f"{root}/f{i:06d}" for i in range(count)]


def burst(ctx: Context, contender: Contender) -> Figures:
    """N files written and closed into one folder as fast as the writer can."""
    count = ctx.sizes.burst_files
    root = ctx.cleanup.temp_dir(ctx.base, "burst")
    watcher = _launch(ctx, contender, root, batched=True)
    try:
        _ready(watcher, contender, root)
        written = ctx.writer.burst(root, count, timeout=120)
        drained = watcher.wait_quiet(written.end_ns, contender.settle, DRAIN_TIMEOUT)
        first = watcher.first_arrivals()
    finally:
        watcher.stop()
        ctx.cleanup.remove(root)
    arrivals = [first[p] for p in _expected(root, count) if p in first]
    last = max(arrivals, default=written.end_ns)
    elapsed = (last - written.start_ns) / 1e9
    return {
        "files_per_s": len(arrivals) / elapsed,
        "lost": count - len(arrivals),
        "seconds": elapsed,
        "writer_files_per_s": written.files_per_s,
        "drained": drained,
    }


def writer_alone(ctx: Context) -> float:
    """The writer's burst rate with no watcher at all (median of the runs): its ceiling."""
    rates = []
    for _ in range(ctx.sizes.runs):
        root = ctx.cleanup.temp_dir(ctx.base, "alone")
        try:
            rates.append(ctx.writer.burst(root, ctx.sizes.burst_files, timeout=120).files_per_s)
        finally:
            ctx.cleanup.remove(root)
    return statistics.median(rates)


def _percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def latency(ctx: Context, contender: Contender) -> Figures:
    """Files written one at a time, `latency_interval_us` apart: close() to report."""
    sizes = ctx.sizes
    root = ctx.cleanup.temp_dir(ctx.base, "latency")
    watcher = _launch(ctx, contender, root)
    try:
        _ready(watcher, contender, root)
        time.sleep(0.2)
        span = (sizes.latency_files - 1) * sizes.latency_interval_us / 1e6
        written = ctx.writer.steady(
            root, sizes.latency_files, sizes.latency_interval_us, timeout=span + 30
        )
        watcher.wait_quiet(written.end_ns, contender.settle, DRAIN_TIMEOUT)
        first = watcher.first_arrivals()
    finally:
        watcher.stop()
        ctx.cleanup.remove(root)
    paths = _expected(root, sizes.latency_files)
    millis = [
        (first[p] - closed) / 1e6
        for p, closed in zip(paths, written.closed_ns, strict=True)
        if p in first
    ]
    if not millis:
        raise BenchError(f"{contender.name} reported none of the {len(paths)} files")
    return {
        "p50_ms": statistics.median(millis),
        "p99_ms": _percentile(millis, 0.99),
        "max_ms": max(millis),
        "lost": len(paths) - len(millis),
        "writer_late_ms": (written.end_ns - written.start_ns) / 1e6 - span * 1e3,
    }


def overflow(ctx: Context, contender: Contender) -> Figures:
    """Kernel queue lowered, watcher stopped (SIGSTOP) while N files are made, then resumed."""
    if os.geteuid() != 0:
        raise BenchError("needs root to lower fs.inotify.max_queued_events")
    sizes = ctx.sizes
    root = ctx.cleanup.temp_dir(ctx.base, "q256")
    # The kernel sizes an inotify queue when the instance is created: lower the limit
    # only while the watcher starts, so other inotify users on this machine are spared.
    ctx.cleanup.set_sysctl(QUEUE_SYSCTL, str(sizes.overflow_queue))
    try:
        watcher = _launch(ctx, contender, root, batched=True)
        try:
            _ready(watcher, contender, root)
        finally:
            ctx.cleanup.restore_sysctls()
        watcher.pause()
        try:
            written = ctx.writer.burst(root, sizes.overflow_files, timeout=120)
        finally:
            watcher.resume()
        watcher.wait_quiet(written.end_ns, contender.settle, DRAIN_TIMEOUT)
        first = watcher.first_arrivals()
        noticed = watcher.overflow_noticed()
    finally:
        watcher.stop()
        ctx.cleanup.remove(root)
    reported = sum(p in first for p in _expected(root, sizes.overflow_files))
    return {
        "reported": reported,
        "lost": sizes.overflow_files - reported,
        "overflow_noticed": noticed,
    }


def _start_on_tree(ctx: Context, contender: Contender) -> tuple[Watcher, Figures]:
    root, probes = ctx.tree()
    watcher = _launch(ctx, contender, root)
    try:
        probed = watcher.probe(probes, READY_TIMEOUT)
        signal_ns = None
        if contender.ready_marker is not None:
            signal_ns = watcher.wait_signal(READY_TIMEOUT)
        figures: Figures = {
            "probe_s": (probed.ready_ns - watcher.start_ns) / 1e9,
            "first_report_s": (probed.report_ns - watcher.start_ns) / 1e9,
            "signal_s": None if signal_ns is None else (signal_ns - watcher.start_ns) / 1e9,
        }
        figures["startup_s"] = figures["probe_s"] if signal_ns is None else figures["signal_s"]
        figures["rss_mib"] = watcher.rss_mib()
    except BaseException:
        watcher.stop()
        raise
    finally:
        for folder in probes:
            for probe in folder.glob("probe-*"):
                probe.unlink()
    return watcher, figures


def startup(ctx: Context, contender: Contender) -> Figures:
    """Start on the many-folder tree: time until ready, and memory once ready."""
    watcher, figures = _start_on_tree(ctx, contender)
    watcher.stop()
    return figures


def idle(ctx: Context, contender: Contender) -> Figures:
    """CPU the watcher burns on the many-folder tree while nothing happens."""
    watcher, _ = _start_on_tree(ctx, contender)
    try:
        time.sleep(2.0)  # let the probes' events and any batching settle
        before = watcher.cpu_seconds()
        time.sleep(ctx.sizes.idle_s)
        watcher.check_alive()
        used = watcher.cpu_seconds() - before
    finally:
        watcher.stop()
    return {"cpu_s": used, "cpu_s_per_10s": used / ctx.sizes.idle_s * 10}


WORKLOADS: dict[str, Callable[[Context, Contender], Figures]] = {
    "burst": burst,
    "latency": latency,
    "overflow": overflow,
    "startup": startup,
    "idle": idle,
}
