"""Runs the file writer in its own process: writer.c when a C compiler exists, else Python."""

from __future__ import annotations

import dataclasses
import shutil
import subprocess
import sys
from pathlib import Path

from harness import on_cpus

HERE = Path(__file__).resolve().parent
SOURCE = HERE / "writer.c"
BUILT = HERE / ".build" / "writer"


@dataclasses.dataclass(frozen=True)
class Written:
    """What the writer did: monotonic start/end (ns) and, for `steady`, each close time."""

    start_ns: int
    end_ns: int
    count: int
    closed_ns: tuple[int, ...] = ()

    @property
    def files_per_s(self) -> float:
        return self.count / max(self.end_ns - self.start_ns, 1) * 1e9


class Writer:
    """The writer program, built once; `kind` says which one ("c" or "python")."""

    def __init__(self, cpus: set[int] | None = None) -> None:
        self.cpus = cpus
        compiler = shutil.which("cc") or shutil.which("gcc")
        if compiler is not None and _build(compiler):
            self.argv = [str(BUILT)]
            self.kind = "c"
        else:
            self.argv = [sys.executable, str(HERE / "writer_py.py")]
            self.kind = "python"

    def burst(self, folder: Path, count: int, timeout: float) -> Written:
        """Create `count` files (written and closed) in `folder` as fast as possible."""
        return self._run(["burst", str(folder), str(count)], timeout)

    def steady(self, folder: Path, count: int, interval_us: int, timeout: float) -> Written:
        """Create `count` files one at a time, `interval_us` apart; record each close."""
        return self._run(["steady", str(folder), str(count), str(interval_us)], timeout)

    def _run(self, args: list[str], timeout: float) -> Written:
        with on_cpus(self.cpus):
            done = subprocess.run(
                [*self.argv, *args], capture_output=True, text=True, timeout=timeout, check=False
            )
        if done.returncode != 0:
            raise RuntimeError(f"writer failed ({done.returncode}): {done.stderr.strip()}")
        lines = done.stdout.split()
        start, end, count = int(lines[0]), int(lines[1]), int(lines[2])
        return Written(start, end, count, tuple(int(t) for t in lines[3:]))


def _build(compiler: str) -> bool:
    if BUILT.exists() and BUILT.stat().st_mtime >= SOURCE.stat().st_mtime:
        return True
    BUILT.parent.mkdir(exist_ok=True)
    done = subprocess.run(
        [compiler, "-O2", "-Wall", "-o", str(BUILT), str(SOURCE)],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        print(f"bench: cannot build writer.c, using Python: {done.stderr}", file=sys.stderr)
    return done.returncode == 0
