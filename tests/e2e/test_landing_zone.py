"""The landing-zone example as a data engineer would run it: every finished file loaded once."""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import pytest

from tests.e2e.cli import REPO, Background

pytestmark = pytest.mark.e2e


def loaded(log: Path) -> list[tuple[int, str]]:
    if not log.exists():
        return []
    rows = []
    for line in log.read_bytes().splitlines():
        size, path = line.split(b" ", 1)
        rows.append((int(size), os.fsdecode(path)))
    return rows


def wait_for(condition: object, timeout: float, what: str, run: Background) -> None:
    deadline = time.monotonic() + timeout
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < deadline, f"timed out waiting for {what}\n{run.stderr}"
        time.sleep(0.05)


def test_each_finished_file_triggers_the_loader_once_with_its_final_size(tmp_path: Path) -> None:
    landing = tmp_path / "landing"
    log = tmp_path / "loaded.log"
    env = {
        "LANDING_DIR": str(landing),
        "STATE_DIR": str(tmp_path / "state"),
        "LOADED_LOG": str(log),
        "EVENTS_LOG": str(tmp_path / "events.jsonl"),
        "PYTHON": sys.executable,
    }
    run = Background("run", str(REPO / "examples" / "landing-zone.yaml"), cwd=tmp_path, env=env)
    run.wait_ready()
    partners = landing / "partners" / "acme"
    partners.mkdir(parents=True)
    expected: dict[str, int] = {}

    # 1. A slow writer: five chunks with pauses, one open file. Nothing before the close.
    orders = partners / "orders.csv"
    with open(orders, "w") as handle:
        for i in range(5):
            handle.write(f"{i},{'x' * 100}\n")
            handle.flush()
            time.sleep(0.2)
            assert loaded(log) == [], "a partial file reached the loader"
    expected[str(orders)] = orders.stat().st_size

    # 2. Temp file, then an atomic rename into place.
    temp = partners / ".customers.csv.tmp"
    with open(temp, "w") as handle:
        handle.write("id,name\n")
        handle.flush()
        time.sleep(0.3)
        handle.write("1,Ada\n2,Grace\n")
    customers = partners / "customers.csv"
    os.rename(temp, customers)
    expected[str(customers)] = customers.stat().st_size

    # 3. A Spark job: part files first, _SUCCESS last; nothing is loaded before the marker.
    job = landing / "spark" / "job-42"
    job.mkdir(parents=True)
    for part in range(3):
        path = job / f"part-{part:04d}.csv"
        path.write_text("a,b\n" * (part + 1))
        expected[str(path)] = path.stat().st_size
    wait_for(lambda: len(loaded(log)) >= 2, 20, "the partner files", run)
    time.sleep(1.0)
    assert not any("spark" in path for _, path in loaded(log)), "loaded before _SUCCESS"
    (job / "_SUCCESS").touch()

    wait_for(lambda: len(loaded(log)) >= len(expected), 20, "every file", run)
    time.sleep(1.0)  # would a duplicate follow?
    assert run.interrupt() == 0
    rows = loaded(log)
    assert sorted(rows) == sorted((size, path) for path, size in expected.items())
    events = [json.loads(line) for line in (tmp_path / "events.jsonl").read_text().splitlines()]
    assert sorted(e["data"]["path"] for e in events) == sorted(expected)
    assert all(e["data"]["size"] == expected[e["data"]["path"]] for e in events)


def test_a_failing_load_is_retried_then_dead_lettered_while_others_flow(tmp_path: Path) -> None:
    landing = tmp_path / "landing"
    landing.mkdir()
    (tmp_path / "flaky.py").write_text(
        "import sys\n"
        "if 'bad' in sys.argv[1]:\n"
        "    print('cannot parse line 3', file=sys.stderr); sys.exit(4)\n"
        "open(sys.argv[2], 'a').write(sys.argv[1] + '\\n')\n"
    )
    (tmp_path / "config.yaml").write_text(
        f"""\
state_dir: state
pipelines:
  load:
    sources: [{{type: inotify, paths: [landing], events: [closed_write]}}]
    sinks:
      - type: command
        argv: [{sys.executable}, flaky.py, "{{path}}", {tmp_path / "ok.log"}]
        max_attempts: 3
        retry_backoff: 100ms
"""
    )
    run = Background("run", "config.yaml", cwd=tmp_path)
    run.wait_ready()
    (landing / "a.csv").write_text("1")
    (landing / "bad.csv").write_text("2")
    (landing / "c.csv").write_text("3")
    dead = tmp_path / "state" / "dead-letter.jsonl"
    wait_for(dead.exists, 20, "the dead letter", run)
    wait_for(
        lambda: len((tmp_path / "ok.log").read_text().splitlines()) == 2, 20, "good files", run
    )
    assert run.interrupt() == 0
    assert sorted((tmp_path / "ok.log").read_text().split()) == [
        str(landing / "a.csv"),
        str(landing / "c.csv"),
    ]
    [letter] = [json.loads(line) for line in dead.read_text().splitlines()]
    assert letter["event"]["data"]["path"] == str(landing / "bad.csv")
    assert "exit code 4: cannot parse line 3 (after 3 attempts)" in letter["reason"]
    assert run.stderr.count("delivery failed; will retry") == 2
