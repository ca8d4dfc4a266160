"""`pipeline run` with the amqp sink and source against the real RabbitMQ, checked from outside:
the test's own connection reads the queues, the command sink writes what it processed."""

from __future__ import annotations

import collections
import json
import os
import signal
import threading
import time
from pathlib import Path

import pytest
from pipeline import EventKind, from_json
from tests.e2e.cli import Background, inbox_config, pipeline, rss_kib, start_run

from amqp_testkit import BAD_PASSWORD, BAD_URL, URL, Broker, event, start_broker, stop_app

pytestmark = [pytest.mark.e2e, pytest.mark.integration]

ENV = {"AMQP_URL": URL}


def lines(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []


def test_10000_events_arrive_once_each_in_order_per_path(
    tmp_path: Path, broker: Broker, names: str
) -> None:
    exchange = broker.exchange(names)
    queue = broker.queue(names, bind=(exchange, "fs.#"))
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    sink = f"""\
        type: amqp
        url: ${{AMQP_URL}}
        exchange: {exchange}
        batch_size: 256
        """
    config = inbox_config(sink, events="created, closed_write, deleted")
    run = start_run(tmp_path, config, env=ENV)
    files = 3334  # created + closed_write + deleted each: 10,002 events
    for n in range(files):
        path = inbox / f"f{n:04d}.csv"
        path.write_bytes(b"x")
        path.unlink()

    got = broker.drain(queue, files * 3, timeout=90)
    assert run.interrupt() == 0, run.stderr

    events = [from_json(m.body) for m in got]
    assert len(events) == files * 3
    assert len({e.id for e in events}) == len(events)  # each once
    assert all(m.properties["message_id"] == e.id for m, e in zip(got, events, strict=True))
    kinds: dict[str, list[EventKind]] = collections.defaultdict(list)
    for one in events:
        kinds[one.path].append(one.kind)
    assert len(kinds) == files
    expected = [EventKind.CREATED, EventKind.CLOSED_WRITE, EventKind.DELETED]
    out_of_order = [p for p, seen in kinds.items() if seen != expected]
    assert not out_of_order, f"{len(out_of_order)} paths, e.g. {kinds[out_of_order[0]]}"


def test_a_broker_outage_loses_nothing_with_a_spool(
    tmp_path: Path, broker: Broker, names: str
) -> None:
    """stop_app mid-run while files keep arriving: the sink spools and retries, the
    consuming pipeline reconnects; every event reaches both queues' readers."""
    exchange = broker.exchange(names)
    audit = broker.queue(f"{names}.audit", bind=(exchange, "fs.#"))
    work = broker.queue(f"{names}.work", bind=(exchange, "fs.#"))
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    sink = f"""\
        type: amqp
        url: ${{AMQP_URL}}
        exchange: {exchange}
        connect_timeout: 1s
        spool: true
        batch_size: 64
        max_attempts: 0
        retry_backoff: 100ms
        retry_max_backoff: 500ms
        """
    worker = f"""\
        worker:
          sources:
            - type: amqp
              url: ${{AMQP_URL}}
              queue: {work}
              reconnect_backoff: 100ms
              reconnect_max_backoff: 500ms
          sinks:
            - type: logfile
              path: worked.jsonl
        """
    run = start_run(tmp_path, inbox_config(sink, state_dir=True, more=worker), env=ENV)
    written: list[str] = []
    stop = threading.Event()

    def produce() -> None:
        while not stop.is_set():
            path = inbox / f"f{len(written):05d}.csv"
            path.write_bytes(b"x")
            written.append(str(path))
            time.sleep(0.004)

    producer = threading.Thread(target=produce)
    producer.start()
    try:
        time.sleep(1.0)
        before = rss_kib(run.proc.pid)
        stop_app()
        during = len(written)
        time.sleep(2.0)  # files keep coming while the broker is away
        peak = rss_kib(run.proc.pid)
        start_broker()
        time.sleep(1.0)
    finally:
        stop.set()
        producer.join()
    assert len(written) - during > 200  # a real backlog built up during the outage

    audited = {from_json(m.body).path for m in broker.drain(audit, len(written), timeout=60)}
    worked_log = tmp_path / "worked.jsonl"
    run.wait_for(
        lambda: {json.loads(line)["data"]["path"] for line in lines(worked_log)} >= set(written),
        30,
        "the worker pipeline did not log every event",
    )
    assert run.interrupt() == 0, run.stderr

    assert audited == set(written)  # none lost (a retried publish may arrive twice)
    assert peak - before < 50 * 1024, f"RSS grew {peak - before} KiB during the outage"
    assert "delivery failed; will retry" in run.stderr
    assert "cannot consume from RabbitMQ; reconnecting" in run.stderr
    assert "Traceback" not in run.stderr


SLOW_LOADER = 'sleep 0.05; echo "$1" >> done.txt'
FAILING_LOADER = 'case "$1" in *fail*) exit 3;; esac; echo "$1" >> done.txt'


def consumer_config(tmp_path: Path, names: str, script: str, extra: str = "") -> None:
    (tmp_path / "config.yaml").write_text(f"""\
state_dir: state
pipelines:
  worker:
    sources:
      - type: amqp
        url: ${{AMQP_URL}}
        queue: {names}
        prefetch: 4
{extra}
    sinks:
      - type: command
        argv: [sh, -c, '{script}', sh, "{{path}}"]
        max_attempts: 2
        retry_backoff: 50ms
""")


def test_a_consumer_acks_only_after_its_sink_and_a_kill_loses_nothing(
    tmp_path: Path, broker: Broker, names: str
) -> None:
    queue = broker.queue(names)
    sent = [event(n) for n in range(40)]
    broker.publish_events(queue, sent)
    consumer_config(tmp_path, names, SLOW_LOADER)
    done = tmp_path / "done.txt"

    first = Background("run", "config.yaml", cwd=tmp_path, env=ENV)
    first.wait_ready()
    first.wait_for(lambda: len(lines(done)) >= 10, 30, "10 events not processed")
    os.kill(first.proc.pid, signal.SIGKILL)  # mid-run: no drain, no goodbye
    first.proc.wait(10)

    requeued = {from_json(m.body).id for m in broker.peek(queue)}
    processed = set(lines(done))
    acked = [e for e in sent if e.id not in requeued]
    assert 1 <= len(acked) < len(sent)  # acks trail the commands a little: no exact count
    assert all(e.path in processed for e in acked)  # acked only once its command succeeded

    second = Background("run", "config.yaml", cwd=tmp_path, env=ENV)
    second.wait_ready()
    second.wait_for(lambda: set(lines(done)) >= {e.path for e in sent}, 30, "not all done")
    assert second.interrupt() == 0, second.stderr
    assert broker.count(queue) == 0
    assert broker.peek(queue) == []  # nothing left unacked either


def test_a_failing_sink_sends_the_message_to_the_dead_letter_exchange(
    tmp_path: Path, broker: Broker, names: str
) -> None:
    broker.queues += [names, f"{names}.dlq"]
    broker.exchanges.append(f"{names}.dlx")
    declare = f"""\
        declare:
          exchanges: [{{name: {names}.dlx, type: fanout}}]
          queues:
            - {{name: {names}, dead_letter_exchange: {names}.dlx}}
            - {{name: {names}.dlq, bindings: [{{exchange: {names}.dlx}}]}}"""
    consumer_config(tmp_path, names, FAILING_LOADER, declare)
    run = Background("run", "config.yaml", cwd=tmp_path, env=ENV)
    run.wait_ready()
    good = [event(n) for n in range(3)]
    bad = [event(n, root="/fail") for n in range(2)]
    broker.publish_events(names, [good[0], bad[0], good[1], bad[1], good[2]])

    dead = broker.drain(f"{names}.dlq", 2, timeout=30)
    run.wait_for(lambda: len(lines(tmp_path / "done.txt")) == 3, 10, "good ones not done")
    assert run.interrupt() == 0, run.stderr

    assert sorted(from_json(m.body).id for m in dead) == sorted(e.id for e in bad)
    assert sorted(lines(tmp_path / "done.txt")) == sorted(e.path for e in good)
    assert broker.count(names) == 0


def test_wrong_credentials_are_reported_by_check_and_retried_by_run(
    tmp_path: Path, broker: Broker, names: str
) -> None:
    queue = broker.queue(names)
    (tmp_path / "inbox").mkdir()
    (tmp_path / "config.yaml").write_text(f"""\
pipelines:
  landing:
    sources:
      - type: inotify
        paths: [inbox]
    sinks:
      - type: amqp
        url: ${{AMQP_URL}}
  worker:
    sources:
      - type: amqp
        url: ${{AMQP_URL}}
        queue: {queue}
        reconnect_backoff: 100ms
        reconnect_max_backoff: 400ms
    sinks:
      - type: console
""")
    env = {"AMQP_URL": BAD_URL}

    checked = pipeline("check", "--connect", "config.yaml", cwd=tmp_path, env=env)
    assert checked.returncode == 1, checked.stdout + checked.stderr
    assert checked.stdout.count("refused the login (ACCESS_REFUSED)") == 2, checked.stdout
    assert "amqp://guest:***@127.0.0.1:5672/" in checked.stdout
    assert BAD_PASSWORD not in checked.stdout + checked.stderr

    run = Background("run", "config.yaml", cwd=tmp_path, env=env)
    run.wait_ready()  # it starts, and keeps trying
    time.sleep(1.5)
    assert run.proc.poll() is None
    assert run.interrupt() == 0, run.stderr
    retries = [
        json.loads(line)
        for line in run.stderr.splitlines()
        if "cannot consume from RabbitMQ" in line
    ]
    assert len(retries) >= 3
    assert all("ACCESS_REFUSED" in r["error"] for r in retries)
    assert BAD_PASSWORD not in run.stderr
