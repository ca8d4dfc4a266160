"""`pipeline run`, `check` and `plugins` with the qt source, as a user runs them."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from tests.e2e.cli import Background, pipeline

from qt_testkit import place

pytestmark = pytest.mark.e2e

CONFIG = """\
pipelines:
  landing:
    sources:
      - type: qt
        paths: [inbox]
    sinks:
      - type: console
        format: json
"""


def test_pipeline_run_prints_the_events_of_a_qt_source(tmp_path: Path, inbox: Path) -> None:
    (tmp_path / "config.yaml").write_text(CONFIG)
    run = Background("run", "config.yaml", cwd=tmp_path, env={"QT_QPA_PLATFORM": "offscreen"})
    try:
        run.wait_ready()
        place(inbox / "a.csv", b"1,2\n")
        (inbox / "b").mkdir()
        place(inbox / "b" / "c.csv")
        lines = [json.loads(line) for line in run.lines(3)]
        assert [(e["type"], e["data"]["path"]) for e in lines] == [
            ("fs.created", str(inbox / "a.csv")),
            ("fs.created", str(inbox / "b")),
            ("fs.created", str(inbox / "b" / "c.csv")),
        ]
        assert lines[0]["source"] == "fspipeline/landing/qt"
        assert lines[0]["data"]["size"] == 4
        (inbox / "a.csv").unlink()
        (gone,) = [json.loads(line) for line in run.lines(1)]
        assert (gone["type"], gone["data"]["path"]) == ("fs.deleted", str(inbox / "a.csv"))
        assert run.quiet(0.3) == []
    finally:
        code = run.interrupt()
    assert code == 0, run.stderr
    assert "Traceback" not in run.stderr
    assert "QFileSystemWatcher" not in run.stderr  # Qt's own chatter goes to debug logs


def test_check_names_a_kind_the_qt_source_cannot_see(tmp_path: Path, inbox: Path) -> None:
    (tmp_path / "config.yaml").write_text(
        CONFIG.replace("paths: [inbox]", "paths: [inbox]\n        events: [closed_write]")
    )
    result = pipeline("check", "config.yaml", cwd=tmp_path)
    assert result.returncode == 2, result.stdout + result.stderr
    assert result.stdout.startswith(
        "config.yaml:6:17: pipelines.landing.sources[0].events: "
        "the qt source cannot see closed_write; it reports attrib, created,"
    )
    assert "Traceback" not in result.stdout + result.stderr


def test_loading_the_plugin_does_not_load_qt() -> None:
    # Every `pipeline` command loads every plugin: Qt (0.2 s) is imported when a qt
    # source opens, not before.
    code = "import sys, fspipeline_qt.plugin; print([m for m in sys.modules if 'PySide' in m])"
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert result.stdout.strip() == "[]"


def test_plugins_lists_the_qt_source_and_documents_its_options() -> None:
    listing = pipeline("plugins")
    assert listing.returncode == 0, listing.stderr
    (row,) = [line for line in listing.stdout.splitlines() if " qt " in line]
    assert row.split()[:3] == ["source", "qt", "fspipeline-qt"]
    help_ = pipeline("plugins", "qt")
    assert help_.returncode == 0, help_.stderr
    for option in ("watch_files", "coalesce", "poll_interval", "rescan_interval", "recursive"):
        assert option in help_.stdout
