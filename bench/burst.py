"""Quick burst check of `pipeline watch` alone; bench/run.py compares it with its peers.

    .venv/bin/python bench/burst.py [--files 100000] [--dir /dev/shm] [--source inotify]

N files written and closed into one tmpfs folder by the benchmark's writer (its own
process), the watcher on its own CPU; prints one line: how many files were reported, how
fast, how many were lost, and how fast the writer went.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
from pathlib import Path

from contenders import pipeline_contender, warm_up
from harness import WATCHER_CPU, Cleanup, pinning_possible
from workloads import FULL, Context, burst
from writing import Writer


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--files", type=int, default=100_000)
    parser.add_argument("--dir", default="/dev/shm")
    parser.add_argument("--source", default="inotify", help="pipeline source type")
    args = parser.parse_args()
    warm_up()
    pin = pinning_possible()
    if pin:
        os.sched_setaffinity(0, {0})
    cleanup = Cleanup()
    try:
        base = cleanup.temp_dir(Path(args.dir), f"fsbench-{os.getpid()}")
        sizes = dataclasses.replace(FULL, burst_files=args.files)
        writer = Writer({0} if pin else None)
        context = Context(base, sizes, writer, cleanup, {WATCHER_CPU} if pin else None)
        got = burst(context, pipeline_contender(args.source))
    finally:
        cleanup.close()
    lost, seconds = int(got["lost"] or 0), float(got["seconds"] or 0.0)
    print(
        f"files={args.files} reported={args.files - lost} lost={lost} "
        f"write_s={args.files / float(got['writer_files_per_s'] or 1):.2f} total_s={seconds:.2f} "
        f"events_per_s={float(got['files_per_s'] or 0):,.0f} "
        f"writer_per_s={float(got['writer_files_per_s'] or 0):,.0f}"
    )


if __name__ == "__main__":
    main()
