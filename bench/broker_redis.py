"""Redis Streams sink: events/s into Redis (batching off and on), and file-close latency.

    .venv/bin/python bench/broker_redis.py                  # 50,000 events a row, 1,000 files
    .venv/bin/python bench/broker_redis.py --events 20000 --files 500 --url redis://host:6379/0

Throughput: a synthetic source emits the events through the real engine into the `redis`
sink; the time runs from the engine's start until XLEN shows the last entry. One row per
(batch_size, concurrency). On a busy machine the wall-clock rate says more about the
neighbours than about the sink: the CPU time the process spent per event (engine, sink,
redis-py; Redis itself excluded) gives the rate one free core would reach.

Latency: `pipeline run` in a subprocess (inotify on /dev/shm -> redis sink) and, in this
process, a writer that closes one file every few ms and an independent consumer (redis-py
XREAD BLOCK in a thread) that notes when each file's entry arrives. Both use the same
monotonic clock, so latency = entry received - file closed. Needs Redis at --url.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import redis

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from pipeline import ComponentOptions, Emit, Event, EventKind, Source, hookimpl  # noqa: E402
from pipeline.config import load_config_data  # noqa: E402
from pipeline.engine import Runner  # noqa: E402
from pipeline.registry import build_registry  # noqa: E402
from tests.e2e.cli import Background  # noqa: E402

ROWS = [(1, 1), (1, 8), (256, 1), (256, 2)]
"""(batch_size, concurrency) of each throughput run."""


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


def throughput(url: str, events: int, batch_size: int, concurrency: int) -> dict[str, Any]:
    """Events/s from the synthetic source into one stream, through the engine."""
    from fspipeline_redis import plugin as redis_plugin

    registry = build_registry(
        extra_plugins=[("burst", BurstPlugin()), ("redis", redis_plugin)], autoload=False
    )
    stream = f"bench:{uuid.uuid4().hex[:8]}"
    sink = {
        "type": "redis",
        "url": url,
        "stream": stream,
        "batch_size": batch_size,
        "concurrency": concurrency,
        "queue_size": 4096,
    }
    data = {"pipelines": {"b": {"sources": [{"type": "burst", "count": events}], "sinks": [sink]}}}
    plan = load_config_data(data, registry, source="bench", config_dir=REPO)
    counter = redis.Redis.from_url(url)

    async def scenario() -> tuple[float, float]:
        runner = Runner(plan, registry)
        task = asyncio.create_task(runner.run())
        started, cpu = time.perf_counter(), time.process_time()
        while counter.xlen(stream) < events:  # a blocking call: its wait is not CPU time
            await asyncio.sleep(0.01)
        elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
        runner.request_stop()
        await task
        return elapsed, cpu

    try:
        elapsed, cpu = asyncio.run(scenario())
        stored = counter.xlen(stream)
    finally:
        counter.delete(stream)
        counter.close()
    return {
        "batch_size": batch_size,
        "concurrency": concurrency,
        "events": stored,
        "seconds": elapsed,
        "events_per_s": events / elapsed,
        "cpu_us_per_event": cpu / events * 1e6,
    }


class Receiver:
    """An independent consumer: XREAD BLOCK in a thread; notes when each path arrives."""

    def __init__(self, url: str, stream: str) -> None:
        self.client = redis.Redis.from_url(url)
        self.stream = stream
        self.arrived: dict[str, float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        last: bytes | str = "$"
        while not self._stop.is_set():
            reply: Any = self.client.xread({self.stream: last}, block=100, count=1000)
            now = time.monotonic()
            for _, entries in reply or ():
                for entry_id, fields in entries:
                    last = entry_id
                    path = json.loads(fields[b"body"])["data"]["path"]
                    self.arrived.setdefault(path, now)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self.client.delete(self.stream)
        self.client.close()


def latency(url: str, files: int, pause: float) -> dict[str, float]:
    """p50/p99/max ms from a file's close to its entry reaching an independent consumer."""
    base = Path("/dev/shm") if Path("/dev/shm").is_dir() else None
    with tempfile.TemporaryDirectory(dir=base, prefix="fsbench-redis-") as folder:
        root = Path(folder)
        inbox = root / "inbox"
        inbox.mkdir()
        stream = f"bench:{uuid.uuid4().hex[:8]}"
        (root / "config.yaml").write_text(
            f"""\
pipelines:
  bench:
    sources: [{{type: inotify, paths: [inbox], events: [closed_write]}}]
    sinks: [{{type: redis, url: "{url}", stream: "{stream}", batch_size: 256}}]
"""
        )
        receiver = Receiver(url, stream)
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
        raise SystemExit(f"no entry arrived; pipeline stderr:\n{running.stderr}")
    return {
        "files": files,
        "received": len(times),
        "p50_ms": statistics.median(times),
        "p99_ms": times[max(0, int(len(times) * 0.99) - 1)],
        "max_ms": times[-1],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default="redis://127.0.0.1:6379/0", help="Redis to write to")
    parser.add_argument("--events", type=int, default=50_000, help="events per throughput row")
    parser.add_argument("--files", type=int, default=1000, help="files in the latency run")
    parser.add_argument("--pause", type=float, default=0.005, help="seconds between files")
    args = parser.parse_args()
    import structlog

    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(40))  # errors only

    print(f"Redis Streams sink into {args.url} ({args.events:,} events a row)\n")
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
        f"\nfile close -> entry at an independent consumer ({row['received']:.0f} of "
        f"{row['files']:.0f} files, one every {args.pause * 1000:g} ms)"
    )
    print(f"{'p50 ms':>8}  {'p99 ms':>8}  {'max ms':>8}")
    print(f"{row['p50_ms']:>8.2f}  {row['p99_ms']:>8.2f}  {row['max_ms']:>8.2f}")


if __name__ == "__main__":
    main()
