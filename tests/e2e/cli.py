"""Runs the `pipeline` command as a user would: a subprocess, read line by line."""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable
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

    def wait_for(
        self,
        condition: Callable[[], object],
        timeout: float,
        what: str | Callable[[], str],
        *,
        every: float = 0.05,
    ) -> None:
        """Poll `condition` every `every` s while this pipeline runs; fail, saying `what`
        did not happen (a function: evaluated then) with the end of stderr, if the
        pipeline exits first or `timeout` s pass."""
        deadline = time.monotonic() + timeout
        while not condition():
            code = self.proc.poll()
            if code is not None or time.monotonic() > deadline:
                said = what() if callable(what) else what
                why = f"the pipeline exited with {code}" if code is not None else f"{timeout:g}s"
                raise AssertionError(f"{said} ({why}); stderr:\n{self.stderr[-5000:]}")
            time.sleep(every)

    def interrupt(self, timeout: float = 20) -> int:
        """Send SIGINT (Ctrl-C) and return the exit code."""
        self.proc.send_signal(signal.SIGINT)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)
            raise AssertionError(
                f"pipeline did not stop within {timeout:g}s of Ctrl-C; "
                f"stderr:\n{self.stderr[-5000:]}"
            ) from None


def start_run(folder: Path, config: str, *, env: dict[str, str] | None = None) -> Background:
    """`pipeline run config.yaml` in `folder` with `config` written there, once ready."""
    (folder / "config.yaml").write_text(config)
    running = Background("run", "config.yaml", cwd=folder, env=env)
    running.wait_ready()
    return running


def inbox_config(
    sink: str,
    *,
    pipeline: str = "landing",
    events: str = "closed_write",
    state_dir: bool = False,
    more: str = "",
) -> str:
    """A config whose pipeline `pipeline` watches the folder `inbox` (inotify, `events`
    comma-separated) into one sink, given as its YAML mapping (`type: …` and its options,
    one a line); `more`: further pipelines, as YAML (`name:` then its keys)."""
    sink_lines = textwrap.indent(textwrap.dedent(sink).strip(), " " * 8)[8:]
    other_pipelines = textwrap.indent(textwrap.dedent(more).strip(), "  ")
    head = "state_dir: state\n" if state_dir else ""
    return (
        f"{head}pipelines:\n"
        f"  {pipeline}:\n"
        "    sources:\n"
        "      - type: inotify\n"
        "        paths: [inbox]\n"
        f"        events: [{events}]\n"
        "    sinks:\n"
        f"      - {sink_lines}\n" + (f"{other_pipelines}\n" if more else "")
    )


def rss_kib(pid: int) -> int:
    """The resident memory of process `pid`, in KiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError(f"no VmRSS for process {pid}")
