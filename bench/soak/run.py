"""Soak: a million file-system events through a real pipeline, every one accounted for.

    .venv/bin/python bench/soak/run.py                    # 1,000,000 events (10-30 min)
    .venv/bin/python bench/soak/run.py --events 50000     # smoke run (about a minute)

`pipeline run` (inotify -> filter -> debounce -> transform -> logfile + redis) runs as a
subprocess against a private redis-server, while this process makes files change at a
realistic mix, samples the pipeline's RSS and open fds every second, and in the end
reconciles every event. Results: bench/soak/results/soak-<events>.{csv,png,json}.
See bench/soak/README.md.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path
from types import FrameType
from typing import Any

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
SCRATCH_PREFIX = "fspipeline-soak-"
PIDS_FILE = "pids"


def ensure_requirements(install: bool) -> None:
    """matplotlib draws the plot; install bench/soak/requirements.txt if it is missing."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        if not install:
            sys.exit("matplotlib is missing: pip install -r bench/soak/requirements.txt")
        subprocess.run(
            [sys.executable, "-m", "pip", "install", "-q", "-r", str(HERE / "requirements.txt")],
            check=True,
        )


def _alive(pid: int) -> bool:
    """Whether `pid` runs (a zombie, dead but not reaped by its parent, does not)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rpartition(")")[2].split()[0] != "Z"


def clean_stale_runs(base: Path) -> None:
    """Stop what a killed earlier run left (its pipeline and redis-server), remove its folder."""
    for scratch in base.glob(SCRATCH_PREFIX + "*"):
        pids_file = scratch / PIDS_FILE
        try:
            harness, *children = (int(p) for p in pids_file.read_text().split())
        except (OSError, ValueError):
            continue
        if _alive(harness):
            continue
        for pid in children:
            try:
                cwd = os.readlink(f"/proc/{pid}/cwd")
            except OSError:
                continue
            # Only a process still working in that run's folder: a pid may have been reused.
            if cwd.startswith(str(scratch)):
                os.kill(pid, signal.SIGKILL)
        shutil.rmtree(scratch, ignore_errors=True)
        print(f"removed the leftovers of an earlier run: {scratch}")


def _stop_on_sigterm() -> None:
    def handler(signum: int, frame: FrameType | None) -> None:
        raise SystemExit(f"stopped by signal {signum}")

    signal.signal(signal.SIGTERM, handler)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--events",
        type=int,
        default=1_000_000,
        help="events to put through the pipeline (default 1,000,000)",
    )
    parser.add_argument(
        "--dir",
        type=Path,
        default=Path(tempfile.gettempdir()),
        help="where the scratch folder goes (default: the temp dir, on disk)",
    )
    parser.add_argument("--seed", type=int, default=8, help="workload random seed")
    parser.add_argument(
        "--target-files",
        type=int,
        default=None,
        help="files kept in the tree at steady state (default: events / 25, at most 20,000,"
        " so that the population is reached early in the run)",
    )
    parser.add_argument(
        "--rate",
        type=float,
        default=0.0,
        help="most events per second to generate (default 0: as fast as the pipeline keeps up)",
    )
    parser.add_argument("--quiet", default="200ms", help="debounce quiet period (default 200ms)")
    parser.add_argument(
        "--max-lag",
        type=int,
        default=5000,
        help="events the generator may be ahead of the source (default 5000)",
    )
    parser.add_argument(
        "--drain-timeout",
        type=float,
        default=300.0,
        help="seconds to wait for the pipeline to settle at the end",
    )
    parser.add_argument("--results", type=Path, default=RESULTS, help="output folder")
    parser.add_argument(
        "--keep",
        action="store_true",
        help="keep the scratch folder (tree, logs, ledger) for inspection",
    )
    parser.add_argument(
        "--no-install",
        action="store_true",
        help="do not pip install bench/soak/requirements.txt when missing",
    )
    return parser.parse_args()


def main() -> int:
    args = parse_args()
    if args.target_files is None:
        args.target_files = max(100, min(20_000, args.events // 25))
    ensure_requirements(not args.no_install)
    _stop_on_sigterm()
    args.dir.mkdir(parents=True, exist_ok=True)
    clean_stale_runs(args.dir)
    args.results.mkdir(parents=True, exist_ok=True)
    scratch = args.dir / f"{SCRATCH_PREFIX}{os.getpid()}"
    scratch.mkdir()
    (scratch / PIDS_FILE).write_text(f"{os.getpid()}\n")
    from soak import Soak  # after the requirements are in place: it imports matplotlib

    soak = Soak(scratch, args, facts={"args": as_dict(args), "machine": machine_facts()})
    try:
        return soak.run()
    finally:
        soak.cleanup()
        if not args.keep:
            shutil.rmtree(scratch, ignore_errors=True)
        else:
            print(f"kept {scratch}")


def machine_facts() -> dict[str, Any]:
    return {
        "python": platform.python_version(),
        "kernel": platform.release(),
        "cpus": os.cpu_count(),
        "loadavg_at_start": os.getloadavg(),
    }


def as_dict(namespace: argparse.Namespace) -> dict[str, Any]:
    return {k: str(v) if isinstance(v, Path) else v for k, v in vars(namespace).items()}


if __name__ == "__main__":
    sys.exit(main())
