"""The mqtt sink and source against the real Mosquitto, read back by mosquitto_sub.

In-process: the components run on the test's event loop; the engine's verdicts
(`settled`) are given by the test, as the engine gives them after the sinks.
"""

from __future__ import annotations

import asyncio
import subprocess
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from pipeline import Event, EventKind
from structlog.testing import capture_logs
from tests.conftest import Running, make_component

from fspipeline_mqtt import MqttSink, MqttSource

pytestmark = pytest.mark.integration

Subscribe = Callable[..., Any]  # conftest's `subscribe`: starts mosquitto_sub


@pytest.fixture
def prefix(mosquitto: str) -> str:
    """A topic prefix of this test's own on the shared broker."""
    return f"test-{uuid.uuid4().hex[:10]}"


class Delivering(Running):
    """`Running` that reports each event delivered as soon as it is emitted, as the engine
    does once the sinks delivered it (the broker sends only a few unacknowledged at once)."""

    async def __aenter__(self) -> Running:
        await self.source.open()

        async def emit(event: Event) -> None:
            self.events.append(event)
            self.source.settled(event, delivered=True)

        self._task = asyncio.create_task(self.source.run(emit))
        return self


def events(count: int, folder: str = "/in") -> list[Event]:
    return [
        Event(EventKind.CLOSED_WRITE, f"{folder}/f{n}.csv", "up/inotify", meta={"n": n})
        for n in range(count)
    ]


async def wait_until(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, "condition not met in time"
        await asyncio.sleep(0.02)


def sink(tmp_path: Path, url: str, **options: Any) -> MqttSink:
    return make_component(MqttSink, tmp_path, url=url, **options)  # type: ignore[no-any-return]


def source(tmp_path: Path, url: str, prefix: str, **options: Any) -> MqttSource:
    options.setdefault("topics", [f"{prefix}/#"])
    options.setdefault("client_id", f"{prefix}-worker")
    options.setdefault("session_expiry", "60s")  # the shared broker forgets it soon after
    return make_component(MqttSource, tmp_path, url=url, **options)  # type: ignore[no-any-return]


# -- sink ---------------------------------------------------------------------------


async def test_mqtt5_messages_carry_id_type_and_content_type(
    tmp_path: Path, mosquitto: str, prefix: str, subscribe: Subscribe
) -> None:
    reader = subscribe(mosquitto, f"{prefix}/#", fmt="%p\\t%C\\t%P\\t%t\\t%q")
    publisher = sink(tmp_path, mosquitto, topic=prefix + "/{kind}/{name}", qos=1)
    await publisher.open()
    sent = events(3)
    await publisher.send_batch(sent)
    await publisher.close()
    await wait_until(lambda: len(reader.lines()) == 3)
    for event, (body, content_type, properties, topic, qos) in zip(
        sent, reader.lines(), strict=True
    ):
        assert f'"id":"{event.id}"' in body
        assert content_type == "application/cloudevents+json"
        assert properties == f"id:{event.id} type:fs.closed_write"
        assert topic == f"{prefix}/closed_write/{event.path.rsplit('/', 1)[1]}"
        assert qos == "1"


async def test_mqtt311_at_qos2_carries_id_and_type_in_the_body(
    tmp_path: Path, mosquitto: str, prefix: str, subscribe: Subscribe
) -> None:
    reader = subscribe(mosquitto, f"{prefix}/#", protocol="mqttv311")
    publisher = sink(tmp_path, mosquitto, protocol="3.1.1", qos=2, topic=prefix + "/{kind}")
    await publisher.open()
    sent = events(300)
    await publisher.send_batch(sent[:150])
    for event in sent[150:]:
        await publisher.send(event)
    await publisher.close()
    await wait_until(lambda: len(reader.events()) == 300)
    received = reader.events()
    assert [e["id"] for e in received] == [e.id for e in sent]  # each once, in order
    assert {e["type"] for e in received} == {"fs.closed_write"}
    assert received[7]["data"]["n"] == 7


async def test_retain_flag_keeps_the_last_message_for_later_subscribers(
    tmp_path: Path, mosquitto: str, prefix: str, subscribe: Subscribe
) -> None:
    publisher = sink(tmp_path, mosquitto, topic=prefix + "/last", retain=True)
    await publisher.open()
    sent = events(2)
    await publisher.send_batch(sent)
    await publisher.close()
    late = subscribe(mosquitto, f"{prefix}/#")
    await wait_until(lambda: len(late.events()) == 1)
    assert late.events()[0]["id"] == sent[-1].id
    subprocess.run(  # clear the retained message again
        ["mosquitto_pub", "-t", f"{prefix}/last", "-r", "-n"], check=True, timeout=10
    )


# -- source -------------------------------------------------------------------------


async def test_source_emits_each_event_with_its_original_id(
    tmp_path: Path, mosquitto: str, prefix: str
) -> None:
    publisher = sink(tmp_path, mosquitto, topic=prefix + "/{kind}")
    await publisher.open()
    sent = events(50)
    async with Delivering(source(tmp_path, mosquitto, prefix)) as worker:
        await asyncio.sleep(0.3)  # subscribed
        await publisher.send_batch(sent)
        await worker.wait_for(lambda got: len(got) == 50)
    await publisher.close()
    assert [e.id for e in worker.events] == [e.id for e in sent]
    assert worker.events[3].meta["n"] == 3
    assert worker.events[3].path == "/in/f3.csv"


@pytest.mark.parametrize("protocol", ["5", "3.1.1"])
async def test_a_message_is_acknowledged_only_once_its_event_is_delivered(
    tmp_path: Path, mosquitto: str, prefix: str, protocol: str
) -> None:
    publisher = sink(tmp_path, mosquitto, topic=prefix + "/{kind}")
    await publisher.open()
    first, second = events(2)
    async with Running(source(tmp_path, mosquitto, prefix, protocol=protocol)) as worker:
        await asyncio.sleep(0.3)
        await publisher.send_batch([first, second])
        await worker.wait_for(lambda got: len(got) == 2)
        worker.source.settled(worker.events[0], delivered=True)
        await asyncio.sleep(0.2)  # the PUBACK of the first goes out
    # The worker stopped before the second event was delivered: the broker keeps it.
    async with Running(source(tmp_path, mosquitto, prefix, protocol=protocol)) as again:
        await again.wait_for(lambda got: len(got) == 1)
        assert again.events[0].id == second.id
        again.source.settled(again.events[0], delivered=True)
        await asyncio.sleep(0.2)
    async with Running(source(tmp_path, mosquitto, prefix, protocol=protocol)) as third:
        await asyncio.sleep(1.0)
        assert third.events == []  # both acknowledged: nothing comes back
    await publisher.close()


async def test_messages_published_while_the_source_is_down_wait_for_it(
    tmp_path: Path, mosquitto: str, prefix: str
) -> None:
    async with Running(source(tmp_path, mosquitto, prefix)):
        await asyncio.sleep(0.3)  # the persistent session and its subscription exist
    publisher = sink(tmp_path, mosquitto, topic=prefix + "/{kind}")
    await publisher.open()
    sent = events(30)
    await publisher.send_batch(sent)
    await publisher.close()
    async with Delivering(source(tmp_path, mosquitto, prefix)) as worker:
        await worker.wait_for(lambda got: len(got) == 30)
    assert [e.id for e in worker.events] == [e.id for e in sent]


async def test_failed_and_undecodable_messages_go_to_the_dead_letter_topic(
    tmp_path: Path, mosquitto: str, prefix: str, subscribe: Subscribe
) -> None:
    dead = subscribe(mosquitto, f"{prefix}-dlq/#")
    publisher = sink(tmp_path, mosquitto, topic=prefix + "/{kind}")
    await publisher.open()
    failing, fine = events(2)
    options = {"dead_letter_topic": f"{prefix}-dlq/x"}
    with capture_logs() as logs:
        async with Running(source(tmp_path, mosquitto, prefix, **options)) as worker:
            await asyncio.sleep(0.3)
            await publisher.send(failing)
            subprocess.run(
                ["mosquitto_pub", "-t", f"{prefix}/junk", "-q", "1", "-m", "not json"],
                check=True,
                timeout=10,
            )
            await publisher.send(fine)
            await worker.wait_for(lambda got: len(got) == 2)  # the junk is not emitted
            worker.source.settled(worker.events[0], delivered=False)
            worker.source.settled(worker.events[1], delivered=True)
            await wait_until(lambda: len(dead.lines()) == 2)
    assert [e.id for e in worker.events] == [failing.id, fine.id]
    assert dead.events()[0]["id"] == failing.id
    assert dead.lines()[1] == ["not json"]
    error = next(e for e in logs if e["log_level"] == "error")
    assert "not an fspipeline event" in error["event"]
    assert error["body"] == "not json"
    async with Running(source(tmp_path, mosquitto, prefix, **options)) as again:
        await asyncio.sleep(1.0)
        assert again.events == []  # all three were acknowledged
    await publisher.close()
