"""`pipeline check` and `pipeline run` as a user meets them: a config others could change
is warned about when it runs commands, and no password reaches a problem line."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from tests.e2e.cli import PIPELINE, Background

pytestmark = pytest.mark.integration

NO_PLUGINS = {"FSPIPELINE_DISABLE_PLUGIN_AUTOLOAD": "1"}

CONFIG = """\
pipelines:
  landing:
    sources: [{{type: poll, paths: [{inbox}], interval: 1s}}]
    sinks:
      - {{type: command, argv: ["true", "{{path}}"]}}
"""


def pipeline(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [PIPELINE, "--log-format", "json", *args],
        cwd=cwd,
        env={**os.environ, **NO_PLUGINS},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def write_config(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    inbox = folder / "inbox"
    inbox.mkdir(exist_ok=True)
    config = folder / "config.yaml"
    config.write_text(CONFIG.format(inbox=inbox))
    config.chmod(0o644)
    return config


def warnings_in(stderr: str) -> list[dict[str, object]]:
    records = [json.loads(line) for line in stderr.splitlines() if line.startswith("{")]
    return [r for r in records if r.get("level") == "warning"]


def test_check_warns_about_a_world_writable_config_that_runs_commands(tmp_path: Path) -> None:
    config = write_config(tmp_path / "cfg")
    config.chmod(0o666)
    done = pipeline("check", str(config), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.endswith(f"{config}: ok\n")  # a warning, not a problem
    (warning,) = warnings_in(done.stderr)
    assert warning["config"] == str(config)
    assert f"chmod o-w {config}" in str(warning["problem"])
    config.chmod(0o644)
    again = pipeline("check", str(config), cwd=tmp_path)
    assert again.returncode == 0 and warnings_in(again.stderr) == []


def test_run_warns_about_a_folder_anyone_can_replace_the_config_in(tmp_path: Path) -> None:
    config = write_config(tmp_path / "shared")
    config.parent.chmod(0o777)
    run = Background("run", "--no-reload", str(config), cwd=tmp_path, env=NO_PLUGINS)
    run.wait_ready()
    assert run.interrupt() == 0
    (warning,) = warnings_in(run.stderr)
    assert "they could run any program as this user" in str(warning["event"])
    assert f"chmod o-w {config.parent}" in str(warning["problem"])


def test_check_never_prints_a_password_it_rejects(tmp_path: Path) -> None:
    config = write_config(tmp_path / "cfg")
    text = config.read_text().replace(
        'argv: ["true"', "timeout: 'amqp://ingest:hunter2@rabbit/', argv: [\"true\""
    )
    config.write_text(text)
    done = pipeline("check", str(config), cwd=tmp_path)
    assert done.returncode == 2
    assert "amqp://ingest:***@rabbit/" in done.stdout
    assert "hunter2" not in done.stdout + done.stderr
