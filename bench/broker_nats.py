"""NATS JetStream sink: events/s into a stream (batching off and on), and file-close latency.

    .venv/bin/python bench/broker_nats.py                   # 50,000 events a row, 1,000 files
    .venv/bin/python bench/broker_nats.py --events 20000 --files 500 --url nats://host:4222

Throughput: a synthetic source emits events through the real engine into the `nats` sink
(de-duplication on, file storage); the clock runs from the engine's start until the
stream's message count (JetStream's own stream info) shows the last one, i.e. every
publish was stored and acknowledged. One row per (batch_size, concurrency). The CPU time
this process spent per event (engine, sink, nats-py; the server excluded) tells the rate
one free core would reach, which says more than wall time on a shared machine.

Latency: `pipeline run` in a subprocess (inotify on /dev/shm -> nats sink, batch_size 256)
and, in this process, a writer that closes one file every few ms and an independent
consumer (a nats-py JetStream ordered consumer, in its own thread and event loop) noting
when each file's message arrives. Both read the same monotonic clock: latency = message
received - file closed. Every stream the run creates is deleted at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import nats
from nats.js import api

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from pipeline import (  # noqa: E402
    ComponentOptions,
    Emit,
    Event,
    EventKind,
    Source,
    from_json,
    hookimpl,
)
from pipeline.config import load_config_data  # noqa: E402
from pipeline.engine import Runner  # noqa: E402
from pipeline.registry import build_registry  # noqa: E402
from tests.e2e.cli import Background  # noqa: E402

ROWS = [(1, 1), (256, 1), (256, 2)]
"""(batch_size, concurrency) of each throughput row."""


class BurstOptions(ComponentOptions):
    count: int


class BurstSource(Source[BurstOptions]):
    """Emits `count` closed_write events as fast as the engine takes them, then idles."""

    type_name = "burst"
    Options = BurstOptions

    async def run(self, emit: Emit) -> None:
        meta = {"root": "/bench/in"}
        for n in range(self.options.count):
            path = f"/bench/in/f{n:07d}.csv"
            await emit(Event(EventKind.CLOSED_WRITE, path, "bench/burst", meta=meta))
        await asyncio.Event().wait()


class BurstPlugin:
    @hookimpl
    def pipeline_components(self) -> list[type[Any]]:
        return [BurstSource]


async def stored(url: str, stream: str) -> int:
    client = await nats.connect(url)
    try:
        count: int = (await client.jetstream().stream_info(stream)).state.messages
        return count
    finally:
        await client.close()


async def delete(url: str, stream: str) -> None:
    client = await nats.connect(url)
    try:
        await client.jetstream().delete_stream(stream)
    finally:
        await client.close()


def throughput(url: str, events: int, batch_size: int, concurrency: int) -> dict[str, float]:
    """Events/s from the synthetic source into a fresh stream, through the engine."""
    from fspipeline_nats import plugin as nats_plugin

    registry = build_registry(
        extra_plugins=[("burst", BurstPlugin()), ("nats", nats_plugin)], autoload=False
    )
    stream = f"BENCH{uuid.uuid4().hex[:8]}"
    sink = {
        "type": "nats",
        "url": url,
        "subject": f"{stream}.{{kind}}",
        "create_stream": {"name": stream, "subjects": [f"{stream}.>"]},
        "batch_size": batch_size,
        "concurrency": concurrency,
        "queue_size": 4096,
    }
    data = {"pipelines": {"b": {"sources": [{"type": "burst", "count": events}], "sinks": [sink]}}}
    plan = load_config_data(data, registry, source="bench", config_dir=REPO)

    async def scenario() -> tuple[float, float, int]:
        runner = Runner(plan, registry)
        task = asyncio.create_task(runner.run())
        watcher = await nats.connect(url)
        js = watcher.jetstream()
        started, cpu_start = time.perf_counter(), time.process_time()
        count = 0
        while count < events:
            await asyncio.sleep(0.01)
            try:
                count = (await js.stream_info(stream)).state.messages
            except nats.js.errors.NotFoundError:
                count = 0  # the sink has not created it yet
        elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu_start
        await watcher.close()
        runner.request_stop()
        await task
        return elapsed, cpu, count

    try:
        elapsed, cpu, count = asyncio.run(scenario())
    finally:
        asyncio.run(delete(url, stream))
    return {
        "events": count,
        "seconds": elapsed,
        "events_per_s": events / elapsed,
        "cpu_us_per_event": cpu / events * 1e6,
    }


class Receiver:
    """An independent JetStream consumer in its own thread: when did each path arrive?"""

    def __init__(self, url: str, stream: str) -> None:
        self.url = url
        self.stream = stream
        self.arrived: dict[str, float] = {}
        self.ready = threading.Event()
        self._loop = asyncio.new_event_loop()
        self._stop: asyncio.Event | None = None
        self._thread = threading.Thread(target=self._loop.run_until_complete, args=(self._run(),))
        self._thread.daemon = True
        self._thread.start()
        if not self.ready.wait(15):
            raise SystemExit("the consumer did not start")

    async def _run(self) -> None:
        self._stop = asyncio.Event()
        client = await nats.connect(self.url)
        js = client.jetstream()
        await js.add_stream(name=self.stream, subjects=[f"{self.stream}.>"])

        async def note(message: Any) -> None:
            now = time.monotonic()
            self.arrived.setdefault(from_json(message.data).path, now)

        subscription = await js.subscribe(
            f"{self.stream}.>",
            cb=note,
            ordered_consumer=True,
            deliver_policy=api.DeliverPolicy.NEW,
        )
        self.ready.set()
        await self._stop.wait()
        await subscription.unsubscribe()
        await js.delete_stream(self.stream)
        await client.close()

    def stop(self) -> None:
        if self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(10)


def latency(url: str, files: int, pause: float) -> dict[str, float]:
    """p50/p99/max ms from a file's close to its message reaching an independent consumer."""
    base = Path("/dev/shm") if Path("/dev/shm").is_dir() else None
    stream = f"BENCH{uuid.uuid4().hex[:8]}"
    receiver = Receiver(url, stream)
    closed: dict[str, float] = {}
    with tempfile.TemporaryDirectory(dir=base, prefix="fsbench-nats-") as folder:
        root = Path(folder)
        inbox = root / "inbox"
        inbox.mkdir()
        (root / "config.yaml").write_text(
            f"""\
pipelines:
  bench:
    sources: [{{type: inotify, paths: [inbox], events: [closed_write]}}]
    sinks: [{{type: nats, url: "{url}", subject: "{stream}.{{kind}}", batch_size: 256}}]
"""
        )
        running = Background("run", "config.yaml", cwd=root)
        try:
            running.wait_ready()
            for warm in range(20):  # the first publishes set up nats-py's reply inbox
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
    parser.add_argument("--url", default="nats://127.0.0.1:4222", help="NATS server to use")
    parser.add_argument("--events", type=int, default=50_000, help="events per throughput row")
    parser.add_argument("--files", type=int, default=1000, help="files in the latency run")
    parser.add_argument("--pause", type=float, default=0.005, help="seconds between files")
    args = parser.parse_args()
    import structlog

    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(40))  # errors only

    print(f"NATS JetStream sink into {args.url} ({args.events:,} events a row)\n")
    print(
        f"{'batch_size':>10}  {'concurrency':>11}  {'seconds':>8}  {'events/s':>9}  "
        f"{'CPU us/event':>12}  {'events/CPU-s':>12}"
    )
    for batch_size, concurrency in ROWS:
        row = throughput(args.url, args.events, batch_size, concurrency)
        assert row["events"] == args.events, row
        print(
            f"{batch_size:>10}  {concurrency:>11}  {row['seconds']:>8.2f}  "
            f"{row['events_per_s']:>9,.0f}  {row['cpu_us_per_event']:>12.1f}  "
            f"{1e6 / row['cpu_us_per_event']:>12,.0f}"
        )
    row = latency(args.url, args.files, args.pause)
    print(
        f"\nfile close -> message at an independent consumer ({row['received']:.0f} of "
        f"{row['files']:.0f} files, one every {args.pause * 1000:g} ms)"
    )
    print(f"{'p50 ms':>8}  {'p99 ms':>8}  {'max ms':>8}")
    print(f"{row['p50_ms']:>8.2f}  {row['p99_ms']:>8.2f}  {row['max_ms']:>8.2f}")


if __name__ == "__main__":
    main()
