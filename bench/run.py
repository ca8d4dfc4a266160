"""Benchmark `pipeline watch` against inotifywait, watchdog, watchfiles and pyinotify.

    .venv/bin/python bench/run.py [--quick] [--only NAME ...]

Runs every contender on the same workloads (burst, latency, overflow, startup, idle) in
a scratch folder on tmpfs, prints a table of medians and writes bench/results/latest.json
and latest.md. Installs bench/requirements.txt into this Python's environment first.
Everything it starts, makes or changes is undone on exit, Ctrl-C or error.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib.metadata
import os
import platform
import shlex
import signal
import statistics
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import Any

from contenders import Contender, all_contenders, inotifywait_missing
from harness import WATCHER_CPU, BenchError, Cleanup, pinning_possible
from noise import QUIET, LoadMeter, wait_for_quiet
from report import RESULTS, Cell, Results, write_reports
from snapshot import digest, freeze, live_package
from workloads import FULL, QUICK, WORKLOADS, Context, Sizes, writer_alone
from writing import Writer

HERE = Path(__file__).resolve().parent
SCRATCH_PREFIX = "fsbench-"
QUIET_WAIT = 3.0
"""Longest wait, before each run, for other processes to leave the CPUs alone (and
Sizes.quiet_budget_s over the whole run, so a busy machine cannot stretch it much)."""
INSTALL_HINT = (
    "inotifywait is missing: install inotify-tools "
    "(Debian/Ubuntu: apt-get update && apt-get install -y inotify-tools; "
    "Fedora: dnf install inotify-tools), or leave it out with --only"
)


def install_requirements() -> None:
    """pip install -r bench/requirements.txt into the running interpreter's environment."""
    command = [sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    done = subprocess.run(
        [*command, "-r", str(HERE / "requirements.txt")],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise SystemExit(f"bench: installing bench/requirements.txt failed:\n{done.stderr}")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="1 run each, smaller sizes")
    parser.add_argument(
        "--only",
        nargs="+",
        metavar="NAME",
        help="only these workloads and/or contenders (e.g. --only burst pipeline inotifywait)",
    )
    parser.add_argument("--dir", default="/dev/shm", help="where the scratch folder goes (tmpfs)")
    parser.add_argument("--runs", type=int, help="runs per figure (default: 3, --quick: 1)")
    parser.add_argument(
        "--no-pin",
        action="store_true",
        help="do not pin the watcher to CPU 1 and the writer to CPU 0",
    )
    parser.add_argument(
        "--no-install", action="store_true", help="skip pip install -r bench/requirements.txt"
    )
    return parser.parse_args(argv)


def _on_signal(signum: int, _frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)  # unwinds through the cleanup like Ctrl-C


def _fs_type(path: str) -> str:
    best = ("", "?")
    for line in Path("/proc/mounts").read_text().splitlines():
        fields = line.split()
        mount = fields[1]
        if path.startswith(mount) and len(mount) > len(best[0]):
            best = (mount, fields[2])
    return best[1]


def machine_facts(args: argparse.Namespace, argv: list[str]) -> dict[str, Any]:
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        "?",
    )
    versions = {}
    for dist in ("fspipeline", "watchdog", "watchfiles", "pyinotify"):
        try:
            versions[dist] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            versions[dist] = "not installed"
    try:
        inotifywait = subprocess.run(
            ["inotifywait", "--help"], capture_output=True, text=True, check=False
        ).stdout
    except FileNotFoundError:  # not a contender this run (--only): not required
        inotifywait = "not installed"
    return {
        "command": shlex.join([".venv/bin/python", "bench/run.py", *argv]),
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "kernel": platform.release(),
        "cpu": f"{cpu}, {os.cpu_count()} cores",
        "python": platform.python_version(),
        "scratch": f"{args.dir} ({_fs_type(args.dir)})",
        "max_queued_events": Path("/proc/sys/fs/inotify/max_queued_events").read_text().strip(),
        "versions": versions,
        "inotifywait": (inotifywait.splitlines() or ["?"])[0],
    }


def noise_summary(results: Results) -> str:
    """How much CPU other processes took during the runs, in cores."""
    loads = sorted(
        float(run["others_cpu"] or 0.0)
        for cells in results.values()
        for cell in cells.values()
        for run in cell.runs
        if "others_cpu" in run
    )
    if not loads:
        return "not measured"
    busy = sum(load >= QUIET for load in loads)
    return (
        f"median {statistics.median(loads):.2f}, max {loads[-1]:.2f} cores; "
        f"{busy} of {len(loads)} runs had others above {QUIET} cores"
    )


def run_all(
    base: Path,
    sizes: Sizes,
    workloads: list[str],
    chosen: list[Contender],
    cleanup: Cleanup,
    *,
    pin: bool,
) -> tuple[Results, dict[str, Any]]:
    """Each workload, run after run, each contender in turn; returns results and facts."""
    began = time.monotonic()
    watcher_cpus = writer_cpus = None
    if pin:
        writer_cpus, watcher_cpus = {0}, {WATCHER_CPU}
        os.sched_setaffinity(0, writer_cpus)  # the harness shares CPU 0 with the writer
    writer = Writer(writer_cpus)
    context = Context(base, sizes, writer, cleanup, watcher_cpus)
    facts: dict[str, Any] = {
        "writer": writer.kind,
        "cpus": f"watcher on CPU {WATCHER_CPU}, writer and harness on CPU 0"
        if pin
        else "not pinned",
    }
    if "burst" in workloads:
        facts["writer_alone_files_per_s"] = round(writer_alone(context))
    results: Results = {}
    budget = sizes.quiet_budget_s
    for workload in workloads:
        cells = results.setdefault(workload, {})
        for number in range(1, sizes.runs + 1):
            for contender in chosen:
                if workload not in contender.workloads:
                    continue
                cell = cells.setdefault(contender.name, Cell())
                waited = time.monotonic()
                wait_for_quiet(min(QUIET_WAIT, budget))
                budget = max(0.0, budget - (time.monotonic() - waited))
                meter = LoadMeter()
                try:
                    figures = WORKLOADS[workload](context, contender)
                except (BenchError, OSError, subprocess.SubprocessError) as exc:
                    cell.errors.append(f"run {number}: {exc}")
                    shown = f"FAILED: {exc}"
                else:
                    figures["others_cpu"] = meter.others()
                    cell.runs.append(figures)
                    shown = "  ".join(
                        f"{k}={v:,.3f}" if isinstance(v, float) else f"{k}={v}"
                        for k, v in figures.items()
                    )
                print(
                    f"[{time.monotonic() - began:5.0f}s] {workload:<8} {contender.name:<18} "
                    f"run {number}/{sizes.runs}  {shown}",
                    file=sys.stderr,
                    flush=True,
                )
    return results, facts


def main(argv: list[str] | None = None) -> int:
    # Ctrl-C raises KeyboardInterrupt even where the shell started us ignoring SIGINT.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    for signum in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, _on_signal)
    try:
        return bench(sys.argv[1:] if argv is None else argv)
    except KeyboardInterrupt:
        print("bench: interrupted", file=sys.stderr)
        return 130


class UsageError(Exception):
    """The command line asks for something this machine cannot run."""


def choose(only: set[str]) -> tuple[list[str], list[Contender]]:
    """The workloads and contenders `--only` names (all of a kind it names none of)."""
    contenders = all_contenders()
    names = {c.name for c in contenders}
    unknown = sorted(only - names - set(WORKLOADS))
    if unknown:
        known = ", ".join(sorted(names | set(WORKLOADS)))
        raise UsageError(f"unknown name {', '.join(unknown)}; known: {known}")
    workloads = [w for w in WORKLOADS if w in only or not only & set(WORKLOADS)]
    chosen = [c for c in contenders if c.name in only or not only & names]
    if any(c.name == "inotifywait" for c in chosen) and inotifywait_missing():
        raise UsageError(INSTALL_HINT)
    return workloads, chosen


def bench(argv: list[str]) -> int:
    """Install, choose, run, report; see the module docstring."""
    args = parse_args(argv)
    if not args.no_install:
        install_requirements()
    sizes = QUICK if args.quick else FULL
    if args.runs:
        sizes = dataclasses.replace(sizes, runs=args.runs)
    cleanup = Cleanup()
    began = time.monotonic()
    try:
        cleanup.repair_stale(Path(args.dir), SCRATCH_PREFIX)
        base = cleanup.temp_dir(Path(args.dir), f"{SCRATCH_PREFIX}{os.getpid()}")
        frozen = freeze(base)
        workloads, chosen = choose(set(args.only or ()))
        pin = not args.no_pin and pinning_possible()
        results, facts = run_all(base, sizes, workloads, chosen, cleanup, pin=pin)
    except UsageError as exc:
        print(f"bench: {exc}", file=sys.stderr)
        return 2
    finally:
        cleanup.close()
    meta = {**machine_facts(args, argv), **facts, "pipeline_sources_sha256": frozen}
    live = digest(live_package())
    if live != frozen:
        meta["pipeline_sources_now"] = f"{live}: edited during the run, which measured a copy"
    meta["duration_s"] = round(time.monotonic() - began)
    meta["others_cpu"] = noise_summary(results)
    order = [c.name for c in chosen if any(c.name in cells for cells in results.values())]
    print(write_reports(results, order, sizes, meta))
    print(f"\nwrote {RESULTS / 'latest.json'} and latest.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
