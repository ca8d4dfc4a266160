"""`run_as`: root opens what needs root (fanotify's marks), then the process becomes the
user, keeping only the capabilities its components declared."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from pipeline.linux.privileges import CAPABILITIES, effective_capabilities
from tests.e2e.cli import Background, pipeline

pytestmark = pytest.mark.integration

CONFIG = """\
state_dir: state
run_as: nobody
pipelines:
  p:
    sources: [{{type: {source}, paths: [{inbox}], events: [closed_write]}}]
    sinks: [{{type: logfile, path: out/events.jsonl}}]
"""


def uid_of(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("Uid:"):
            return int(line.split()[2])  # effective
    raise AssertionError("no Uid line")


@pytest.mark.parametrize(
    ("source", "kept"), [("fanotify", 1 << CAPABILITIES["CAP_DAC_READ_SEARCH"]), ("inotify", 0)]
)
def test_the_pipeline_runs_as_the_user_with_only_what_it_needs(
    tmp_path: Path, source: str, kept: int
) -> None:
    assert os.geteuid() == 0, "the test suite runs as root here; run_as needs it"
    tmp_path.chmod(0o755)
    inbox = Path("/dev/shm") / f"run-as-{os.getpid()}-{source}"
    inbox.mkdir(mode=0o777)
    (tmp_path / "out").mkdir(mode=0o777)
    (tmp_path / "config.yaml").write_text(CONFIG.format(source=source, inbox=inbox))
    run = Background("run", "config.yaml", cwd=tmp_path)
    try:
        run.wait_ready()
        assert "dropped privileges" in run.stderr
        assert uid_of(run.proc.pid) == 65534
        assert effective_capabilities(run.proc.pid) == kept
        (inbox / "a.csv").write_text("x")
        events = tmp_path / "out" / "events.jsonl"
        run.wait_for(lambda: events.exists() and events.read_text().strip() != "", 15, "no event")
        assert json.loads(events.read_text().splitlines()[0])["data"]["path"] == str(
            inbox / "a.csv"
        )
        time.sleep(0.2)
        assert run.interrupt() == 0, run.stderr
        assert (tmp_path / "state").stat().st_uid == 65534  # its checkpoints stay writable
    finally:
        if run.proc.poll() is None:
            run.proc.kill()
        for child in inbox.iterdir():
            child.unlink()
        inbox.rmdir()


def test_an_unknown_user_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "in").mkdir()
    text = CONFIG.format(source="inotify", inbox=tmp_path / "in").replace("nobody", "no-such-user")
    (tmp_path / "config.yaml").write_text(text)
    result = pipeline("run", "config.yaml", cwd=tmp_path)
    assert result.returncode == 1
    assert "run_as no-such-user: run_as: no user 'no-such-user' on this machine" in result.stderr
    assert "Traceback" not in result.stderr
