"""One soak run, start to finish: set up, load, drain, stop, reconcile, report."""

from __future__ import annotations

import argparse
import signal
import subprocess
import time
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from pacing import Pacer
from pipelineproc import STREAM, Layout, config_text, start_pipeline, stopped_line
from plot import plot
from reconcile import read_dead_letters, read_logfile, reconcile
from redisserver import RedisServer, free_port, stream_ids
from report import Timing, fds_trend, rss_trend, table, write_summary
from sampler import Monitor
from stats import Stats, fetch_stats
from workload import Workload

if TYPE_CHECKING:
    from tests.e2e.cli import Background

PROGRESS_EVERY = 10.0
"""Seconds between two progress lines."""
IDLE_BASELINE = 3.0
"""Seconds sampled with the pipeline ready and idle, before the load starts."""
QUEUE_HIGH = 768
"""The generator pauses while a sink queue holds more than this (of 1024)."""


def seconds(duration: str) -> float:
    from pipeline.options import parse_duration

    return float(parse_duration(duration))


def latency_limit(quiet: float) -> float:
    """The latency histogram bound past which a delivery counts as late: quiet + 0.5 s."""
    from pipeline.engine.stats import LATENCY_BUCKETS

    return next((b for b in LATENCY_BUCKETS if b >= quiet + 0.5), LATENCY_BUCKETS[-1])


class Soak:
    """Holds what one run started, so that `cleanup` can always stop it."""

    def __init__(self, scratch: Path, args: argparse.Namespace, facts: dict[str, Any]) -> None:
        self.args = args
        self.layout = Layout(scratch)
        self.facts = facts
        self.redis = RedisServer(scratch / "redis")
        self.process: Background | None = None
        self.monitor: Monitor | None = None
        self._ledger: IO[str] = (scratch / "ledger.tsv").open("w", buffering=1 << 20)
        self.workload = Workload(
            self.layout.tree,
            self.layout.outside,
            seed=args.seed,
            target_files=args.target_files,
            ledger=self._ledger,
        )
        self.stem = args.results / f"soak-{args.events}"

    # -- the run -----------------------------------------------------------------

    def run(self) -> int:
        layout, args = self.layout, self.args
        self.workload.prepare()
        initial_dirs = self.workload.initial_dirs()
        self.redis.start()
        self._note_pid(self.redis.pid)
        layout.config.write_text(config_text(layout, self.redis.url, args.quiet))
        http_port = free_port()
        print(f"scratch {layout.scratch}; redis {self.redis.url}; http 127.0.0.1:{http_port}")
        self.process = start_pipeline(layout, http_port)
        self._note_pid(self.process.proc.pid)
        self.monitor = Monitor(
            self.process.proc.pid,
            http_port,
            self.stem.with_suffix(".csv"),
            lambda: self.workload.expected.total,
            redis_pid=self.redis.pid,
            latency_limit=latency_limit(seconds(args.quiet)),
        )
        self.monitor.start()
        time.sleep(IDLE_BASELINE)

        load_start = time.monotonic()
        self._generate()
        generated_at = time.monotonic()
        final, drained = self._drain(http_port)
        drained_at = time.monotonic()
        exit_code = self._stop_pipeline()
        self.monitor.stop()
        self._ledger.close()

        started = self.monitor.started_at
        load = (load_start - started, drained_at - started)
        timing = Timing(
            duration_s=drained_at - load_start,
            generate_s=generated_at - load_start,
            events_per_s=self.workload.expected.total / max(drained_at - load_start, 1e-9),
        )
        return self._report(
            final,
            drained=drained,
            exit_code=exit_code,
            load=load,
            timing=timing,
            initial_dirs=initial_dirs,
        )

    def _generate(self) -> None:
        """Make events until `--events` are expected, at the pace the pipeline keeps up with
        (pacing.Pacer): slower when deliveries are late, the source is more than
        `--max-lag` events behind or a sink queue is nearly full; never above `--rate`."""
        assert self.monitor is not None
        workload, expected, monitor = self.workload, self.workload.expected, self.monitor
        pacer = Pacer(self.args.rate or float("inf"))
        seen: Stats | None = None
        started = time.monotonic()
        next_progress = started + PROGRESS_EVERY
        while expected.total < self.args.events:
            if time.monotonic() >= next_progress:
                next_progress += PROGRESS_EVERY
                self._progress(started, pacer.rate)
            latest = monitor.latest
            if latest is not seen and latest is not None:
                seen = latest
                lag = expected.total - latest.source.events_out
                backlog = max(s.queue_depth for s in latest.sinks)
                pacer.reading(monitor.behind or lag > self.args.max_lag or backlog > QUEUE_HIGH)
            allowed = pacer.allowance()
            if allowed <= 0:
                time.sleep(0.005)
                continue
            before = expected.total
            while expected.total - before < allowed and expected.total < self.args.events:
                workload.step()
            pacer.spend(expected.total - before)
        workload.remove_churn()
        self._progress(started, pacer.rate)

    def _progress(self, started: float, pace: float) -> None:
        assert self.monitor is not None
        total, elapsed = self.workload.expected.total, time.monotonic() - started
        sample = self.monitor.samples[-1] if self.monitor.samples else None
        stats = self.monitor.latest
        parts = [
            f"{elapsed:7.1f}s",
            f"generated {total:>10,} ({total / elapsed:,.0f}/s, pace {pace:,.0f}/s)",
        ]
        if stats is not None:
            logfile = stats.one("sink", "logfile")
            parts.append(f"source lag {total - stats.source.events_out:>6,}")
            parts.append(f"delivered {logfile.delivered:>9,}")
        if sample is not None:
            parts.append(f"RSS {sample.rss_kib / 1024:6.1f} MiB  fds {sample.fds}")
        print("  ".join(parts), flush=True)

    def _drain(self, http_port: int) -> tuple[Stats, bool]:
        """Wait until the source read every expected event and no counter moved for longer
        than debounce's max_wait (nothing can still be held), and the queues are empty."""
        settle = seconds(self.args.quiet) * 10 + 1.0
        deadline = time.monotonic() + self.args.drain_timeout
        total = self.workload.expected.total
        last_key: tuple[int, ...] | None = None
        since = time.monotonic()
        while True:
            stats = fetch_stats(http_port)
            now = time.monotonic()
            key = stats.key()
            if key != last_key:
                last_key, since = key, now
            done = stats.source.events_out >= total and not any(s.queue_depth for s in stats.sinks)
            if done and now - since >= settle:
                return stats, True
            if now > deadline:
                print(f"the pipeline did not settle within {self.args.drain_timeout:g}s")
                return stats, False
            time.sleep(0.25)

    def _stop_pipeline(self) -> int | None:
        assert self.process is not None
        self.process.proc.send_signal(signal.SIGINT)
        try:
            return int(self.process.proc.wait(120))
        except subprocess.TimeoutExpired:
            self.process.proc.kill()
            return None

    # -- the end -----------------------------------------------------------------

    def _report(
        self,
        final: Stats,
        *,
        drained: bool,
        exit_code: int | None,
        load: tuple[float, float],
        timing: Timing,
        initial_dirs: set[str],
    ) -> int:
        assert self.monitor is not None and self.process is not None
        layout = self.layout
        print("reading back the logfile, the redis stream and the dead letters ...", flush=True)
        logfile = read_logfile(layout.logfile)
        client = self.redis.client()
        try:
            redis_ids = list(stream_ids(client, STREAM))
        finally:
            client.close()
        letters = read_dead_letters(layout.dead_letters)
        acc = reconcile(
            self.workload.expected,
            final,
            logfile,
            redis_ids,
            letters,
            tree=layout.tree,
            initial_dirs=initial_dirs,
        )
        acc.check(drained, "the pipeline did not settle before the drain timeout")
        acc.check(exit_code == 0, f"`pipeline run` exited with {exit_code}, not 0")
        stopped = stopped_line(self.process)
        total_dead = acc.stage_dead_lettered + sum(acc.sink_dead_lettered.values())
        acc.check(
            stopped is not None and stopped.get("dead_lettered") == total_dead,
            f"the `stopped` log line says {stopped and stopped.get('dead_lettered')} dead "
            f"letters; the accounting has {total_dead}",
        )
        samples = self.monitor.samples
        rss, fds = rss_trend(samples, load), fds_trend(samples, load)
        png = self.stem.with_suffix(".png")
        title = (
            f"fspipeline soak: {acc.generated:,} events, inotify → filter → debounce → "
            f"transform → logfile + redis; {timing.events_per_s:,.0f} events/s; "
            f"unaccounted {acc.unaccounted}"
        )
        plot(png, samples, load=load, rss=rss, fds=fds, title=title)
        self.facts.update(
            operations=dict(self.workload.ops),
            expected_by_kind={
                f"{k}{' (excluded)' if x else ''}": n
                for (k, x), n in sorted(self.workload.expected.counts.items())
            },
            exit_code=exit_code,
            stopped_line=stopped,
            monitor_errors=self.monitor.errors,
            fds_first=self.monitor.fds_first,
            fds_peak=self.monitor.fds_peak,
            load_window_s=load,
            samples=len(samples),
        )
        write_summary(
            self.stem.with_suffix(".json"), self.facts, acc, rss=rss, fds=fds, timing=timing
        )
        print()
        print(table(acc, rss, fds, timing))
        print(
            f"\nCSV {self.stem.with_suffix('.csv')}\nPNG {png}\n"
            f"JSON {self.stem.with_suffix('.json')}"
        )
        leaking = rss.flat is False or fds.flat is False  # None: too short to tell
        return 0 if not acc.problems and not leaking else 1

    def _note_pid(self, pid: int | None) -> None:
        with (self.layout.scratch / "pids").open("a") as pids:
            pids.write(f"{pid}\n")

    def cleanup(self) -> None:
        """Stop everything this run started (each by its own pid); safe to call twice."""
        try:
            if self.monitor is not None and self.monitor.is_alive():
                self.monitor.stop()
        finally:
            try:
                if self.process is not None and self.process.proc.poll() is None:
                    self.process.proc.kill()
                    self.process.proc.wait(10)
            finally:
                self.redis.stop()
                if not self._ledger.closed:
                    self._ledger.close()
