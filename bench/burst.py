"""Burst benchmark: N files written and closed in a tmpfs folder while `pipeline watch` runs.

Reports how many `closed_write` events arrived on stdout, how fast, and how many were lost.

    .venv/bin/python bench/burst.py --files 100000 [--dir /dev/shm]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

PIPELINE = str(Path(sys.executable).with_name("pipeline"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--files", type=int, default=100_000)
    parser.add_argument("--dir", default="/dev/shm")
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="fsp-burst-", dir=args.dir))
    try:
        proc = subprocess.Popen(
            [PIPELINE, "--log-format", "json", "watch", str(root), "--events", "closed_write"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        assert proc.stdout and proc.stderr
        ready = threading.Event()

        def read_stderr() -> None:
            for line in iter(proc.stderr.readline, b""):  # type: ignore[union-attr]
                if b"running; press Ctrl-C" in line:
                    ready.set()

        threading.Thread(target=read_stderr, daemon=True).start()
        if not ready.wait(30):
            raise SystemExit("pipeline watch did not start")
        seen: set[str] = set()
        last = [0.0]

        def read_stdout() -> None:
            for line in iter(proc.stdout.readline, b""):  # type: ignore[union-attr]
                seen.add(json.loads(line)["data"]["path"])
                last[0] = time.perf_counter()

        reader = threading.Thread(target=read_stdout, daemon=True)
        reader.start()
        start = time.perf_counter()
        for i in range(args.files):
            fd = os.open(root / f"f{i:07d}", os.O_WRONLY | os.O_CREAT, 0o644)
            os.write(fd, b"x")
            os.close(fd)
        written = time.perf_counter()
        deadline = time.monotonic() + 60
        while len(seen) < args.files and time.monotonic() < deadline:
            quiet_since = time.perf_counter() - max(last[0], written)
            if quiet_since > 3:
                break
            time.sleep(0.05)
        elapsed = max(last[0], written) - start
        proc.send_signal(2)
        proc.wait(30)
        print(
            f"files={args.files} reported={len(seen)} lost={args.files - len(seen)} "
            f"write_s={written - start:.2f} total_s={elapsed:.2f} "
            f"events_per_s={len(seen) / elapsed:,.0f}"
        )
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
