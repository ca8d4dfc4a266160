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

import asyncio
import json
import threading
import time
import uuid
from typing import Any

import brokerbench
import redis
from brokerbench import Latency, Timing

ROWS = [(1, 1), (1, 8), (256, 1), (256, 2)]
"""(batch_size, concurrency) of each throughput run."""


def throughput(url: str, events: int, batch_size: int, concurrency: int) -> tuple[int, Timing]:
    """Entries stored, and the time the synthetic events took into one stream."""
    from fspipeline_redis import plugin as redis_plugin

    stream = f"bench:{uuid.uuid4().hex[:8]}"
    sink = {
        "type": "redis",
        "url": url,
        "stream": stream,
        "batch_size": batch_size,
        "concurrency": concurrency,
        "queue_size": 4096,
    }
    counter = redis.Redis.from_url(url)

    async def all_stored() -> bool:
        return bool(counter.xlen(stream) >= events)  # a blocking call: its wait is not CPU time

    try:
        timing = asyncio.run(
            brokerbench.run_burst(sink, events, all_stored, plugins=[("redis", redis_plugin)])
        )
        stored = int(counter.xlen(stream))
    finally:
        counter.delete(stream)
        counter.close()
    return stored, timing


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


def latency(url: str, files: int, pause: float) -> Latency:
    """File close -> its entry at an independent consumer."""
    stream = f"bench:{uuid.uuid4().hex[:8]}"
    config = f"""\
pipelines:
  bench:
    sources: [{{type: inotify, paths: [inbox], events: [closed_write]}}]
    sinks: [{{type: redis, url: "{url}", stream: "{stream}", batch_size: 256}}]
"""
    receiver = Receiver(url, stream)
    return brokerbench.close_to_arrival(config, receiver, files, pause, name="redis")


def main() -> None:
    brokerbench.engine_benchmark(
        __doc__,
        sink="Redis Streams sink",
        url="redis://127.0.0.1:6379/0",
        url_help="Redis to write to",
        events=50_000,
        rows=ROWS,
        throughput=throughput,
        latency=latency,
        arrival="entry at an independent consumer",
    )


if __name__ == "__main__":
    main()
