"""The `pipeline` command, end to end, as a new user meets it."""

from __future__ import annotations

import base64
import json
import os
import shutil
from pathlib import Path

import pytest

from tests.e2e.cli import REPO, Background, pipeline

pytestmark = pytest.mark.e2e


def test_default_pipeline_reports_a_finished_file_once(tmp_path: Path) -> None:
    shutil.copy(REPO / "config.yaml", tmp_path / "config.yaml")
    run = Background("run", cwd=tmp_path)
    run.wait_ready()
    assert (tmp_path / "inbox").is_dir()  # created on first start
    with open(tmp_path / "inbox" / "a.csv", "w") as handle:
        for i in range(50):  # a burst of writes: one event after the close
            handle.write(f"{i},x\n")
            handle.flush()
    (tmp_path / "inbox" / ".hidden.csv").write_text("dot-files are filtered out")
    (tmp_path / "inbox" / "b.tmp").write_text("temp files too")
    [line] = run.lines(1)
    assert run.quiet(0.6) == []
    assert b"closed_write" in line
    assert line.rstrip().endswith(str(tmp_path / "inbox" / "a.csv").encode())
    assert run.interrupt() == 0
    [record] = [json.loads(x) for x in (tmp_path / "events.jsonl").read_text().splitlines()]
    assert record["type"] == "fs.closed_write"
    assert record["specversion"] == "1.0"
    assert record["data"]["path"] == str(tmp_path / "inbox" / "a.csv")
    assert record["subject"] == "a.csv"
    assert '"event": "stopped"' in run.stderr


def test_hostile_file_names_go_through_end_to_end(tmp_path: Path) -> None:
    shutil.copy(REPO / "config.yaml", tmp_path / "config.yaml")
    run = Background("run", cwd=tmp_path)
    run.wait_ready()
    names = [b"new\nline.csv", b"semi;colon $(id).csv", b"with  spaces .csv", b"caf\xe9-latin1.csv"]
    inbox = os.fsencode(tmp_path / "inbox")
    for name in names:
        with open(os.path.join(inbox, name), "wb") as handle:
            handle.write(b"x")
    console = run.lines(len(names))
    assert run.interrupt() == 0
    records = [json.loads(x) for x in (tmp_path / "events.jsonl").read_text("utf-8").splitlines()]
    paths = set()
    for record in records:
        data = record["data"]
        raw = base64.b64decode(data["path_b64"]) if "path_b64" in data else data["path"].encode()
        paths.add(raw)
    assert paths == {os.path.join(inbox, n) for n in names}
    # The console shows each on one line, escaped.
    assert any(b"new\\nline.csv" in line for line in console)
    assert any(b"caf\\xe9-latin1.csv" in line for line in console)


def test_check_reports_every_mistake_with_its_location(tmp_path: Path) -> None:
    config = tmp_path / "bad.yaml"
    config.write_text(
        "pipelines:\n"
        "  landing:\n"
        "    sources:\n"
        "      - type: inotfy\n"
        "        paths: [inbox]\n"
        "    stages:\n"
        "      - type: debounce\n"
        "        quiet: soon\n"
        "    sinks:\n"
        "      - type: logfile\n"
        "        pathh: events.jsonl\n"
    )
    result = pipeline("check", str(config))
    assert result.returncode == 2
    lines = result.stdout.splitlines()
    assert len(lines) == 3, result.stdout  # three mistakes, three lines
    assert lines[0].startswith(f"{config}:4:")
    assert "pipelines.landing.sources[0].type: unknown source type 'inotfy'" in lines[0]
    assert "did you mean 'inotify'?" in lines[0]
    assert lines[1].startswith(f"{config}:8:")
    assert "quiet: 'soon' is not a duration" in lines[1]
    assert lines[2].startswith(f"{config}:11:9: pipelines.landing.sinks[0].pathh: unknown option")
    assert "did you mean 'path'? (path is required)" in lines[2]
    assert result.stderr.strip() == f"{config}: 3 problems"
    assert "Traceback" not in result.stdout + result.stderr


def test_check_accepts_the_default_config_and_every_example() -> None:
    configs = [REPO / "config.yaml", *sorted((REPO / "examples").glob("*.yaml"))]
    for config in configs:
        result = pipeline("check", str(config))
        assert result.returncode == 0, f"{config}: {result.stdout}{result.stderr}"
        assert result.stdout.rstrip().endswith("ok")


def test_run_refuses_a_bad_config_with_located_errors(tmp_path: Path) -> None:
    (tmp_path / "config.yaml").write_text(
        "pipelines:\n  p:\n    sources: []\n    sinks: [{type: console}]\n"
    )
    result = pipeline("run", cwd=tmp_path)
    assert result.returncode == 2
    assert "config.yaml:3:" in result.stderr and "sources` is empty" in result.stderr
    missing = pipeline("run", "nope.yaml", cwd=tmp_path)
    assert missing.returncode == 2
    assert "nope.yaml:1:1: no such config file" in missing.stderr


def test_plugins_lists_every_builtin_with_its_distribution() -> None:
    result = pipeline("plugins")
    assert result.returncode == 0
    rows = {tuple(line.split()[:2]): line for line in result.stdout.splitlines() if line}
    for kind, name in [
        ("source", "inotify"),
        ("source", "poll"),
        ("stage", "filter"),
        ("stage", "debounce"),
        ("sink", "console"),
        ("sink", "logfile"),
    ]:
        assert (kind, name) in rows, result.stdout
        assert "fspipeline 0.1.0" in rows[(kind, name)]


def test_plugins_name_shows_options_with_types_defaults_and_docs() -> None:
    result = pipeline("plugins", "inotify")
    assert result.returncode == 0
    out = result.stdout
    assert "inotify (source, from fspipeline" in out
    assert "paths (list of path; required)" in out
    assert "recursive (boolean; default: true)" in out
    assert "move_wait (duration; default: 50ms)" in out
    assert "Watch every folder below each path" in out
    unknown = pipeline("plugins", "inotfy")
    assert unknown.returncode == 2
    assert "Did you mean 'inotify'?" in unknown.stderr


def test_watch_prints_one_json_line_per_event_like_inotifywait(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    watch = Background("watch", str(tmp_path), cwd=tmp_path)
    watch.wait_ready()
    target = tmp_path / "sub" / "f.txt"
    target.write_text("hello")
    os.rename(target, tmp_path / "g.txt")
    (tmp_path / "g.txt").unlink()
    events = [json.loads(line) for line in watch.lines(6)]
    assert watch.interrupt() == 0
    assert [(e["type"], e["data"]["path"]) for e in events] == [
        ("fs.created", str(target)),
        ("fs.opened", str(target)),
        ("fs.modified", str(target)),
        ("fs.closed_write", str(target)),
        ("fs.moved", str(tmp_path / "g.txt")),
        ("fs.deleted", str(tmp_path / "g.txt")),
    ]
    assert events[4]["data"]["src_path"] == str(target)
    assert all(e["source"] == "fspipeline/watch/inotify" for e in events)


def test_watch_with_events_and_text_format(tmp_path: Path) -> None:
    watch = Background(
        "watch", str(tmp_path), "--events", "closed_write", "--format", "text", cwd=tmp_path
    )
    watch.wait_ready()
    (tmp_path / "a.txt").write_text("x")
    [line] = watch.lines(1)
    assert watch.interrupt() == 0
    assert b"closed_write" in line and line.rstrip().endswith(str(tmp_path / "a.txt").encode())


def test_watch_rejects_bad_usage(tmp_path: Path) -> None:
    missing = pipeline("watch", str(tmp_path / "nope"))
    assert missing.returncode == 2 and "does not exist" in missing.stderr
    kinds = pipeline("watch", str(tmp_path), "--events", "closed")
    assert kinds.returncode == 2 and "unknown event kind closed" in kinds.stderr


def test_help_teaches_the_commands() -> None:
    result = pipeline("--help")
    assert result.returncode == 0
    for command in ("run", "check", "plugins", "watch"):
        assert command in result.stdout
    assert "exit codes" in result.stdout
    assert pipeline("frobnicate").returncode == 2
