"""When inotify runs out of watches, what Qt cannot watch is read instead: nothing is lost.

The limit is lowered for one `pipeline run` only, in a user namespace of its own
(`unshare --user`: its `user.max_inotify_watches` applies to it alone), so nothing else
on the machine is affected.
"""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest
from tests.e2e import cli
from tests.e2e.cli import Background

from qt_testkit import place

pytestmark = [pytest.mark.e2e, pytest.mark.integration]

FOLDERS = 40
WATCHES = 30  # the root and 29 folders; the other 11 folders and every file are refused


def limited_pipeline(tmp_path: Path, watches: int) -> str:
    """A `pipeline` that runs in a new user namespace with an inotify watch limit of its own."""
    script = tmp_path / "pipeline-limited"
    script.write_text(
        "#!/bin/sh\n"
        "exec unshare --user --map-root-user sh -c "
        f'\'echo {watches} > /proc/sys/user/max_inotify_watches && exec "$0" "$@"\' '
        f'{cli.PIPELINE} "$@"\n'
    )
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    return str(script)


def test_paths_qt_cannot_watch_are_read_instead_with_one_warning(
    tmp_path: Path, inbox: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folders = [inbox / f"d{i:02d}" for i in range(FOLDERS)]
    for folder in folders:
        folder.mkdir()
        (folder / "old.csv").write_text("x")
    (tmp_path / "config.yaml").write_text(
        """\
pipelines:
  landing:
    sources:
      - type: qt
        paths: [inbox]
        poll_interval: 200ms
        events: [created, modified]
    sinks: [{type: console, format: json}]
"""
    )
    monkeypatch.setattr(cli, "PIPELINE", limited_pipeline(tmp_path, WATCHES))
    run = Background("run", "config.yaml", cwd=tmp_path)
    try:
        run.wait_ready()
        for folder in folders:
            place(folder / "new.csv")
            with open(folder / "old.csv", "a") as handle:
                handle.write("more")
        events = [json.loads(line) for line in run.lines(2 * FOLDERS, timeout=30)]
        assert sorted((e["type"], e["data"]["path"]) for e in events) == sorted(
            [("fs.created", str(folder / "new.csv")) for folder in folders]
            + [("fs.modified", str(folder / "old.csv")) for folder in folders]
        )
        assert run.quiet(0.5) == []
    finally:
        code = run.interrupt()
    assert code == 0, run.stderr
    logs = [json.loads(line) for line in run.stderr.splitlines() if line.startswith("{")]
    refused = [e for e in logs if e["event"].startswith("Qt could not watch some paths")]
    assert len(refused) == 1, run.stderr  # once, however many paths it refuses later
    assert refused[0]["level"] == "warning"
    assert "sysctl -w fs.inotify.max_user_watches=N" in refused[0]["event"]
    (started,) = [e for e in logs if e["event"] == "watching"]
    assert started["watched"] == WATCHES
    assert started["unwatched"] == 2 * FOLDERS + 1 - WATCHES
