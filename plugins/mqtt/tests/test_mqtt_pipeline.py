"""The mqtt plugin through `pipeline run`, checked with mosquitto_sub as an independent reader.

- 10,000 events arrive each once, in order per path (the machine's Mosquitto).
- The broker is killed mid-run while files keep coming: with `spool: true` every event
  arrives once the broker is back (a private Mosquitto, so the shared one keeps running).
- Wrong credentials: `pipeline check --connect` says so; `pipeline run` keeps retrying.
- The mqtt source acknowledges a message only after its sink delivered the event.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import threading
import time
import uuid
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from pipeline import Event, EventKind
from tests.conftest import make_component
from tests.e2e.cli import Background, inbox_config, pipeline, start_run

from fspipeline_mqtt import MqttSink

pytestmark = pytest.mark.e2e

PASSWORD = "s3cret-Pw"


def test_ten_thousand_events_arrive_each_once_in_order_per_path(
    tmp_path: Path, mosquitto: str, subscribe: Callable[..., Any]
) -> None:
    prefix = f"bulk-{uuid.uuid4().hex[:8]}"
    reader = subscribe(mosquitto, f"{prefix}/#")
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    sink = f"""\
        type: mqtt
        url: {mosquitto}
        topic: "{prefix}/{{pipeline}}/{{kind}}"
        qos: 1
        batch_size: 256
        """
    run = start_run(tmp_path, inbox_config(sink, pipeline="bulk"))
    files = [inbox / f"f{n:05d}.csv" for n in range(5000)]
    for rewrite in range(2):  # each file twice, the two events far apart in the queue
        for path in files:
            path.write_bytes(b"x" * (rewrite + 1))
    run.wait_for(
        lambda: len(reader.events()) >= 10_000, 120, lambda: f"{len(reader.events())} arrived"
    )
    time.sleep(0.5)  # anything extra would show up now
    assert run.interrupt() == 0
    received = reader.events()
    assert len(received) == 10_000
    assert len({e["id"] for e in received}) == 10_000
    by_path: dict[str, list[str]] = defaultdict(list)
    for event in received:
        by_path[event["data"]["path"]].append(event["id"])
    assert set(by_path) == {str(p) for p in files}
    for ids in by_path.values():
        assert len(ids) == 2
        assert ids == sorted(ids)  # ids grow with time: the first write came first


def test_broker_killed_mid_run_loses_nothing_with_a_spool(
    tmp_path: Path, private_broker: Callable[..., Any], subscribe: Callable[..., Any]
) -> None:
    broker = private_broker()
    reader = subscribe(broker.url(), "fs/#")
    time.sleep(1.5)  # the broker's autosave has the subscriber's session on disk
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    sink = f"""\
        type: mqtt
        url: {broker.url()}
        persistent_session: true
        client_id: landing-outage-test
        ack_timeout: 2s
        spool: true
        batch_size: 64
        max_attempts: 1000
        retry_backoff: 100ms
        retry_max_backoff: 500ms
        """
    run = start_run(tmp_path, inbox_config(sink, state_dir=True))
    files = [inbox / f"o{n:04d}.csv" for n in range(1000)]

    def produce() -> None:
        for path in files:
            path.write_text("x")
            time.sleep(0.004)  # about 250 files a second, for four seconds

    producer = threading.Thread(target=produce)
    producer.start()
    run.wait_for(lambda: len(reader.events()) > 200, 30, "200 events before the kill")
    broker.kill()  # SIGKILL while files keep coming
    time.sleep(2.0)
    broker.start()
    producer.join()
    wanted = {str(p) for p in files}
    run.wait_for(
        lambda: {e["data"]["path"] for e in reader.events()} >= wanted,
        60,
        lambda: f"{len(wanted - {e['data']['path'] for e in reader.events()})} missing",
    )
    assert run.interrupt() == 0
    received = reader.events()
    assert len({e["id"] for e in received}) == len(files)  # each event once, some maybe twice
    assert "delivery failed; will retry" in run.stderr  # the outage was seen


def test_wrong_password_fails_the_check_and_the_run_keeps_retrying(
    tmp_path: Path, private_broker: Callable[..., Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    broker = private_broker(users={"ingest": PASSWORD})
    (tmp_path / "inbox").mkdir()
    (tmp_path / "config.yaml").write_text(
        f"""\
shutdown_timeout: 1s  # the event that cannot be delivered is not waited for at Ctrl-C
pipelines:
  landing:
    sources:
      - type: inotify
        paths: [inbox]
        events: [closed_write]
    sinks:
      - type: mqtt
        url: mqtt://ingest:${{MQTT_PASSWORD}}@127.0.0.1:{broker.port}
        retry_backoff: 100ms
        max_attempts: 1000
  worker:
    sources:
      - type: mqtt
        url: mqtt://ingest:${{MQTT_PASSWORD}}@127.0.0.1:{broker.port}
    sinks:
      - type: console
"""
    )
    env = {"MQTT_PASSWORD": "wr0ng-Pw"}
    monkeypatch.setenv("MQTT_PASSWORD", env["MQTT_PASSWORD"])
    checked = pipeline("check", "--connect", "config.yaml", cwd=tmp_path)
    assert checked.returncode == 1, checked.stdout + checked.stderr
    assert "refused the login" in checked.stdout
    assert "wr0ng-Pw" not in checked.stdout + checked.stderr
    assert checked.stdout.count("refused the login") == 2  # the sink and the source

    run = Background("run", "config.yaml", cwd=tmp_path, env=env)
    run.wait_ready()
    (tmp_path / "inbox" / "a.csv").write_text("x")
    run.wait_for(lambda: run.stderr.count("will retry") >= 3, 30, "3 retries of the sink")
    run.wait_for(
        lambda: run.stderr.count("MQTT broker not available; retrying") >= 2,
        30,
        "2 retries of the source",
    )
    assert run.proc.poll() is None  # still running
    assert run.interrupt() == 0
    assert "wr0ng-Pw" not in run.stderr
    assert "refused the login" in run.stderr
    assert "Traceback" not in run.stderr


LOADER = """\
import sys, time
time.sleep(0.4)  # a slow ingestion: events wait in the pipeline, unacknowledged
with open(sys.argv[1], "a") as out:
    out.write(sys.argv[2] + "\\n")
"""


def test_the_source_acknowledges_only_what_its_sink_delivered(
    tmp_path: Path, mosquitto: str
) -> None:
    prefix = f"work-{uuid.uuid4().hex[:8]}"
    (tmp_path / "loader.py").write_text(LOADER)
    loaded = tmp_path / "loaded.txt"
    (tmp_path / "config.yaml").write_text(
        f"""\
pipelines:
  worker:
    sources:
      - type: mqtt
        url: {mosquitto}
        topics: ["{prefix}/#"]
        client_id: {prefix}-worker
        session_expiry: 60s
    sinks:
      - type: command
        argv: [{sys.executable}, loader.py, {loaded}, "{{path}}"]
"""
    )
    first = Background("run", "config.yaml", cwd=tmp_path)
    first.wait_ready()
    time.sleep(0.5)  # subscribed: the session exists from now on
    sent = [Event(EventKind.CLOSED_WRITE, f"/in/w{n}.csv", "up/inotify") for n in range(6)]
    publish(tmp_path, mosquitto, prefix, sent)

    def lines() -> list[str]:
        return loaded.read_text().splitlines() if loaded.exists() else []

    first.wait_for(lambda: len(lines()) >= 2, 20, "2 events loaded")
    os.kill(first.proc.pid, signal.SIGKILL)  # no shutdown: the rest is not acknowledged
    first.proc.wait(10)
    assert len(lines()) < 6
    second = Background("run", "config.yaml", cwd=tmp_path)
    second.wait_ready()
    second.wait_for(lambda: set(lines()) >= {e.path for e in sent}, 30, "every event loaded")
    assert second.interrupt() == 0
    assert lines().count(sent[0].path) == 1  # delivered and acknowledged before the kill


def publish(folder: Path, url: str, prefix: str, events: list[Event]) -> None:
    async def send() -> None:
        sink = make_component(MqttSink, folder, url=url, topic=prefix + "/{kind}")
        await sink.open()
        await sink.send_batch(events)
        await sink.close()

    asyncio.run(send())
