"""Runs the `pipeline` command as a user would: a subprocess, read line by line."""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import IO

PIPELINE = str(Path(sys.executable).with_name("pipeline"))
REPO = Path(__file__).resolve().parents[2]


def pipeline(
    *args: str, cwd: Path | None = None, timeout: float = 60, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run `pipeline ARGS…` to completion (`env`: variables added to this environment)."""
    return subprocess.run(
        [PIPELINE, *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        env={**os.environ, **env} if env else None,
    )


class Background:
    """`pipeline ARGS…` running in the background, its stdout and stderr collected by threads."""

    def __init__(self, *args: str, cwd: Path, env: dict[str, str] | None = None) -> None:
        self.proc = subprocess.Popen(
            [PIPELINE, "--log-format", "json", *args],
            cwd=cwd,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env={**os.environ, **(env or {})},
        )
        self.stdout: queue.Queue[bytes] = queue.Queue()
        self.stderr_lines: list[bytes] = []
        self._ready = threading.Event()
        assert self.proc.stdout is not None and self.proc.stderr is not None
        threading.Thread(target=self._pump, args=(self.proc.stdout, None), daemon=True).start()
        threading.Thread(target=self._pump, args=(self.proc.stderr, 1), daemon=True).start()

    def _pump(self, stream: IO[bytes], is_err: int | None) -> None:
        for line in iter(stream.readline, b""):
            if is_err:
                self.stderr_lines.append(line)
                if b"running; press Ctrl-C" in line:
                    self._ready.set()
            else:
                self.stdout.put(line)

    @property
    def stderr(self) -> str:
        return b"".join(self.stderr_lines).decode("utf-8", "replace")

    def wait_ready(self, timeout: float = 30) -> None:
        if not self._ready.wait(timeout):
            self.proc.kill()
            raise AssertionError(f"pipeline did not become ready; stderr:\n{self.stderr}")

    def lines(self, count: int, timeout: float = 15) -> list[bytes]:
        """The next `count` lines of stdout (fails with what came if they do not)."""
        got: list[bytes] = []
        deadline = time.monotonic() + timeout
        while len(got) < count:
            try:
                got.append(self.stdout.get(timeout=max(0.01, deadline - time.monotonic())))
            except queue.Empty:
                raise AssertionError(
                    f"expected {count} lines, got {got}; stderr:\n{self.stderr}"
                ) from None
        return got

    def quiet(self, seconds: float = 0.5) -> list[bytes]:
        """Lines that arrive within `seconds` (to check that nothing more came)."""
        time.sleep(seconds)
        extra = []
        while not self.stdout.empty():
            extra.append(self.stdout.get())
        return extra

    def interrupt(self, timeout: float = 20) -> int:
        """Send SIGINT (Ctrl-C) and return the exit code."""
        self.proc.send_signal(signal.SIGINT)
        try:
            return self.proc.wait(timeout)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
