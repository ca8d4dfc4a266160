"""The amqp source against the real RabbitMQ, with the test settling events as the engine would."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from pipeline import from_json
from structlog.testing import capture_logs
from tests.conftest import Running

from amqp_testkit import (
    BAD_PASSWORD,
    BAD_URL,
    DEAD_URL,
    URL,
    Broker,
    close_all_connections,
    event,
    make,
)
from fspipeline_amqp import AmqpSource

pytestmark = pytest.mark.integration


def dead_letter_topology(names: str) -> dict[str, Any]:
    """A work queue whose rejected messages go through a fanout exchange to `<names>.dlq`."""
    return {
        "exchanges": [{"name": f"{names}.dlx", "type": "fanout"}],
        "queues": [
            {"name": names, "dead_letter_exchange": f"{names}.dlx"},
            {"name": f"{names}.dlq", "bindings": [{"exchange": f"{names}.dlx"}]},
        ],
    }


def source_for(tmp_path: Path, names: str, **options: Any) -> AmqpSource:
    source: AmqpSource = make(AmqpSource, tmp_path, url=URL, queue=names, **options)
    return source


def test_emits_events_and_acks_only_what_was_settled(
    tmp_path: Path, broker: Broker, names: str
) -> None:
    queue = broker.queue(names)
    sent = [event(n) for n in range(3)]
    broker.publish_events(queue, sent)
    source = source_for(tmp_path, names)

    async def run() -> list[Any]:
        async with Running(source) as running:
            await running.wait_for(lambda events: len(events) == 3)
            source.settled(running.events[0], True)
            source.settled(running.events[1], True)
            await asyncio.sleep(0.2)
            return running.events

    emitted = asyncio.run(run())  # the source closed with the third event unsettled

    assert emitted == sent  # the same events, ids included, in queue order
    left = broker.peek(queue)
    assert [from_json(m.body).id for m in left] == [sent[2].id]  # back in the queue


def test_a_failed_event_goes_to_the_dead_letter_exchange(
    tmp_path: Path, broker: Broker, names: str
) -> None:
    broker.queues += [names, f"{names}.dlq"]
    broker.exchanges.append(f"{names}.dlx")
    source = source_for(tmp_path, names, declare=dead_letter_topology(names))
    good, bad = event(1), event(2)

    async def run() -> None:
        async with Running(source) as running:
            await asyncio.to_thread(broker.publish_events, names, [good, bad])
            await running.wait_for(lambda events: len(events) == 2)
            source.settled(running.events[0], True)
            source.settled(running.events[1], False)
            await asyncio.sleep(0.2)

    with capture_logs() as logs:
        asyncio.run(run())

    assert [from_json(m.body).id for m in broker.drain(f"{names}.dlq", 1)] == [bad.id]
    assert broker.count(names) == 0
    assert any("dead-letter exchange" in log["event"] for log in logs)


def test_a_body_that_is_not_an_event_is_rejected_and_consuming_goes_on(
    tmp_path: Path, broker: Broker, names: str
) -> None:
    broker.queues += [names, f"{names}.dlq"]
    broker.exchanges.append(f"{names}.dlx")
    source = source_for(tmp_path, names, declare=dead_letter_topology(names))
    after = event(9)

    async def run() -> list[Any]:
        async with Running(source) as running:
            await asyncio.to_thread(broker.publish_raw, names, [b"{not json at all"])
            await asyncio.to_thread(broker.publish_events, names, [after])
            await running.wait_for(lambda events: len(events) == 1)
            source.settled(running.events[0], True)
            await asyncio.sleep(0.2)
            return running.events

    with capture_logs() as logs:
        emitted = asyncio.run(run())

    assert emitted == [after]
    assert [m.body for m in broker.drain(f"{names}.dlq", 1)] == [b"{not json at all"]
    (warning,) = [log for log in logs if "not an fspipeline event" in log["event"]]
    assert warning["body"] == "{not json at all"


def test_prefetch_bounds_the_events_in_flight(tmp_path: Path, broker: Broker, names: str) -> None:
    queue = broker.queue(names)
    broker.publish_events(queue, [event(n) for n in range(20)])
    source = source_for(tmp_path, names, prefetch=5)

    async def run() -> tuple[int, int]:
        async with Running(source) as running:
            await running.wait_for(lambda events: len(events) == 5)
            await asyncio.sleep(0.3)
            held = len(running.events)  # nothing settled: the broker hands over no more
            for settled in list(running.events):
                source.settled(settled, True)
            await running.wait_for(lambda events: len(events) == 10)
            return held, len(running.events)

    held, after = asyncio.run(run())

    assert (held, after) == (5, 10)


def test_keeps_reconnecting_with_capped_backoff_when_the_broker_is_unreachable(
    tmp_path: Path, rabbitmq: str
) -> None:
    source = make(
        AmqpSource,
        tmp_path,
        url=DEAD_URL,
        queue="anything",
        reconnect_backoff="50ms",
        reconnect_max_backoff="200ms",
    )

    async def run() -> None:
        async with Running(source):  # open() does not fail
            await asyncio.sleep(1.2)

    with capture_logs() as logs:
        asyncio.run(run())

    retries = [log for log in logs if log["event"] == "cannot consume from RabbitMQ; reconnecting"]
    assert len(retries) >= 4
    assert [r["attempt"] for r in retries[:4]] == [1, 2, 3, 4]
    assert max(r["retry_in"] for r in retries) == 0.2
    assert "cannot reach RabbitMQ at amqp://guest:***@127.0.0.1:1/" in retries[0]["error"]
    assert BAD_PASSWORD not in repr(logs)


def test_resumes_consuming_when_the_broker_comes_back_to_the_queue(
    tmp_path: Path, broker: Broker, names: str
) -> None:
    """A queue that appears after the source started (declared late by someone else)."""
    source = source_for(tmp_path, names, reconnect_backoff="50ms", reconnect_max_backoff="100ms")
    late = event(3)

    async def run() -> list[Any]:
        async with Running(source) as running:
            await asyncio.sleep(0.3)  # NOT_FOUND, retried
            await asyncio.to_thread(broker.queue, names)
            await asyncio.to_thread(broker.publish_events, names, [late])
            await running.wait_for(lambda events: len(events) == 1)
            source.settled(running.events[0], True)
            await asyncio.sleep(0.2)
            return running.events

    with capture_logs() as logs:
        assert asyncio.run(run()) == [late]
    assert any(f"no queue '{names}'" in str(log.get("error")) for log in logs)
    assert broker.count(names) == 0


def test_probe_names_what_is_wrong(tmp_path: Path, broker: Broker, names: str) -> None:
    def probe(**options: Any) -> str | None:
        try:
            asyncio.run(make(AmqpSource, tmp_path, **options).probe())
        except Exception as exc:
            return str(exc)
        return None

    queue = broker.queue(names)
    assert probe(url=URL, queue=queue) is None
    assert "refused the login (ACCESS_REFUSED)" in (probe(url=BAD_URL, queue=queue) or "")
    assert "cannot reach RabbitMQ" in (probe(url=DEAD_URL, queue=queue) or "")
    missing = probe(url=URL, queue=f"{names}.nope") or ""
    assert f"NOT_FOUND - no queue '{names}.nope' in vhost '/'" in missing
    assert "declare:" in missing
    vhost = probe(url=URL.rstrip("/") + "/nope", queue=queue) or ""
    assert "virtual host 'nope' does not exist" in vhost


def test_after_a_lost_connection_late_settlements_do_not_block_new_acks(
    tmp_path: Path, broker: Broker, names: str
) -> None:
    """Events emitted before the connection dropped settle after the reconnect: their
    messages went back to the queue, and the redelivered copies must still be acked."""
    queue = broker.queue(names)
    sent = [event(n) for n in range(12)]
    broker.publish_events(queue, sent)
    source = source_for(
        tmp_path, names, prefetch=4, reconnect_backoff="50ms", reconnect_max_backoff="100ms"
    )

    async def run() -> list[Any]:
        async with Running(source) as running:
            await running.wait_for(lambda events: len(events) == 4)
            await asyncio.to_thread(close_all_connections)
            settled = 0
            deadline = asyncio.get_running_loop().time() + 20
            while {e.id for e in running.events} < {e.id for e in sent} or settled < len(
                running.events
            ):
                assert asyncio.get_running_loop().time() < deadline, len(running.events)
                for one in running.events[settled:]:  # the old ones first
                    source.settled(one, True)
                settled = len(running.events)
                await asyncio.sleep(0.05)
            await asyncio.sleep(0.3)
            return running.events

    emitted = asyncio.run(run())

    assert {e.id for e in emitted} == {e.id for e in sent}
    assert len(emitted) >= 16  # the first four came twice
    assert broker.peek(queue) == []  # every redelivered copy was acked
