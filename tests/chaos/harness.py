"""What every chaos scenario needs: `pipeline run` processes to start, kill and read,
files written while they run, and an Outcome that collects problems and figures."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

PIPELINE = str(Path(sys.executable).with_name("pipeline"))
READY = "running; press Ctrl-C to stop"


@dataclasses.dataclass
class Outcome:
    """What a scenario found: problems (none means it passed) and figures to report."""

    scenario: str
    problems: list[str] = dataclasses.field(default_factory=list)
    figures: dict[str, Any] = dataclasses.field(default_factory=dict)
    evidence: list[str] = dataclasses.field(default_factory=list)
    """Log excerpts that explain a failure."""

    @property
    def ok(self) -> bool:
        return not self.problems

    def check(self, condition: bool, problem: str) -> bool:
        if not condition:
            self.problems.append(problem)
        return condition

    def explain(self) -> str:
        lines = [f"chaos scenario {self.scenario!r}:"]
        lines += [f"  problem: {p}" for p in self.problems]
        lines += [f"  {k} = {v}" for k, v in self.figures.items()]
        lines += ["  evidence:", *(f"    {e}" for e in self.evidence[-40:])]
        return "\n".join(lines)


def wait_until(condition: Callable[[], bool], timeout: float, poll: float = 0.05) -> float | None:
    """Seconds until `condition()` held, or None if it did not within `timeout`."""
    start = time.monotonic()
    while not condition():
        if time.monotonic() - start > timeout:
            return None
        time.sleep(poll)
    return time.monotonic() - start


def write_file(path: Path, data: bytes = b"x\n") -> None:
    """Create (or rewrite) a file with one open/write/close: one closed_write event."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        os.write(fd, data)
    finally:
        os.close(fd)


def logged_paths(*logs: Path) -> list[str]:
    """`data.path` of every CloudEvents line in logfile sink outputs (a torn line skipped)."""
    paths: list[str] = []
    for log in logs:
        with contextlib.suppress(FileNotFoundError):
            for line in log.read_bytes().splitlines():
                with contextlib.suppress(ValueError, KeyError, TypeError):
                    paths.append(json.loads(line)["data"]["path"])
    return paths


def listed_paths(path: Path) -> list[str]:
    """One path a line, as the scenarios' target scripts append them."""
    with contextlib.suppress(FileNotFoundError):
        return path.read_text().splitlines()
    return []


class Run:
    """One `pipeline --log-format json run` process; its stderr goes to a file, so it can
    be read after a kill -9 and raw (non-JSON) lines such as tracebacks are kept."""

    def __init__(self, workdir: Path, name: str, env: dict[str, str] | None = None) -> None:
        self.workdir = workdir
        self.stderr_path = workdir / f"{name}.stderr"
        self.env = {**os.environ, **(env or {})}
        self.proc: subprocess.Popen[bytes] | None = None
        self.started = 0.0

    def start(self, config: str = "config.yaml") -> Run:
        with self.stderr_path.open("wb") as stderr:
            self.proc = subprocess.Popen(
                [PIPELINE, "--log-format", "json", "run", "--no-reload", config],
                cwd=self.workdir,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=stderr,
                env=self.env,
            )
        self.started = time.monotonic()
        return self

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def text(self) -> str:
        with contextlib.suppress(FileNotFoundError):
            return self.stderr_path.read_text(errors="replace")
        return ""

    def records(self) -> list[dict[str, Any]]:
        """The JSON log lines; any other line comes as {"raw": line}."""
        found: list[dict[str, Any]] = []
        for line in self.text().splitlines():
            try:
                record = json.loads(line)
            except ValueError:
                record = None
            found.append(record if isinstance(record, dict) else {"raw": line})
        return found

    def logged(self, message: str) -> list[dict[str, Any]]:
        """The log records whose message (`event`) contains `message`."""
        return [r for r in self.records() if message in str(r.get("event", ""))]

    def wait_logged(self, message: str, timeout: float) -> float | None:
        """Seconds from start until `message` was logged; None if it was not within
        `timeout` or the process ended without logging it."""
        waited = wait_until(lambda: message in self.text() or not self.alive, timeout)
        if waited is None or not self.logged(message):
            return None
        return time.monotonic() - self.started

    def wait_ready(self, timeout: float = 60) -> float | None:
        """Seconds from start to ready, or None if it did not get ready (or died)."""
        return self.wait_logged(READY, timeout)

    def kill9(self) -> None:
        if self.alive:
            assert self.proc is not None
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def interrupt(self, timeout: float = 30) -> tuple[int | None, float]:
        """Ctrl-C: the exit code (None if it did not exit in time) and how long it took."""
        assert self.proc is not None
        start = time.monotonic()
        if self.alive:
            self.proc.send_signal(signal.SIGINT)
        try:
            code: int | None = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            code = None
        return code, time.monotonic() - start

    def stop(self) -> None:
        """Kill it if it still runs (the cleanup of every scenario)."""
        self.kill9()

    def evidence(self, lines: int = 15) -> list[str]:
        return [f"[{self.stderr_path.name}] {line[:300]}" for line in self.text().splitlines()][
            -lines:
        ]


@contextlib.contextmanager
def running(runs: list[Run]) -> Iterator[list[Run]]:
    """Kill every run of `runs` still alive at the end, whatever happened."""
    try:
        yield runs
    finally:
        for run in runs:
            run.stop()


class Writer:
    """Creates files `PREFIXnnnnnn.csv` in `folder` from a thread, in random bursts, until
    stopped; `created` lists every file whose write completed."""

    def __init__(
        self,
        folder: Path,
        rng: random.Random,
        *,
        burst: tuple[int, int] = (1, 40),
        pause: tuple[float, float] = (0.01, 0.15),
        prefix: str = "f",
    ) -> None:
        self.folder = folder
        self.rng = rng
        self.burst = burst
        self.pause = pause
        self.prefix = prefix
        self.created: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._write, name="chaos-writer", daemon=True)

    def start(self) -> Writer:
        self._thread.start()
        return self

    def stop(self) -> list[str]:
        self._stop.set()
        self._thread.join(30)
        return list(self.created)

    def _write(self) -> None:
        while not self._stop.is_set():
            for _ in range(self.rng.randint(*self.burst)):
                path = self.folder / f"{self.prefix}{len(self.created):06d}.csv"
                write_file(path)
                self.created.append(str(path))
            self._stop.wait(self.rng.uniform(*self.pause))


@contextlib.contextmanager
def mounted(*args: str) -> Iterator[None]:
    """`mount ARGS…` (the last one is the mount point), unmounted at the end."""
    subprocess.run(["mount", *args], check=True, capture_output=True, timeout=30)
    try:
        yield
    finally:
        subprocess.run(["umount", "-l", args[-1]], check=False, capture_output=True, timeout=30)
