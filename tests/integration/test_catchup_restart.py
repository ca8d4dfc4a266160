"""`pipeline run` killed with SIGKILL and started again: what happened meanwhile is reported."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from tests.e2e.cli import Background
from tests.jsonl import complete_records

pytestmark = pytest.mark.integration

CONFIG = """
state_dir: state
pipelines:
  landing:
    sources:
      - type: {source}
        paths: [inbox]
        events: [{events}]
        checkpoint_interval: 200ms
{extra}
    sinks:
      - type: logfile
        path: events.jsonl
"""
# Only built-in components run here: plugins being installed or broken elsewhere stay out.
BUILTINS_ONLY = {"FSPIPELINE_DISABLE_PLUGIN_AUTOLOAD": "1"}
SOURCES = {
    "fanotify": ("closed_write, deleted", ""),
    "inotify": ("closed_write, deleted", ""),
    "poll": ("created, modified, deleted", "        interval: 100ms"),
}


def reported(log: Path) -> list[tuple[str, str]]:
    records = complete_records(log)
    return [(r["data"]["kind"], os.path.basename(r["data"]["path"])) for r in records]


def wait_for(log: Path, names: set[str], timeout: float = 30) -> list[tuple[str, str]]:
    deadline = time.monotonic() + timeout
    while True:
        seen = reported(log)
        if names <= {name for _, name in seen}:
            return seen
        if time.monotonic() > deadline:
            raise AssertionError(f"{sorted(names - {n for _, n in seen})} never reported: {seen}")
        time.sleep(0.05)


@pytest.mark.parametrize("source", sorted(SOURCES))
def test_a_restart_after_kill_9_reports_what_happened_while_down_once(
    tmp_path: Path, source: str
) -> None:
    events, extra = SOURCES[source]
    (tmp_path / "config.yaml").write_text(CONFIG.format(source=source, events=events, extra=extra))
    inbox, log = tmp_path / "inbox", tmp_path / "events.jsonl"
    inbox.mkdir()
    (inbox / "doomed.csv").write_text("there from the start")
    written = "created" if source == "poll" else "closed_write"

    first = Background("run", "config.yaml", cwd=tmp_path, env=BUILTINS_ONLY)
    try:
        first.wait_ready()
        up = {f"up-{i}.csv" for i in range(20)}
        for name in sorted(up):
            (inbox / name).write_text("x")
        wait_for(log, up)
        time.sleep(1.0)  # a few checkpoints go by: the snapshot on disk now holds them
    finally:
        first.proc.kill()  # SIGKILL: no chance to save anything
        first.proc.wait(10)

    down = {f"down-{i}.csv" for i in range(50)}
    for name in sorted(down):
        (inbox / name).write_text("x")
    (inbox / "doomed.csv").unlink()

    second = Background("run", "config.yaml", cwd=tmp_path, env=BUILTINS_ONLY)
    try:
        second.wait_ready()
        (inbox / "after.csv").write_text("x")
        seen = wait_for(log, down | {"doomed.csv", "after.csv"})
        time.sleep(1.0)  # nothing more should come
        seen = reported(log)
    finally:
        second.interrupt()
    for name in down | {"after.csv"}:
        assert seen.count((written, name)) == 1, (name, seen)
    assert seen.count(("deleted", "doomed.csv")) == 1
    for name in up:
        assert seen.count((written, name)) == 1, (name, seen)  # saved before the kill


@pytest.mark.parametrize("source", sorted(SOURCES))
def test_a_kill_before_the_first_checkpoint_still_catches_up_at_the_next_start(
    tmp_path: Path, source: str
) -> None:
    events, extra = SOURCES[source]
    config = CONFIG.format(source=source, events=events, extra=extra)
    (tmp_path / "config.yaml").write_text(config.replace("200ms", "1h"))  # no checkpoint
    inbox, log = tmp_path / "inbox", tmp_path / "events.jsonl"
    inbox.mkdir()
    (inbox / "doomed.csv").write_text("there from the first start")
    first = Background("run", "config.yaml", cwd=tmp_path, env=BUILTINS_ONLY)
    try:
        first.wait_ready()
        first.wait_for(
            lambda: (tmp_path / "state").is_dir() and any((tmp_path / "state").rglob("*.bin")),
            10,
            "the first state saved",
        )
    finally:
        first.proc.kill()  # SIGKILL well before the first checkpoint
        first.proc.wait(10)
    (inbox / "doomed.csv").unlink()
    (inbox / "down.csv").write_text("x")
    second = Background("run", "config.yaml", cwd=tmp_path, env=BUILTINS_ONLY)
    try:
        second.wait_ready()
        seen = wait_for(log, {"doomed.csv", "down.csv"})
    finally:
        second.interrupt()
    assert ("deleted", "doomed.csv") in seen
    assert ("created" if source == "poll" else "closed_write", "down.csv") in seen


def test_a_clean_stop_soon_after_start_saves_the_state_so_nothing_is_reported_twice(
    tmp_path: Path,
) -> None:
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    (tmp_path / "config.yaml").write_text(
        "state_dir: state\npipelines:\n  p:\n"
        "    sources: [{type: inotify, paths: [inbox], events: [closed_write]}]\n"
        "    sinks: [{type: console, format: json}]\n"
    )
    first = Background("run", "config.yaml", cwd=tmp_path)
    first.wait_ready()
    (inbox / "a.txt").write_text("x")
    assert b"a.txt" in first.lines(1)[0]
    assert first.interrupt() == 0  # well within checkpoint_interval (5 s) of the start
    second = Background("run", "config.yaml", cwd=tmp_path)
    second.wait_ready()
    assert second.quiet(1.0) == []  # a.txt was delivered before the stop: not again
    (inbox / "b.txt").write_text("y")
    assert b"b.txt" in second.lines(1)[0]
    assert second.interrupt() == 0
