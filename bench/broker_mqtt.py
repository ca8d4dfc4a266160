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

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from pipeline import ComponentOptions, Emit, Event, EventKind, Source, hookimpl  # noqa: E402
from pipeline.config import load_config_data  # noqa: E402
from pipeline.engine import Runner  # noqa: E402
from pipeline.registry import build_registry  # noqa: E402
from tests.e2e.cli import Background  # noqa: E402

ROWS = [(1, 1, "5"), (256, 1, "5"), (256, 1, "3.1.1"), (256, 0, "5"), (256, 2, "5")]
"""(batch_size, qos, protocol) of each throughput run."""


class BurstOptions(ComponentOptions):
    count: int


class BurstSource(Source[BurstOptions]):
    """Emits `count` closed_write events as fast as the engine takes them."""

    type_name = "burst"
    Options = BurstOptions

    async def run(self, emit: Emit) -> None:
        meta = {"root": "/bench/in"}
        for n in range(self.options.count):
            await emit(
                Event(EventKind.CLOSED_WRITE, f"/bench/in/f{n:07d}.csv", "b/burst", meta=meta)
            )
        await asyncio.Event().wait()


class BurstPlugin:
    @hookimpl
    def pipeline_components(self) -> list[type[Any]]:
        return [BurstSource]


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


def throughput(url: str, events: int, batch_size: int, qos: int, protocol: str) -> dict[str, Any]:
    """Events/s from the synthetic source into the broker, through the engine."""
    from fspipeline_mqtt import plugin as mqtt_plugin

    registry = build_registry(
        extra_plugins=[("burst", BurstPlugin()), ("mqtt", mqtt_plugin)], autoload=False
    )
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
    data = {"pipelines": {"b": {"sources": [{"type": "burst", "count": events}], "sinks": [sink]}}}
    plan = load_config_data(data, registry, source="bench", config_dir=REPO)

    async def scenario(counter: Counter) -> float:
        runner = Runner(plan, registry)
        task = asyncio.create_task(runner.run())
        started = time.perf_counter()
        while not counter.done() and time.perf_counter() - started < 120:
            await asyncio.sleep(0.005)
        elapsed = time.perf_counter() - started
        runner.request_stop()
        await task
        return elapsed

    with tempfile.TemporaryDirectory(prefix="fsbench-mqtt-") as folder:
        counter = Counter(url, topic + "/#", events, Path(folder))
        try:
            elapsed = asyncio.run(scenario(counter))
            received = counter.received()
        finally:
            counter.stop()
    return {"events": received, "seconds": elapsed, "events_per_s": events / elapsed}


def latency(url: str, files: int, pause: float) -> dict[str, float]:
    """p50/p99/max ms from a file's close to its message reaching an independent subscriber."""
    base = Path("/dev/shm") if Path("/dev/shm").is_dir() else None
    with tempfile.TemporaryDirectory(dir=base, prefix="fsbench-mqtt-") as folder:
        root = Path(folder)
        inbox = root / "inbox"
        inbox.mkdir()
        topic = f"bench/{uuid.uuid4().hex[:8]}"
        (root / "config.yaml").write_text(
            f"""\
pipelines:
  bench:
    sources: [{{type: inotify, paths: [inbox], events: [closed_write]}}]
    sinks: [{{type: mqtt, url: "{url}", topic: "{topic}/{{kind}}", qos: 1, batch_size: 256}}]
"""
        )
        receiver = Receiver(url, topic + "/#")
        running = Background("run", "config.yaml", cwd=root)
        closed: dict[str, float] = {}
        try:
            running.wait_ready()
            for warm in range(20):  # first connection, first allocations
                (inbox / f"warm{warm}").write_bytes(b"x")
            time.sleep(0.5)
            for n in range(files):
                path = inbox / f"f{n:06d}"
                fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o644)
                os.write(fd, b"x")
                os.close(fd)
                closed[str(path)] = time.monotonic()
                time.sleep(pause)
            deadline = time.monotonic() + 30
            while not closed.keys() <= receiver.arrived.keys() and time.monotonic() < deadline:
                time.sleep(0.05)
        finally:
            running.interrupt()
            receiver.stop()
    times = sorted(
        (receiver.arrived[p] - t) * 1000 for p, t in closed.items() if p in receiver.arrived
    )
    if not times:
        raise SystemExit(f"no message arrived; pipeline stderr:\n{running.stderr}")
    return {
        "files": files,
        "received": len(times),
        "p50_ms": statistics.median(times),
        "p99_ms": times[max(0, int(len(times) * 0.99) - 1)],
        "max_ms": times[-1],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default="mqtt://127.0.0.1:1883", help="MQTT broker")
    parser.add_argument("--events", type=int, default=20_000, help="events per throughput row")
    parser.add_argument("--files", type=int, default=1000, help="files in the latency run")
    parser.add_argument("--pause", type=float, default=0.005, help="seconds between files")
    args = parser.parse_args()
    import structlog

    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(40))  # errors only

    print(f"MQTT sink into {args.url} ({args.events:,} events a row)\n")
    print(f"{'batch_size':>10}  {'qos':>3}  {'protocol':>8}  {'seconds':>8}  {'events/s':>9}")
    for batch_size, qos, protocol in ROWS:
        row = throughput(args.url, args.events, batch_size, qos, protocol)
        assert row["events"] == args.events, row
        print(
            f"{batch_size:>10}  {qos:>3}  {protocol:>8}  {row['seconds']:>8.2f}  "
            f"{row['events_per_s']:>9,.0f}"
        )
    row = latency(args.url, args.files, args.pause)
    print(
        f"\nfile close -> message at an independent subscriber ({row['received']:.0f} of "
        f"{row['files']:.0f} files, one every {args.pause * 1000:g} ms, QoS 1)"
    )
    print(f"{'p50 ms':>8}  {'p99 ms':>8}  {'max ms':>8}")
    print(f"{row['p50_ms']:>8.2f}  {row['p99_ms']:>8.2f}  {row['max_ms']:>8.2f}")


if __name__ == "__main__":
    main()
