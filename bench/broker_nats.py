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

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import brokerbench
import nats
from brokerbench import Latency, Timing
from nats.js import api

from pipeline import from_json

ROWS = [(1, 1), (256, 1), (256, 2)]
"""(batch_size, concurrency) of each throughput row."""


async def delete(url: str, stream: str) -> None:
    client = await nats.connect(url)
    try:
        await client.jetstream().delete_stream(stream)
    finally:
        await client.close()


def throughput(url: str, events: int, batch_size: int, concurrency: int) -> tuple[int, Timing]:
    """Messages stored, and the time the synthetic events took into a fresh stream."""
    from fspipeline_nats import plugin as nats_plugin

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

    async def scenario() -> tuple[int, Timing]:
        watcher = await nats.connect(url)
        js = watcher.jetstream()
        count = 0

        async def all_stored() -> bool:
            nonlocal count
            try:
                count = (await js.stream_info(stream)).state.messages
            except nats.js.errors.NotFoundError:
                count = 0  # the sink has not created it yet
            return count >= events

        try:
            timing = await brokerbench.run_burst(
                sink, events, all_stored, plugins=[("nats", nats_plugin)]
            )
        finally:
            await watcher.close()
        return count, timing

    try:
        return asyncio.run(scenario())
    finally:
        asyncio.run(delete(url, stream))


class Receiver(brokerbench.LoopReceiver):
    """An independent JetStream consumer in its own thread: when did each path arrive?"""

    def __init__(self, url: str, stream: str) -> None:
        super().__init__()
        self.url = url
        self.stream = stream

    @contextlib.asynccontextmanager
    async def consuming(self) -> AsyncIterator[None]:
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
        try:
            yield
        finally:
            await subscription.unsubscribe()
            await js.delete_stream(self.stream)
            await client.close()


def latency(url: str, files: int, pause: float) -> Latency:
    """File close -> its message at an independent consumer."""
    stream = f"BENCH{uuid.uuid4().hex[:8]}"
    config = f"""\
pipelines:
  bench:
    sources: [{{type: inotify, paths: [inbox], events: [closed_write]}}]
    sinks: [{{type: nats, url: "{url}", subject: "{stream}.{{kind}}", batch_size: 256}}]
"""
    receiver = Receiver(url, stream).start()
    return brokerbench.close_to_arrival(config, receiver, files, pause, name="nats")


def main() -> None:
    brokerbench.engine_benchmark(
        __doc__,
        sink="NATS JetStream sink",
        url="nats://127.0.0.1:4222",
        url_help="NATS server to use",
        events=50_000,
        rows=ROWS,
        throughput=throughput,
        latency=latency,
        arrival="message at an independent consumer",
    )


if __name__ == "__main__":
    main()
