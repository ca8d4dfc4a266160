"""Delivery-queue cost per event: the disk spool (SQLite) against the memory queue.

    .venv/bin/python bench/spool.py [--events 50000] [--dir /tmp]

Puts N events, then takes and acknowledges them, as a sink's lane does; prints µs/event.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from pathlib import Path
from types import MappingProxyType

from pipeline.engine.queues import DeliveryQueue, MemoryQueue, SpoolQueue
from pipeline.event import Event, EventKind


async def measure(queue: DeliveryQueue, events: list[Event]) -> tuple[float, float]:
    start = time.perf_counter()
    for event in events:
        await queue.put(event)
    stored = time.perf_counter()
    for _ in events:
        token, _event = await queue.get(0)
        queue.ack(token)
    return stored - start, time.perf_counter() - stored


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=50_000)
    parser.add_argument("--dir", default="/tmp", help="where the spool file goes (a real disk)")
    args = parser.parse_args()
    meta = MappingProxyType({"root": "/in"})
    events = [
        Event(EventKind.CLOSED_WRITE, f"/in/f{i}", "p/inotify", meta=meta)
        for i in range(args.events)
    ]
    with tempfile.TemporaryDirectory(dir=args.dir) as folder:
        spool = SpoolQueue(Path(folder) / "spool.sqlite3", "p.sinks[0]")
        put, take = asyncio.run(measure(spool, events))
        spool.close()
    n = len(events)
    print(f"spool   put {put / n * 1e6:6.2f} us/event   get+ack {take / n * 1e6:6.2f} us/event")
    put, take = asyncio.run(measure(MemoryQueue(n + 1), events))
    print(f"memory  put {put / n * 1e6:6.2f} us/event   get+ack {take / n * 1e6:6.2f} us/event")


if __name__ == "__main__":
    main()
