"""What one scan of the `poll` source costs on a big tree: CPU seconds per scan.

Builds a tree of files (default 100,000 one-byte files, 500 per folder, two levels of
folders) in a scratch folder, starts a real `poll` source on it (its first scan is the
start-up scan) and times further scans: with nothing changed, then with 1% of the files
changed before each scan (a third rewritten, a third deleted, a third new, spread over
every folder). CPU is the process's user + system time across all threads (the scan
runs in its own thread). Each changed scan's events are checked against what was done,
so a fast wrong scan shows. The tree is left alone for a few seconds before the timed
scans: the poller lists a folder again while its times are fresh (see `RACY_NS` in
pipeline/sources/snapshot.py), as a tree that has been sitting there would not need.

    .venv/bin/python bench/poll.py                    # 100,000 files on tmpfs
    .venv/bin/python bench/poll.py --dir /tmp         # on the root file system
    .venv/bin/python bench/poll.py --files 20000 --scans 3
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import random
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import structlog

from pipeline import ComponentContext, Event
from pipeline.sources.poll import PollOptions, PollSource

FANOUT = 20
"""Subfolders per top folder."""
SETTLE = 3.5
"""Seconds between building the tree and the first scan."""


def build(root: Path, files: int, per_folder: int) -> list[Path]:
    """Make the tree; return its leaf folders."""
    leaves: list[Path] = []
    folders = max(1, -(-files // per_folder))
    for index in range(folders):
        leaf = root / f"d{index // FANOUT:03d}" / f"s{index % FANOUT:02d}"
        leaf.mkdir(parents=True, exist_ok=True)
        leaves.append(leaf)
    for number in range(files):
        leaf = leaves[number % folders]
        fd = os.open(leaf / f"f{number:07d}", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        os.write(fd, b"x")
        os.close(fd)
    return leaves


class Churn:
    """Changes a share of the files before a scan, and says what a scan should report."""

    def __init__(self, leaves: list[Path], files: int) -> None:
        self.leaves = leaves
        self.names = [str(leaves[n % len(leaves)] / f"f{n:07d}") for n in range(files)]
        self.next_new = files
        self.pick = random.Random(1)  # the same changes in every run

    def apply(self, share: float) -> dict[str, set[str]]:
        count = max(3, int(len(self.names) * share))
        picked = self.pick.sample(range(len(self.names)), count)
        rewrite, delete = picked[: count // 3], picked[count // 3 : 2 * count // 3]
        expected: dict[str, set[str]] = {"modified": set(), "deleted": set(), "created": set()}
        for number in rewrite:
            with open(self.names[number], "ab") as handle:
                handle.write(b"y")
            expected["modified"].add(self.names[number])
        for number in sorted(delete, reverse=True):  # swap-remove: the last moves in
            os.unlink(self.names[number])
            expected["deleted"].add(self.names[number])
            self.names[number] = self.names[-1]
            self.names.pop()
        for _ in range(count - len(rewrite) - len(delete)):
            leaf = self.leaves[self.next_new % len(self.leaves)]
            path = str(leaf / f"n{self.next_new:07d}")
            self.next_new += 1
            with open(path, "xb") as handle:
                handle.write(b"z")
            self.names.append(path)
            expected["created"].add(path)
        return expected


def rss_mib() -> float:
    with open("/proc/self/statm") as handle:
        pages = int(handle.read().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


async def measure(args: argparse.Namespace, root: Path, leaves: list[Path]) -> None:
    options = PollOptions.model_validate(
        {"paths": [str(root)], "interval": "1s"}, context={"config_dir": root}
    )
    context = ComponentContext(
        pipeline="bench",
        label="bench.sources[0]",
        config_dir=root,
        state_dir=None,
        log=structlog.get_logger("bench"),
    )
    source = PollSource(options, context)
    events: list[Event] = []

    async def emit(event: Event) -> None:
        events.append(event)

    async def timed(action: Callable[[], object]) -> tuple[float, float]:
        cpu, wall = time.process_time(), time.perf_counter()
        result = action()
        if asyncio.iscoroutine(result):
            await result
        return time.process_time() - cpu, time.perf_counter() - wall

    rss_before = rss_mib()
    start_cpu, start_wall = await timed(source.open)
    print(
        f"start-up scan: {start_cpu:.3f} s CPU, {start_wall:.3f} s wall; "
        f"snapshot RSS +{rss_mib() - rss_before:.0f} MiB"
    )
    idle: list[float] = []
    for _ in range(args.scans):
        cpu, _wall = await timed(lambda: source.poll(emit))
        idle.append(cpu)
    if events:
        raise SystemExit(f"bench: an unchanged tree reported {len(events)} events")
    churn = Churn(leaves, args.files)
    changed: list[float] = []
    for _ in range(args.scans):
        expected = churn.apply(args.share)
        events.clear()
        cpu, _wall = await timed(lambda: source.poll(emit))
        changed.append(cpu)
        got: dict[str, set[str]] = {kind: set() for kind in expected}
        for event in events:
            got.setdefault(event.kind.value, set()).add(event.path)
        if got != expected:
            wrong = {k: len(got.get(k, set()) ^ v) for k, v in expected.items()}
            raise SystemExit(f"bench: a scan reported the wrong changes (mismatches: {wrong})")
    await source.close()
    files = args.files
    for label, figures in (("no change", idle), (f"{args.share:.0%} changed", changed)):
        median = statistics.median(figures)
        print(
            f"{label:>12}: {median:.3f} s CPU per scan of {files:,} files "
            f"({median / files * 1000 * 1000:.2f} ms per 1,000 files; "
            f"min {min(figures):.3f}, max {max(figures):.3f}, {len(figures)} scans)"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=100_000, help="files in the tree")
    parser.add_argument("--per-folder", type=int, default=500, help="files per leaf folder")
    parser.add_argument("--scans", type=int, default=5, help="timed scans of each kind")
    parser.add_argument("--share", type=float, default=0.01, help="share changed per scan")
    parser.add_argument("--dir", default="/dev/shm", help="where the scratch tree goes")
    args = parser.parse_args()
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    scratch = Path(tempfile.mkdtemp(prefix="fsp-pollbench-", dir=args.dir))
    try:
        started = time.perf_counter()
        leaves = build(scratch / "tree", args.files, args.per_folder)
        print(
            f"tree: {args.files:,} files in {len(leaves)} folders under {args.dir} "
            f"(built in {time.perf_counter() - started:.1f} s); Python {sys.version.split()[0]}"
        )
        time.sleep(SETTLE)
        asyncio.run(measure(args, scratch / "tree", leaves))
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
