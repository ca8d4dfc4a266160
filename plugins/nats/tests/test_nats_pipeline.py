"""`pipeline run` publishing to NATS: 10,000 events each once and in order; an outage."""

from __future__ import annotations

import asyncio
import collections
import time
from pathlib import Path

import pytest
from pipeline import from_json
from tests.e2e.cli import Background, inbox_config, rss_kib, start_run

from nats_servers import PrivateServer, read_stream, stream_count

pytestmark = [pytest.mark.integration, pytest.mark.e2e]

PUBLISHER = """\
type: nats
url: {url}
subject: "{stream}.{{pipeline}}.{{kind}}"
create_stream: {{name: {stream}}}
batch_size: 256
reconnect_wait: 100ms
reconnect_max_wait: 500ms
publish_timeout: 2s
{extra}"""


def start_publisher(folder: Path, url: str, stream: str, extra: str = "") -> Background:
    (folder / "inbox").mkdir()
    sink = PUBLISHER.format(url=url, stream=stream, extra=extra)
    return start_run(folder, inbox_config(sink, state_dir=True))


def wait_count(url: str, stream: str, count: int, running: Background, timeout: float) -> None:
    running.wait_for(
        lambda: asyncio.run(stream_count(url, stream)) >= count,
        timeout,
        lambda: f"{asyncio.run(stream_count(url, stream))} of {count} messages",
        every=0.2,
    )


def test_ten_thousand_events_arrive_each_once_in_order_per_path(
    tmp_path: Path, nats_url: str, stream_name: str
) -> None:
    running = start_publisher(tmp_path, nats_url, stream_name)
    try:
        paths = [tmp_path / "inbox" / f"file-{n:04d}.csv" for n in range(2000)]
        for round_ in range(5):  # 5 closed_write events per path, 10,000 in all
            for path in paths:
                with path.open("a") as handle:
                    handle.write(f"{round_}\n")
        wait_count(nats_url, stream_name, 10_000, running, timeout=90)
        time.sleep(0.5)  # nothing more arrives
    finally:
        assert running.interrupt() == 0
    messages = asyncio.run(read_stream(nats_url, stream_name))
    events = [from_json(m.data) for m in messages]
    assert len(events) == 10_000
    assert len({e.id for e in events}) == 10_000  # each event once
    per_path: dict[str, list[str]] = collections.defaultdict(list)
    for event in events:
        per_path[event.path].append(event.id)  # ids are UUIDv7: they sort as they were made
    assert set(per_path) == {str(p) for p in paths}
    assert all(len(ids) == 5 and ids == sorted(ids) for ids in per_path.values())
    assert {m.headers["type"] for m in messages if m.headers} == {"fs.closed_write"}
    assert all(
        m.headers and m.headers["Nats-Msg-Id"] == e.id
        for m, e in zip(messages, events, strict=True)
    )


def test_an_outage_loses_nothing_and_keeps_memory_flat(
    tmp_path: Path, private_nats: PrivateServer
) -> None:
    extra = "spool: true\nmax_attempts: 0\nretry_max_backoff: 500ms\n"
    running = start_publisher(tmp_path, private_nats.url, "OUT", extra)
    inbox = tmp_path / "inbox"
    try:
        for n in range(500):
            (inbox / f"before-{n:04d}").write_text("x")
        wait_count(private_nats.url, "OUT", 500, running, timeout=60)
        baseline = rss_kib(running.proc.pid)

        private_nats.kill()
        for n in range(2000):  # produced while NATS is down: they wait in the spool on disk
            (inbox / f"during-{n:04d}").write_text("x")
        spool = tmp_path / "state" / "spool.sqlite3"
        running.wait_for(
            lambda: "delivery failed; will retry" in running.stderr, 30, "a failed delivery"
        )
        time.sleep(1.0)  # retrying for a while, with the events on disk
        during = rss_kib(running.proc.pid)
        assert running.proc.poll() is None
        on_disk = sum(p.stat().st_size for p in spool.parent.glob(spool.name + "*"))
        assert spool.exists() and on_disk > 50_000  # the WAL holds what is not checkpointed yet

        private_nats.start()  # same store: the stream and its messages are back
        for n in range(500):
            (inbox / f"after-{n:04d}").write_text("x")
        wait_count(private_nats.url, "OUT", 3000, running, timeout=90)
    finally:
        code = running.interrupt()
    assert code == 0
    names = sorted(
        Path(from_json(m.data).path).name for m in asyncio.run(read_stream(private_nats.url, "OUT"))
    )
    expected = sorted(
        [f"before-{n:04d}" for n in range(500)]
        + [f"during-{n:04d}" for n in range(2000)]
        + [f"after-{n:04d}" for n in range(500)]
    )
    assert names == expected  # every event, each once (Nats-Msg-Id drops the retried copies)
    assert during - baseline < 40_000, f"RSS grew {during - baseline} KiB during the outage"
    assert "Traceback" not in running.stderr
