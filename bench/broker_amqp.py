"""RabbitMQ: events/s into the broker through the amqp sink, and file-close-to-consumer latency.

    .venv/bin/python bench/broker_amqp.py [--events 20000] [--files 1000] [--rate 200]

Throughput: a synthetic in-process stream of events is handed to the `amqp` sink the way
the engine hands it over: one `send` per event (`batch_size: 1`) or one `send_batch` per
256 (`batch_size: 256`); the clock stops once the broker confirmed every message, and an
independent consumer checks the queue holds them all.

Latency: `pipeline run` watches a folder (inotify, `closed_write`) and publishes with the
amqp sink; this script writes `--files` files at `--rate` per second (after a few warm-up
files) and consumes the bound queue with its own aio-pika connection. Latency is from the
writer's close() to the message's arrival at that consumer, p50/p99.

Needs RabbitMQ on 127.0.0.1:5672 with guest/guest (AMQP_URL overrides it). Everything the
run declares (exchange `fsp-bench-<pid>`, its queues) is deleted at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import time
from collections.abc import AsyncIterator
from pathlib import Path
from types import MappingProxyType

import aio_pika
import brokerbench
import structlog
from brokerbench import Column, Latency, Table
from fspipeline_amqp import AmqpSink

from pipeline import ComponentContext, Event, EventKind, from_json
from tests.e2e.cli import inbox_config

URL = os.environ.get("AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/")
NAME = f"fsp-bench-{os.getpid()}"
TABLE = Table(
    Column("measure", 34, align="<"),
    Column("events", 7),
    Column("seconds", 8, ".2f"),
    Column("events/s", 9, ".0f"),
    Column("in queue", 9),
    gap=" ",
)


def make_sink(exchange: str) -> AmqpSink:
    options = AmqpSink.Options.model_validate({"url": URL, "exchange": exchange})
    context = ComponentContext(
        pipeline="bench",
        label="bench.sinks[0]",
        config_dir=Path.cwd(),
        state_dir=None,
        log=structlog.get_logger("bench"),
    )
    return AmqpSink(options, context)


async def declare(channel: aio_pika.abc.AbstractChannel, queue: str) -> aio_pika.abc.AbstractQueue:
    await channel.declare_exchange(NAME, aio_pika.ExchangeType.TOPIC, auto_delete=False)
    declared = await channel.declare_queue(queue, durable=True)
    await declared.bind(NAME, routing_key="fs.#")
    await declared.purge()
    return declared


async def throughput(events: list[Event], batch_size: int) -> tuple[float, int]:
    """Seconds to publish and confirm `events`, and how many the queue then held."""
    queue = f"{NAME}.throughput"
    async with await aio_pika.connect(URL) as admin:
        channel = await admin.channel()
        await declare(channel, queue)
        sink = make_sink(NAME)
        await sink.open()
        start = time.perf_counter()
        if batch_size == 1:
            for event in events:
                await sink.send(event)
        else:
            for first in range(0, len(events), batch_size):
                await sink.send_batch(events[first : first + batch_size])
        elapsed = time.perf_counter() - start
        await sink.close()
        held = await channel.declare_queue(queue, passive=True)
        count = int(held.declaration_result.message_count or 0)
        await channel.queue_delete(queue)
    return elapsed, count


def synthetic(count: int) -> list[Event]:
    meta = MappingProxyType({"root": "/landing"})
    return [
        Event(EventKind.CLOSED_WRITE, f"/landing/f{n:06d}.csv", "bench/synthetic", meta=meta)
        for n in range(count)
    ]


class Receiver(brokerbench.LoopReceiver):
    """An independent consumer (its own aio-pika connection) of a queue bound to the
    exchange; the queue and the exchange are deleted when it stops."""

    def __init__(self, queue: str) -> None:
        super().__init__()
        self.queue = queue

    @contextlib.asynccontextmanager
    async def consuming(self) -> AsyncIterator[None]:
        async with await aio_pika.connect(URL) as connection:
            channel = await connection.channel()
            declared = await declare(channel, self.queue)
            await channel.set_qos(prefetch_count=1000)

            async def arrived(message: aio_pika.abc.AbstractIncomingMessage) -> None:
                now = time.monotonic()
                self.arrived.setdefault(from_json(message.body).path, now)
                await message.ack()

            await declared.consume(arrived)
            try:
                yield
            finally:
                await channel.queue_delete(self.queue)
                await channel.exchange_delete(NAME)


def latency(files: int, rate: float) -> Latency:
    """File close -> its message at an independent consumer."""
    receiver = Receiver(f"{NAME}.latency").start()
    sink = f"type: amqp\nurl: ${{AMQP_URL}}\nexchange: {NAME}\nbatch_size: 256"
    config = inbox_config(sink, pipeline="bench")
    return brokerbench.close_to_arrival(
        config, receiver, files, 1.0 / rate, name="amqp", env={"AMQP_URL": URL}
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=20_000, help="events per throughput run")
    parser.add_argument("--files", type=int, default=1000, help="files for the latency run")
    parser.add_argument("--rate", type=float, default=200.0, help="files written per second")
    args = parser.parse_args()
    brokerbench.quiet_logs()
    print(f"RabbitMQ at {URL.split('@')[-1]}, persistent messages, publisher confirms")
    print(TABLE.header())
    for batch_size in (1, 256):
        count = args.events if batch_size > 1 else min(args.events, 5000)
        elapsed, held = asyncio.run(throughput(synthetic(count), batch_size))
        label = f"into RabbitMQ, batch_size {batch_size}"
        print(TABLE.row(label, count, elapsed, count / elapsed, held))
    with contextlib.suppress(KeyboardInterrupt):
        row = latency(args.files, args.rate)
        print(
            f"\nfile close -> independent consumer, {row.received}/{args.files} files "
            f"at {args.rate:g}/s through `pipeline run` (inotify -> amqp sink):"
        )
        print(f"p50 {row.p50_ms:.2f} ms   p99 {row.p99_ms:.2f} ms   max {row.max_ms:.2f} ms")


if __name__ == "__main__":
    main()
