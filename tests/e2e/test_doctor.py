"""`pipeline doctor`: findings about this machine and a config, each with its fix."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.e2e.cli import pipeline

pytestmark = pytest.mark.e2e


def test_a_healthy_machine_and_config(tmp_path: Path) -> None:
    (tmp_path / "inbox").mkdir()
    config = tmp_path / "config.yaml"
    config.write_text(
        "state_dir: state\npipelines:\n  p:\n    sources: [{type: inotify, paths: [inbox]}]\n"
        "    sinks: [{type: console}]\n"
    )
    result = pipeline("doctor", str(config), cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert any(line.startswith("[  ok] inotify: max_user_watches") for line in lines), lines
    assert any(line.startswith("[  ok] fanotify: available") for line in lines), lines  # root
    assert f"[  ok] config: {config} is valid" in lines
    assert any(
        line.startswith(f"[  ok] state_dir: {tmp_path / 'state'} writable") for line in lines
    )
    assert lines[-1].startswith("0 failed")


def test_an_unusable_state_dir_and_an_unreachable_endpoint_are_failures(tmp_path: Path) -> None:
    (tmp_path / "blocker").write_text("a file where a folder should be")
    config = tmp_path / "config.yaml"
    config.write_text(
        "state_dir: blocker/state\npipelines:\n  p:\n    sources: [{type: poll, paths: [.]}]\n"
        "    sinks: [{type: webhook, url: 'http://u:secret@127.0.0.1:9/hook'}]\n"
    )
    result = pipeline("doctor", str(config), "--timeout", "5", cwd=tmp_path)
    assert result.returncode == 1
    out = result.stdout
    assert f"[fail] state_dir: {tmp_path / 'blocker' / 'state'} is not writable" in out
    assert "fix: make it writable by this user, or point state_dir elsewhere" in out
    assert "[fail] connect: p.sinks[0] (webhook)" in out
    assert "secret" not in out
