"""A config naming the `windows` source on another OS: `check` validates it, `run` says
clearly that it needs Windows (the `pipeline` command run as a subprocess)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from tests.e2e.cli import pipeline

CONFIG = """\
pipelines:
  landing:
    sources:
      - type: windows
        paths: [inbox]
        buffer_size: 32KiB
        move_wait: 100ms
        events: [{events}]
    stages:
      - type: ready
        mode: stable
    sinks:
      - type: console
"""

pytestmark = pytest.mark.e2e


def write_config(folder: Path, events: str = "created, moved, deleted") -> Path:
    (folder / "inbox").mkdir(exist_ok=True)
    config = folder / "config.yaml"
    config.write_text(CONFIG.format(events=events))
    return config


def test_check_validates_a_config_with_the_windows_source(tmp_path: Path) -> None:
    result = pipeline("check", str(write_config(tmp_path)))
    assert result.returncode == 0, result.stderr
    assert "windows" in result.stdout


def test_check_names_the_kinds_windows_cannot_see_and_the_way_out(tmp_path: Path) -> None:
    result = pipeline("check", str(write_config(tmp_path, "closed_write, attrib")))
    assert result.returncode == 2
    line = next(ln for ln in (result.stdout + result.stderr).splitlines() if "events" in ln)
    assert line.startswith(f"{tmp_path / 'config.yaml'}:8:")
    assert "cannot see attrib, closed_write" in line and "`ready` stage" in line


def test_run_says_in_one_line_that_the_source_needs_windows(tmp_path: Path) -> None:
    assert sys.platform != "win32"  # this file runs where the source cannot
    result = pipeline("--log-format", "json", "run", str(write_config(tmp_path)))
    assert result.returncode == 1
    errors = [line for line in result.stderr.splitlines() if not line.startswith("{")]
    assert errors == [
        "pipeline: error: landing.sources[0]: the `windows` source needs Windows (it reads "
        f"ReadDirectoryChangesW); on {sys.platform} use the `inotify`, `fanotify`, `poll` or "
        "`watchdog` source"
    ]
    assert "Traceback" not in result.stderr
