"""The amqp sink against the real RabbitMQ, run the way the engine runs it: open, send, close."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC
from pathlib import Path
from typing import Any

import pydantic
import pytest
from pipeline import Event, EventKind, from_json
from structlog.testing import capture_logs

from amqp_testkit import BAD_PASSWORD, BAD_URL, DEAD_URL, URL, Broker, event, make
from fspipeline_amqp import AmqpSink, BrokerError

pytestmark = pytest.mark.integration


def deliver(sink: AmqpSink, *events: Event, batch: bool = False) -> None:
    async def run() -> None:
        await sink.open()
        try:
            if batch:
                await sink.send_batch(events)
            else:
                for one in events:
                    await sink.send(one)
        finally:
            await sink.close()

    asyncio.run(run())


def failure_of(sink: AmqpSink, one: Event) -> str:
    with pytest.raises(Exception) as caught:
        deliver(sink, one)
    return str(caught.value)


def test_publishes_cloudevents_with_id_type_and_persistence(
    tmp_path: Path, broker: Broker, names: str
) -> None:
    exchange = broker.exchange(names)
    queue = broker.queue(names, bind=(exchange, "fs.#"))
    sink = make(AmqpSink, tmp_path, pipeline="landing", url=URL, exchange=exchange)
    sent = [event(1), event(2, EventKind.MOVED), event(3, EventKind.DELETED)]

    deliver(sink, *sent)

    got = broker.drain(queue, 3)
    assert [m.routing_key for m in got] == ["fs.closed_write", "fs.moved", "fs.deleted"]
    first = got[0]
    assert first.properties["message_id"] == sent[0].id
    assert first.properties["type"] == "fs.closed_write"
    assert first.properties["content_type"] == "application/cloudevents+json"
    assert first.properties["delivery_mode"] == 2
    assert first.properties["app_id"] == "fspipeline"
    stamp = first.properties["timestamp"]
    assert abs(stamp.replace(tzinfo=UTC).timestamp() - sent[0].time.timestamp()) < 1
    assert [from_json(m.body) for m in got] == sent  # the same events, ids included
    assert json.loads(first.body)["type"] == "fs.closed_write"


def test_templates_route_by_pipeline_and_meta(tmp_path: Path, broker: Broker, names: str) -> None:
    exchange = broker.exchange(f"{names}.landing")
    queue = broker.queue(names, bind=(exchange, "eu.#"))
    sink = make(
        AmqpSink,
        tmp_path,
        pipeline="landing",
        url=URL,
        exchange=f"{names}.{{pipeline}}",
        routing_key="{meta.region:-eu}.{kind}.{ext}",
    )
    sent = event(7).with_meta(region="eu")

    deliver(sink, sent)

    (got,) = broker.drain(queue, 1)
    assert got.exchange == exchange
    assert got.routing_key == "eu.closed_write..csv"


def test_a_batch_is_published_at_once_in_order(tmp_path: Path, broker: Broker, names: str) -> None:
    exchange = broker.exchange(names)
    queue = broker.queue(names, bind=(exchange, "#"))
    sink = make(AmqpSink, tmp_path, url=URL, exchange=exchange)
    sent = [event(n) for n in range(500)]

    deliver(sink, *sent, batch=True)

    got = broker.drain(queue, 500)
    assert [m.properties["message_id"] for m in got] == [e.id for e in sent]


def test_an_unroutable_message_fails_the_delivery(
    tmp_path: Path, broker: Broker, names: str
) -> None:
    exchange = broker.exchange(names)  # no queue bound
    sink = make(AmqpSink, tmp_path, url=URL, exchange=exchange)

    reason = failure_of(sink, event(1))

    assert "unroutable (NO_ROUTE)" in reason
    assert f"exchange {exchange!r}" in reason
    assert "routing key 'fs.closed_write'" in reason
    assert "mandatory: false" in reason  # says what to do
    quiet = make(AmqpSink, tmp_path, url=URL, exchange=exchange, mandatory=False)
    deliver(quiet, event(1))  # dropped by the broker, as asked


def test_a_missing_exchange_fails_until_it_exists(
    tmp_path: Path, broker: Broker, names: str
) -> None:
    sink = make(AmqpSink, tmp_path, url=URL, exchange=names)

    async def run() -> tuple[str, None]:
        await sink.open()
        try:
            with pytest.raises(BrokerError) as missing:
                await sink.send(event(1))
            await broker.session(lambda ch: ch.declare_exchange(names, "topic"))
            broker.exchanges.append(names)
            await broker.session(lambda ch: _bound_queue(ch, names))
            broker.queues.append(names)
            return str(missing.value), await sink.send(event(2))  # same sink: recovered
        finally:
            await sink.close()

    reason, _ = asyncio.run(run())

    assert f"NOT_FOUND - no exchange '{names}' in vhost '/'" in reason
    assert "declare:" in reason
    assert [from_json(m.body).path for m in broker.drain(names, 1)] == [event(2).path]


async def _bound_queue(channel: Any, name: str) -> None:
    queue = await channel.declare_queue(name, durable=True)
    await queue.bind(name, routing_key="#")


def test_declares_the_topology_it_is_given(tmp_path: Path, broker: Broker, names: str) -> None:
    broker.exchanges.append(names)
    broker.queues.append(names)
    sink = make(
        AmqpSink,
        tmp_path,
        url=URL,
        exchange=names,
        declare={
            "exchanges": [{"name": names, "type": "topic"}],
            "queues": [{"name": names, "bindings": [{"exchange": names, "routing_key": "fs.*"}]}],
        },
    )

    deliver(sink, event(1), event(2))

    assert len(broker.drain(names, 2)) == 2


def test_starts_without_the_broker_and_fails_deliveries_clearly(tmp_path: Path) -> None:
    sink = make(AmqpSink, tmp_path, url=DEAD_URL, connect_timeout="2s")

    with capture_logs() as logs:
        reason = failure_of(sink, event(1))  # open() did not raise; send did

    (warning,) = [log for log in logs if log["log_level"] == "warning"]
    assert "keeps" in warning["event"] or "retried" in warning["event"]
    for text in (reason, warning["error"]):
        assert "cannot reach RabbitMQ at amqp://guest:***@127.0.0.1:1/" in text
        assert BAD_PASSWORD not in text


def test_wrong_credentials_are_named_without_the_password(tmp_path: Path, rabbitmq: str) -> None:
    sink = make(AmqpSink, tmp_path, url=BAD_URL)

    with capture_logs() as logs:
        reason = failure_of(sink, event(1))

    assert "refused the login (ACCESS_REFUSED)" in reason
    assert "check the user name and password" in reason
    assert BAD_PASSWORD not in reason + repr(logs)


def test_a_routing_key_amqp_cannot_carry_fails_the_event(
    tmp_path: Path, broker: Broker, names: str
) -> None:
    exchange = broker.exchange(names)
    broker.queue(names, bind=(exchange, "#"))
    sink = make(AmqpSink, tmp_path, url=URL, exchange=exchange, routing_key="{name}")

    too_long = failure_of(sink, Event(EventKind.CREATED, "/in/" + "x" * 300, "t/x"))
    not_utf8 = failure_of(sink, Event(EventKind.CREATED, "/in/caf\udce9", "t/x"))

    assert "routing key is 300 bytes long; AMQP allows 255" in too_long
    assert "routing key 'caf\\\\xe9' is not UTF-8" in not_utf8


def test_probe_names_what_is_wrong(tmp_path: Path, broker: Broker, names: str) -> None:
    def probe(**options: Any) -> str | None:
        sink = make(AmqpSink, tmp_path, **options)
        try:
            asyncio.run(sink.probe())
        except Exception as exc:
            return str(exc)
        return None

    assert probe(url=URL) is None  # amq.topic exists everywhere
    assert probe(url=URL, exchange="{meta.x}") is None  # decided per event: not checked
    assert "ACCESS_REFUSED" in (probe(url=BAD_URL) or "")
    assert "cannot reach RabbitMQ" in (probe(url=DEAD_URL) or "")
    missing = probe(url=URL, exchange=names) or ""
    assert f"no exchange '{names}'" in missing
    declared = {"exchanges": [{"name": names}]}
    assert probe(url=URL, exchange=names, declare=declared) is None  # open() will declare it
    dead_letters = {"queues": [{"name": names, "dead_letter_exchange": f"{names}.dlx"}]}
    assert f"no exchange '{names}.dlx'" in (probe(url=URL, declare=dead_letters) or "")


def test_option_mistakes_are_caught_when_the_config_loads(tmp_path: Path) -> None:
    with pytest.raises(pydantic.ValidationError) as caught:
        make(AmqpSink, tmp_path, routing_key="fs.{knd}")
    assert "unknown placeholder {knd}" in str(caught.value)
    assert "{pipeline} works here too" in str(caught.value)
    with pytest.raises(pydantic.ValidationError):
        make(AmqpSink, tmp_path, declare={"exchanges": [{"name": "x", "type": "fan"}]})
