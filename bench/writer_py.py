"""The file writer in Python, for machines without a C compiler (same CLI as writer.c).

    python writer_py.py burst DIR COUNT
    python writer_py.py steady DIR COUNT INTERVAL_US

A tight os.open/os.write/os.close loop: about 60-70k files/s on tmpfs, against about
110k/s for writer.c, so with it a burst measures the writer as much as the watcher.
"""

from __future__ import annotations

import os
import sys
import time

FLAGS = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC


def burst(folder: str, count: int) -> None:
    names = [f"{folder}/f{i:06d}" for i in range(count)]
    open_, write, close = os.open, os.write, os.close
    start = time.monotonic_ns()
    for name in names:
        fd = open_(name, FLAGS, 0o644)
        write(fd, b"x")
        close(fd)
    print(start, time.monotonic_ns(), count)


def steady(folder: str, count: int, interval_us: int) -> None:
    closed: list[int] = []
    start = time.monotonic_ns()
    for i in range(count):
        delay = start + i * interval_us * 1000 - time.monotonic_ns()
        if delay > 0:
            time.sleep(delay / 1e9)
        fd = os.open(f"{folder}/f{i:06d}", FLAGS, 0o644)
        os.write(fd, b"x")
        closed.append(time.monotonic_ns())
        os.close(fd)
    print(start, time.monotonic_ns(), count)
    print("\n".join(map(str, closed)))


def main() -> int:
    mode, folder, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
    if mode == "burst":
        burst(folder, count)
    elif mode == "steady":
        steady(folder, count, int(sys.argv[4]))
    else:
        print(f"writer: unknown mode {mode}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
