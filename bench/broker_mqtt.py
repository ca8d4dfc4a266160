"""MQTT sink: events/s into Mosquitto (batching off and on), and file-close latency.

    .venv/bin/python bench/broker_mqtt.py                 # 20,000 events a row, 1,000 files
    .venv/bin/python bench/broker_mqtt.py --events 5000 --files 300 --url mqtt://host:1883

Throughput: a synthetic source emits the events through the real engine into the `mqtt`
sink; the time runs from the engine's start until an independent subscriber
(`mosquitto_sub -C N`, QoS 1, in its own process) has received the last message. One row
per (batch_size, QoS, protocol). A QoS 1/2 send counts only once the broker acknowledged it.

Latency: `pipeline run` in a subprocess (inotify on /dev/shm -> mqtt sink, QoS 1) and, in
this process, a writer that closes one file every few ms and an independent subscriber
(paho-mqtt in its own network thread) noting when each file's message arrives. Both use
the same monotonic clock, so latency = message received - file closed. Needs a broker at
--url and mosquitto_sub.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import brokerbench
import paho.mqtt.client as paho
from brokerbench import Column, Latency, Table
from paho.mqtt.enums import CallbackAPIVersion

ROWS = [(1, 1, "5"), (256, 1, "5"), (256, 1, "3.1.1"), (256, 0, "5"), (256, 2, "5")]
"""(batch_size, qos, protocol) of each throughput run."""
TABLE = Table(
    Column("batch_size", 10),
    Column("qos", 3),
    Column("protocol", 8),
    Column("seconds", 8, ".2f"),
    Column("events/s", 9, ",.0f"),
)


class Counter:
    """`mosquitto_sub -C N`: exits once N messages arrived; the marker counts as one."""

    def __init__(self, url: str, topic: str, count: int, folder: Path) -> None:
        parts = urlsplit(url)
        host, port = parts.hostname or "127.0.0.1", str(parts.port or 1883)
        self.out = folder / "counted.txt"
        args = ["mosquitto_sub", "-h", host, "-p", port, "-t", topic, "-q", "1"]
        args += ["-C", str(count + 1), "-F", "%l"]  # print only each payload's length
        if parts.username:
            args += ["-u", parts.username, "-P", parts.password or ""]
        with self.out.open("wb") as out:
            self.proc = subprocess.Popen(args, stdout=out)
        marker = topic.replace("#", "ready")
        deadline = time.monotonic() + 10
        while not self.out.read_bytes():  # publish a marker until it comes back
            if time.monotonic() > deadline:
                raise SystemExit(f"mosquitto_sub could not subscribe to {topic} at {url}")
            paho_publish(url, marker)
            time.sleep(0.1)

    def done(self) -> bool:
        return self.proc.poll() is not None

    def received(self) -> int:
        return len(self.out.read_bytes().splitlines()) - 1

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)


def paho_publish(url: str, topic: str) -> None:
    parts = urlsplit(url)
    client = paho.Client(CallbackAPIVersion.VERSION2)
    if parts.username:
        client.username_pw_set(parts.username, parts.password)
    client.connect(parts.hostname or "127.0.0.1", parts.port or 1883)
    client.loop_start()
    client.publish(topic, b"ready", qos=1).wait_for_publish(5)
    client.loop_stop()
    client.disconnect()


class Receiver:
    """An independent subscriber (paho-mqtt, its own network thread): notes when each
    event's path first arrives."""

    def __init__(self, url: str, topic: str) -> None:
        parts = urlsplit(url)
        self.arrived: dict[str, float] = {}
        self.count = 0
        subscribed = threading.Event()
        self.client = paho.Client(CallbackAPIVersion.VERSION2, protocol=paho.MQTTv5)
        if parts.username:
            self.client.username_pw_set(parts.username, parts.password)
        self.client.on_connect = lambda c, *_: c.subscribe(topic, qos=1)
        self.client.on_subscribe = lambda *_: subscribed.set()
        self.client.on_message = self._message
        self.client.connect(parts.hostname or "127.0.0.1", parts.port or 1883)
        self.client.loop_start()
        if not subscribed.wait(10):
            raise SystemExit(f"could not subscribe to {topic} at {url}")

    def _message(self, _client: Any, _userdata: Any, message: paho.MQTTMessage) -> None:
        now = time.monotonic()
        self.count += 1
        path = json.loads(message.payload)["data"]["path"]
        self.arrived.setdefault(path, now)

    def stop(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


def throughput(
    url: str, events: int, batch_size: int, qos: int, protocol: str
) -> tuple[int, float]:
    """Messages the subscriber counted, and the seconds the synthetic events took."""
    from fspipeline_mqtt import plugin as mqtt_plugin

    topic = f"bench/{uuid.uuid4().hex[:8]}"
    sink = {
        "type": "mqtt",
        "url": url,
        "topic": topic + "/{kind}",
        "qos": qos,
        "protocol": protocol,
        "batch_size": batch_size,
        "queue_size": 4096,
    }
    with tempfile.TemporaryDirectory(prefix="fsbench-mqtt-") as folder:
        counter = Counter(url, topic + "/#", events, Path(folder))

        async def all_counted() -> bool:
            return counter.done()

        try:
            timing = asyncio.run(
                brokerbench.run_burst(
                    sink,
                    events,
                    all_counted,
                    plugins=[("mqtt", mqtt_plugin)],
                    poll=0.005,
                    timeout=120,
                )
            )
            received = counter.received()
        finally:
            counter.stop()
    return received, timing.seconds


def latency(url: str, files: int, pause: float) -> Latency:
    """File close -> its message at an independent subscriber."""
    topic = f"bench/{uuid.uuid4().hex[:8]}"
    config = f"""\
pipelines:
  bench:
    sources: [{{type: inotify, paths: [inbox], events: [closed_write]}}]
    sinks: [{{type: mqtt, url: "{url}", topic: "{topic}/{{kind}}", qos: 1, batch_size: 256}}]
"""
    receiver = Receiver(url, topic + "/#")
    return brokerbench.close_to_arrival(config, receiver, files, pause, name="mqtt")


def main() -> None:
    args = brokerbench.broker_arguments(
        __doc__, url="mqtt://127.0.0.1:1883", url_help="MQTT broker", events=20_000
    )
    brokerbench.quiet_logs()
    print(f"MQTT sink into {args.url} ({args.events:,} events a row)\n")
    print(TABLE.header())
    for batch_size, qos, protocol in ROWS:
        received, seconds = throughput(args.url, args.events, batch_size, qos, protocol)
        assert received == args.events, (batch_size, qos, protocol, received)
        print(TABLE.row(batch_size, qos, protocol, seconds, args.events / seconds))
    row = latency(args.url, args.files, args.pause)
    brokerbench.print_latency("message at an independent subscriber", row, args.pause, ", QoS 1")


if __name__ == "__main__":
    main()
