"""The status of `pipeline run`: a live table on a terminal, a summary line in a log."""

from __future__ import annotations

import fcntl
import os
import pty
import signal
import struct
import subprocess
import termios
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pyte
import pytest

from tests.e2e.cli import PIPELINE, Background
from tests.e2e.test_http_endpoint import NO_PLUGINS, landing, log_records, wait_until

pytestmark = pytest.mark.e2e

COLUMNS, ROWS = 140, 40


class Terminal:
    """`pipeline ARGS…` on a pseudo-terminal, its output drawn by a terminal emulator."""

    def __init__(self, *args: str, cwd: Path) -> None:
        controller, terminal = pty.openpty()
        fcntl.ioctl(terminal, termios.TIOCSWINSZ, struct.pack("HHHH", ROWS, COLUMNS, 0, 0))
        env = {**os.environ, **NO_PLUGINS, "TERM": "xterm-256color"}
        env.pop("COLUMNS", None)
        env.pop("LINES", None)
        self.proc = subprocess.Popen(
            [PIPELINE, *args], cwd=cwd, stdin=terminal, stdout=terminal, stderr=terminal,
            env=env, start_new_session=True,
        )  # fmt: skip
        os.close(terminal)
        self.screen = pyte.Screen(COLUMNS, ROWS)
        self._stream = pyte.ByteStream(self.screen)
        self._lock = threading.Lock()
        self._controller = controller
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self) -> None:
        while True:
            try:
                chunk = os.read(self._controller, 65536)
            except OSError:
                return  # the process closed the terminal
            if not chunk:
                return
            with self._lock:
                self._stream.feed(chunk)

    def lines(self) -> list[str]:
        with self._lock:
            return [line.rstrip() for line in self.screen.display]

    def wait_for(self, condition: Callable[[list[str]], bool], what: str) -> list[str]:
        deadline = time.monotonic() + 20
        while not condition(lines := self.lines()):
            if time.monotonic() > deadline:
                raise AssertionError(f"{what}: not on screen within 20 s:\n" + "\n".join(lines))
            time.sleep(0.05)
        return lines

    def interrupt(self) -> int:
        self.proc.send_signal(signal.SIGINT)
        try:
            return self.proc.wait(20)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()


def row_of(lines: list[str], name: str) -> list[str]:
    """The cells of the table row of component `name` (e.g. `sinks[0]`)."""
    [row] = [line.split() for line in lines if line.strip().startswith(name)]
    return row


def test_on_a_terminal_a_live_table_counts_while_logs_and_events_scroll_above(
    tmp_path: Path,
) -> None:
    config, inbox, _ = landing(tmp_path)
    config.write_text(config.read_text() + "      - {type: console}\n")
    term = Terminal("run", str(config), cwd=tmp_path)
    term.wait_for(lambda lines: any("ready" in line and "up " in line for line in lines), "table")
    for number in range(6):
        (inbox / f"file{number}.csv").write_text("x")
    lines = term.wait_for(
        lambda lines: "6" in row_of(lines, "sinks[1]")[3:4], "6 deliveries to the console sink"
    )
    assert row_of(lines, "sources[0]")[:4] == ["sources[0]", "inotify", "-", "6"]
    assert row_of(lines, "stages[0]")[:4] == ["stages[0]", "filter", "6", "6"]
    assert row_of(lines, "sinks[0]")[:4] == ["sinks[0]", "logfile", "6", "6"]
    table_top = next(i for i, line in enumerate(lines) if line.startswith("fspipeline "))
    above = "\n".join(lines[:table_top])
    assert "running; press Ctrl-C to stop" in above  # the log, not torn by the table
    assert all(f"file{number}.csv" in above for number in range(6))  # the console sink
    assert sum(line.startswith("fspipeline ") for line in lines) == 1  # drawn once, in place
    assert term.interrupt() == 0
    lines = term.lines()
    assert "stopped" in "\n".join(lines)
    assert row_of(lines, "sinks[0]")[:4] == ["sinks[0]", "logfile", "6", "6"]  # left at exit


def test_without_a_terminal_a_summary_line_is_logged_at_each_interval(tmp_path: Path) -> None:
    config, inbox, log = landing(tmp_path)
    run = Background("run", "--status-interval", "1s", str(config), cwd=tmp_path, env=NO_PLUGINS)
    run.wait_ready()
    for number in range(4):
        (inbox / f"{number}.csv").write_text("x")
    wait_until(lambda: log.exists() and len(log.read_text().splitlines()) == 4, "4 deliveries")

    def delivered_in_a_status_line() -> bool:
        lines = [r for r in log_records(run) if r.get("event") == "status"]
        return any(r["components"]["landing.sinks[0]"]["delivered"] == 4 for r in lines)  # type: ignore[index]

    wait_until(delivered_in_a_status_line, "a status line counting 4 deliveries", 10)
    assert run.interrupt() == 0
    status = [r for r in log_records(run) if r.get("event") == "status"]
    assert status[0]["ready"] is True
    assert status[-1]["final"] is True
    final: dict[str, dict[str, object]] = status[-1]["components"]  # type: ignore[assignment]
    assert all(isinstance(numbers.pop("rate"), float) for numbers in final.values())
    assert final == {
        "landing.sources[0]": {"type": "inotify", "out": 4},
        "landing.stages[0]": {"type": "filter", "in": 4, "out": 4},
        "landing.sinks[0]": {
            "type": "logfile", "in": 4, "delivered": 4, "queue": 0, "retries": 0,
            "dead_lettered": 0,
        },
    }  # fmt: skip


def test_no_status_on_a_terminal_logs_summary_lines_instead_of_the_table(tmp_path: Path) -> None:
    config, _, _ = landing(tmp_path)
    term = Terminal("run", "--no-status", "--status-interval", "1s", str(config), cwd=tmp_path)
    lines = term.wait_for(lambda lines: any(" status " in line for line in lines), "a status line")
    assert not any(line.startswith("fspipeline ") for line in lines)
    assert term.interrupt() == 0
