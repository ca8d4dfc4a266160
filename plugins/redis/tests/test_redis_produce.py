"""`pipeline run` publishing file events to Redis, checked by an independent consumer."""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

import pytest
import redis
from tests.e2e.cli import inbox_config, rss_kib, start_run

from redis_testing import RedisServer, entries

pytestmark = pytest.mark.e2e


def paths_and_kinds(client: redis.Redis, stream: str) -> list[tuple[str, str]]:
    out = []
    for _, fields in entries(client, stream):
        data = json.loads(fields[b"body"])["data"]
        out.append((data["path"], fields[b"type"].decode()))
    return out


def test_ten_thousand_events_arrive_each_once_in_order_per_path(
    tmp_path: Path, rdb: redis.Redis, stream: str, shared_redis: str
) -> None:
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    sink = f"""\
        type: redis
        url: {shared_redis}
        stream: {stream}
        batch_size: 256
        """
    files = 5000  # a created and a closed_write each: 10,000 events
    running = start_run(tmp_path, inbox_config(sink, events="created, closed_write"))
    try:
        started = time.monotonic()
        for i in range(files):
            (inbox / f"f{i:05d}.csv").write_bytes(b"x")
        running.wait_for(
            lambda: rdb.xlen(stream) >= 2 * files,
            60,
            lambda: f"{2 * files} entries ({rdb.xlen(stream)} came)",
            every=0.1,
        )
        elapsed = time.monotonic() - started
    finally:
        assert running.interrupt() == 0

    seen = paths_and_kinds(rdb, stream)
    assert len(seen) == 2 * files, "duplicates"
    per_path: dict[str, list[str]] = {}
    for path, kind in seen:
        per_path.setdefault(path, []).append(kind)
    assert len(per_path) == files
    assert all(kinds == ["fs.created", "fs.closed_write"] for kinds in per_path.values())
    ids = [fields[b"id"] for _, fields in entries(rdb, stream)]
    assert len(set(ids)) == len(ids)
    assert elapsed < 60


class StreamWatcher:
    """An independent consumer: XREAD from a thread, surviving the server's restarts."""

    def __init__(self, server: RedisServer, stream: str) -> None:
        self.server = server
        self.stream = stream
        self.paths: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._follow, daemon=True)
        self._thread.start()

    def _follow(self) -> None:
        last = b"0"
        while not self._stop.is_set():
            try:
                with self.server.client() as client:
                    while not self._stop.is_set():
                        reply: Any = client.xread({self.stream: last}, block=200, count=1000)
                        for _, new in reply or ():
                            for entry_id, fields in new:
                                last = entry_id
                                self.paths.append(json.loads(fields[b"body"])["data"]["path"])
            except redis.ConnectionError:
                last = b"0"  # the restarted server starts with an empty stream
                time.sleep(0.05)

    def wait_for(self, wanted: set[str], timeout: float, why: str) -> None:
        deadline = time.monotonic() + timeout
        while not wanted <= set(self.paths):
            missing = len(wanted - set(self.paths))
            assert time.monotonic() < deadline, f"{missing} events missing {why}"
            time.sleep(0.05)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)


def spooled(state_dir: Path) -> int:
    with sqlite3.connect(state_dir / "spool.sqlite3", timeout=5) as db:
        return int(db.execute("SELECT COUNT(*) FROM spool").fetchone()[0])


def test_an_outage_loses_nothing_with_a_spool_and_memory_stays_flat(
    tmp_path: Path, own_redis: RedisServer
) -> None:
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    sink = f"""\
        type: redis
        url: {own_redis.url}
        stream: landing
        timeout: 1s
        batch_size: 128
        spool: true
        max_attempts: 1000       # with retry_max_backoff 500ms: an outage of 8 minutes
        retry_backoff: 100ms
        retry_max_backoff: 500ms
        """

    def write(names: range) -> set[str]:
        for i in names:
            (inbox / f"f{i:05d}").write_bytes(b"x")
        return {str(inbox / f"f{i:05d}") for i in names}

    watcher = StreamWatcher(own_redis, "landing")
    running = start_run(tmp_path, inbox_config(sink, state_dir=True))
    try:
        before = write(range(0, 500))
        watcher.wait_for(before, 30, "before the outage")
        baseline = rss_kib(running.proc.pid)

        own_redis.shutdown()  # redis-cli shutdown nosave
        during = write(range(500, 3500))
        running.wait_for(  # the backlog waits on disk
            lambda: spooled(tmp_path / "state") >= 2500, 30, "2500 events spooled", every=0.1
        )
        peak = rss_kib(running.proc.pid)
        own_redis.start()
        after = write(range(3500, 4000))

        watcher.wait_for(during | after, 60, "after the outage")
        assert running.proc.poll() is None
    finally:
        watcher.stop()
        code = running.interrupt()
    assert code == 0, running.stderr
    assert "delivery failed; will retry" in running.stderr
    assert not (tmp_path / "state" / "dead-letter.jsonl").exists()  # none given up
    assert peak - baseline < 40_000, f"RSS grew {peak - baseline} KiB during the outage"
    assert len(watcher.paths) >= 4000  # duplicates allowed, losses not
