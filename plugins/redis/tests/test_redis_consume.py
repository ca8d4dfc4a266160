"""`pipeline run` consuming a Redis stream: acknowledged only after the sinks delivered."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest
import redis
from pipeline import Event, EventKind
from tests.e2e.cli import Background

from fspipeline_redis.entries import fields_of
from redis_testing import entries

pytestmark = pytest.mark.e2e

# Waits for a gate file, fails for paths containing "bad", else appends the path.
LOADER = """\
while [ ! -e gate ]; do sleep 0.02; done
case "$1" in *bad*) exit 1;; esac
sleep "${LOAD_TIME:-0}"
printf '%s\\n' "$1" >> out.txt
"""


def produce(client: redis.Redis, stream: str, paths: list[str]) -> list[Event]:
    events = [Event(kind=EventKind.CLOSED_WRITE, path=p, source="a/inotify") for p in paths]
    pipe = client.pipeline(transaction=False)
    for event in events:
        pipe.xadd(stream, fields_of(event))
    pipe.execute()
    return events


def config(folder: Path, url: str, stream: str, consumer: str, **extra: str) -> Path:
    (folder / "loader.sh").write_text(LOADER)
    options = "".join(f"\n        {key}: {value}" for key, value in extra.items())
    path = folder / f"{consumer}.yaml"
    path.write_text(
        f"""\
pipelines:
  work:
    sources:
      - type: redis
        url: {url}
        stream: {stream}
        consumer: {consumer}{options}
    sinks:
      - type: command
        argv: [sh, loader.sh, "{{path}}"]
        max_attempts: 2
        retry_backoff: 50ms
"""
    )
    return path


def pending(client: redis.Redis, stream: str) -> int:
    """Entries read and not acknowledged; -1 before the worker made its group."""
    try:
        count: int = client.xpending(stream, "work")["pending"]
    except redis.ResponseError:
        return -1
    return count


def loaded(folder: Path) -> list[str]:
    out = folder / "out.txt"
    return out.read_text().splitlines() if out.exists() else []


def test_entries_are_acked_only_after_the_sink_delivered_and_failures_dead_lettered(
    tmp_path: Path, rdb: redis.Redis, stream: str, shared_redis: str
) -> None:
    paths = [f"/data/{'bad' if i % 5 == 4 else 'ok'}-{i:02d}" for i in range(20)]
    sent = produce(rdb, stream, paths)
    config(tmp_path, shared_redis, stream, "w1")
    running = Background("run", "w1.yaml", cwd=tmp_path)
    try:
        running.wait_ready()
        # The loader waits at the gate: every entry is read, none is acknowledged.
        running.wait_for(lambda: pending(rdb, stream) == 20, 15, "entries not read")
        time.sleep(0.5)
        assert pending(rdb, stream) == 20
        assert loaded(tmp_path) == []

        (tmp_path / "gate").touch()
        running.wait_for(lambda: pending(rdb, stream) == 0, 30, "entries not settled")
    finally:
        assert running.interrupt() == 0

    good = [p for p in paths if "bad" not in p]
    bad = [e for e in sent if "bad" in e.path]
    assert loaded(tmp_path) == good  # in stream order (one lane per path, one at a time)
    dead = entries(rdb, stream + ":dead")
    assert [fields[b"id"].decode() for _, fields in dead] == [e.id for e in bad]


def test_a_killed_worker_leaves_pending_entries_another_one_claims(
    tmp_path: Path, rdb: redis.Redis, stream: str, shared_redis: str
) -> None:
    paths = [f"/data/f{i:03d}" for i in range(30)]
    produce(rdb, stream, paths)
    (tmp_path / "gate").touch()
    claims = {"claim_idle": "1s", "claim_interval": "200ms"}
    config(tmp_path, shared_redis, stream, "w1", **claims)
    config(tmp_path, shared_redis, stream, "w2", **claims)
    slow = {"LOAD_TIME": "0.02"}
    first = Background("run", "w1.yaml", cwd=tmp_path, env=slow)
    try:
        first.wait_ready()
        first.wait_for(lambda: len(loaded(tmp_path)) >= 5, 30, "w1 loaded nothing")
    finally:
        os.kill(first.proc.pid, signal.SIGKILL)  # no shutdown: its entries stay pending
        first.proc.wait(10)
    done_by_first = len(loaded(tmp_path))
    assert done_by_first < len(paths)
    assert pending(rdb, stream) > 0

    second = Background("run", "w2.yaml", cwd=tmp_path, env=slow)
    try:
        second.wait_ready()
        second.wait_for(lambda: set(paths) <= set(loaded(tmp_path)), 60, "entries lost")
        second.wait_for(lambda: pending(rdb, stream) == 0, 15, "entries not acked")
    finally:
        assert second.interrupt() == 0
    assert "claimed entries an idle consumer left pending" in second.stderr
    consumers = {c["name"].decode(): c["pending"] for c in rdb.xinfo_consumers(stream, "work")}
    assert consumers == {"w1": 0, "w2": 0}
