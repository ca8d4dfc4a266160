"""Wrong credentials, an unreachable broker, a broker that is down at start: clear errors,
no password in them, and components that carry on once the broker is back.

Each test runs a private Mosquitto (its own port, password file and persistence).
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from pipeline import Event, EventKind
from structlog.testing import capture_logs
from tests.conftest import Running, make_component

from fspipeline_mqtt import MqttSink, MqttSource
from fspipeline_mqtt.connection import BrokerError

pytestmark = pytest.mark.integration

PASSWORD = "s3cret-Pw"
WRONG = "wr0ng-Pw"


def unused_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.mark.parametrize("protocol", ["5", "3.1.1"])
@pytest.mark.parametrize("component", [MqttSink, MqttSource])
async def test_wrong_password_is_named_as_such_and_never_shown(
    tmp_path: Path, private_broker: Callable[..., Any], protocol: str, component: type[Any]
) -> None:
    broker = private_broker(users={"ingest": PASSWORD})
    probed = make_component(component, tmp_path, url=broker.url("ingest", WRONG), protocol=protocol)
    with pytest.raises(BrokerError) as refused:
        await probed.probe()
    message = str(refused.value)
    assert "refused the login" in message
    assert "check the user name and password in `url`" in message
    assert f"mqtt://ingest:***@127.0.0.1:{broker.port}" in message
    assert WRONG not in message
    right = make_component(
        component, tmp_path, url=broker.url("ingest", PASSWORD), protocol=protocol
    )
    await right.probe()  # the same with the right password passes


async def test_unreachable_broker_is_named_with_what_to_check(tmp_path: Path) -> None:
    port = unused_port()
    probed = make_component(MqttSink, tmp_path, url=f"mqtt://u:{WRONG}@127.0.0.1:{port}")
    with pytest.raises(BrokerError) as unreachable:
        await probed.probe()
    message = str(unreachable.value)
    assert f"cannot reach the MQTT broker at mqtt://u:***@127.0.0.1:{port}" in message
    assert "Connection refused" in message
    assert "check that it runs" in message
    assert WRONG not in message


async def test_a_sink_opened_while_the_broker_is_down_delivers_once_it_is_up(
    tmp_path: Path, private_broker: Callable[..., Any], subscribe: Callable[..., Any]
) -> None:
    broker = private_broker()
    reader = subscribe(broker.url(), "fs/#")
    broker.stop()
    sink = make_component(MqttSink, tmp_path, url=broker.url(), persistent_session=True)
    with capture_logs() as logs:
        await sink.open()  # does not fail: the broker may come later
    assert any("MQTT broker not available" in entry["event"] for entry in logs)
    event = Event(EventKind.CLOSED_WRITE, "/in/a.csv", "t/inotify")
    with pytest.raises(ConnectionError, match="cannot reach the MQTT broker"):
        await sink.send(event)  # the engine retries this with backoff
    broker.start()
    await sink.send(event)
    await sink.close()
    deadline = asyncio.get_running_loop().time() + 15
    while [e["id"] for e in reader.events()] != [event.id]:
        assert asyncio.get_running_loop().time() < deadline, reader.raw()
        await asyncio.sleep(0.05)


async def test_a_source_keeps_retrying_until_the_broker_is_up(
    tmp_path: Path, private_broker: Callable[..., Any]
) -> None:
    broker = private_broker(users={"ingest": PASSWORD})
    broker.stop()
    url = broker.url("ingest", PASSWORD)
    worker = make_component(MqttSource, tmp_path, url=url, topics=["fs/#"], client_id="w1")
    with capture_logs() as logs:
        async with Running(worker) as running:
            await asyncio.sleep(1.2)  # attempts at 0, 0.5s, 1.5s: at least two fail
            broker.start()
            sink = make_component(MqttSink, tmp_path, url=url)
            event = Event(EventKind.CLOSED_WRITE, "/in/b.csv", "t/inotify")
            deadline = asyncio.get_running_loop().time() + 15
            while not running.events:
                await sink.send(event)  # until the source subscribed, these reach no one
                await asyncio.sleep(0.3)
                assert asyncio.get_running_loop().time() < deadline
            await sink.close()
    assert running.events[0].id == event.id
    retries = [entry for entry in logs if entry["event"] == "MQTT broker not available; retrying"]
    assert len(retries) >= 2
    assert all(PASSWORD not in str(entry) for entry in logs)
    assert "cannot reach the MQTT broker at mqtt://ingest:***@" in retries[0]["error"]
    assert retries[1]["retry_in"] > retries[0]["retry_in"]  # backing off
