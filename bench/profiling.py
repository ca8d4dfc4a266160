"""Profile `pipeline watch` (inotify source) with py-spy: during a burst, or while starting.

    .venv/bin/python bench/profiling.py burst [--files 100000]
    .venv/bin/python bench/profiling.py startup [--dirs 50000]

`burst` attaches to a ready watcher and samples it while the writer creates the files
(and until it has printed the last event); `startup` runs the watcher under py-spy from
exec until it says it is ready on a many-folder tree. Prints the functions with the most
samples, by self time and including callees, and writes the collapsed stacks to
bench/results/profile-<mode>.txt (flamegraph.pl and speedscope read them).
Assumes bench/requirements.txt is installed (bench/run.py installs it).
"""

from __future__ import annotations

import argparse
import collections
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

from contenders import PIPELINE, PIPELINE_READY, parse_cloudevent
from harness import WATCHER_CPU, Cleanup, Watcher, on_cpus, pinning_possible
from report import RESULTS
from snapshot import freeze
from writing import Writer

PY_SPY = str(Path(sys.executable).with_name("py-spy"))
LINE_NUMBER = re.compile(r":\d+\)$")


def top_functions(raw: str, top: int) -> str:
    """Self and inclusive sample shares per function from py-spy's collapsed stacks."""
    own: collections.Counter[str] = collections.Counter()
    total: collections.Counter[str] = collections.Counter()
    samples = 0
    for line in raw.splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack:
            continue
        count = int(count_text)
        frames = [LINE_NUMBER.sub(")", frame) for frame in stack.split(";")]
        samples += count
        own[frames[-1]] += count
        for frame in set(frames):
            total[frame] += count
    lines = [f"{samples} samples (idle excluded)", "", "self %  function (file)"]
    lines += [f"{n / samples:6.1%}  {name}" for name, n in own.most_common(top)]
    lines += ["", "total %  function (file), including what it calls"]
    lines += [f"{n / samples:6.1%}  {name}" for name, n in total.most_common(top)]
    return "\n".join(lines)


def _spy(argv: list[str], output: Path, cleanup: Cleanup) -> subprocess.Popen[bytes]:
    command = [PY_SPY, "record", "--rate", "1000", "--format", "raw", "-o", str(output), *argv]
    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, start_new_session=True)
    cleanup.track(proc)
    return proc


def _finish(spy: subprocess.Popen[bytes], cleanup: Cleanup) -> None:
    spy.send_signal(signal.SIGINT)  # py-spy writes its output on Ctrl-C
    spy.wait(30)
    cleanup.untrack(spy)


def profile_burst(base: Path, files: int, cleanup: Cleanup, cpus: set[int] | None) -> Path:
    root = cleanup.temp_dir(base, "burst")
    argv = [PIPELINE, "--log-format", "json", "watch", str(root), "--events", "closed_write"]
    watcher = Watcher(
        "pipeline", argv, parse_cloudevent, cleanup, PIPELINE_READY, cpus=cpus, read_pause=0.002
    )
    output = RESULTS / "profile-burst.txt"
    watcher.start()
    try:
        watcher.wait_signal(60)
        spy = _spy(["--nonblocking", "--pid", str(watcher.proc.pid)], output, cleanup)
        time.sleep(1.0)  # py-spy attaches
        written = Writer({0} if cpus else None).burst(root, files, timeout=120)
        watcher.wait_quiet(written.end_ns, 1.0, 60)
        _finish(spy, cleanup)
        reported = len(watcher.first_arrivals())
        print(
            f"burst: {files:,} files written at {written.files_per_s:,.0f}/s, {reported:,} reported"
        )
    finally:
        watcher.stop()
    return output


def profile_startup(base: Path, dirs: int, cleanup: Cleanup, cpus: set[int] | None) -> Path:
    root = cleanup.temp_dir(base, "tree")
    for i in range(50):
        for j in range(dirs // 50 - 1):
            (root / f"d{i:03d}" / f"s{j:04d}").mkdir(parents=True)
    output = RESULTS / "profile-startup.txt"
    argv = [PIPELINE, "--log-format", "json", "watch", str(root), "--events", "closed_write"]
    command = [PY_SPY, "record", "--rate", "1000", "--format", "raw", "-o", str(output), "--"]
    watcher = Watcher("pipeline", [*command, *argv], parse_cloudevent, cleanup, PIPELINE_READY)
    with on_cpus(cpus):
        watcher.start()
    try:
        began = time.monotonic()
        watcher.wait_signal(120)
        print(f"startup: ready after {time.monotonic() - began:.2f} s under py-spy ({dirs:,} dirs)")
        watcher.proc.send_signal(signal.SIGINT)
        watcher.proc.wait(30)
    finally:
        watcher.stop()
    return output


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("mode", choices=("burst", "startup"))
    parser.add_argument("--files", type=int, default=100_000, help="files in the burst")
    parser.add_argument("--dirs", type=int, default=50_000, help="folders in the startup tree")
    parser.add_argument("--top", type=int, default=25, help="functions listed")
    parser.add_argument("--dir", default="/dev/shm", help="where the scratch folder goes")
    args = parser.parse_args()
    if shutil.which(PY_SPY) is None:
        print("bench: py-spy is missing: pip install -r bench/requirements.txt", file=sys.stderr)
        return 2
    cpus = {WATCHER_CPU} if pinning_possible() else None
    cleanup = Cleanup()
    try:
        base = cleanup.temp_dir(Path(args.dir), "fsbench-profile")
        print(f"profiling a copy of pipeline/ with sha256 {freeze(base)} (see bench/snapshot.py)")
        RESULTS.mkdir(exist_ok=True)
        if args.mode == "burst":
            output = profile_burst(base, args.files, cleanup, cpus)
        else:
            output = profile_startup(base, args.dirs, cleanup, cpus)
    finally:
        cleanup.close()
    print(top_functions(output.read_text(), args.top))
    print(f"\ncollapsed stacks: {output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
