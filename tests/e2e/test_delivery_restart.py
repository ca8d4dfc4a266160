"""At-least-once delivery across a kill -9: the spool hands the queued events to the next run."""

from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path

import pytest

from tests.e2e.cli import Background

pytestmark = pytest.mark.e2e

LOADER = """\
import os, sys, time
time.sleep(0.3)  # a slow loader: events pile up in the sink's queue
with open(sys.argv[1], "ab") as out:
    out.write(os.fsencode(sys.argv[2]) + b"\\n")
"""


def delivered(log: Path) -> list[str]:
    return log.read_text().splitlines() if log.exists() else []


def test_kill_9_while_events_are_queued_loses_none(tmp_path: Path) -> None:
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    (tmp_path / "loader.py").write_text(LOADER)
    log = tmp_path / "loaded.txt"
    (tmp_path / "config.yaml").write_text(
        f"""\
state_dir: state
pipelines:
  ingest:
    sources:
      - type: inotify
        paths: [inbox]
        events: [closed_write]
    sinks:
      - type: command
        argv: [{sys.executable}, loader.py, {log}, "{{path}}"]
        spool: true
"""
    )
    first = Background("run", "config.yaml", cwd=tmp_path)
    first.wait_ready()
    names = [f"f{i:02d}.csv" for i in range(12)]
    for name in names:
        (inbox / name).write_text("x")
    deadline = time.monotonic() + 20
    while len(delivered(log)) < 2:
        assert time.monotonic() < deadline, first.stderr
        time.sleep(0.05)
    os.kill(first.proc.pid, signal.SIGKILL)  # no shutdown, no drain
    first.proc.wait(10)
    assert len(delivered(log)) < len(names)  # there really was a backlog

    second = Background("run", "config.yaml", cwd=tmp_path)
    second.wait_ready()
    deadline = time.monotonic() + 30
    while not {str(inbox / n) for n in names} <= set(delivered(log)):
        assert time.monotonic() < deadline, f"{delivered(log)}\n{second.stderr}"
        time.sleep(0.1)
    assert second.interrupt() == 0
    assert "delivering events spooled by an earlier run" in second.stderr
