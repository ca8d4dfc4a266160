"""RabbitMQ: events/s into the broker through the amqp sink, and file-close-to-consumer latency.

    .venv/bin/python bench/broker_amqp.py [--events 20000] [--files 1000] [--rate 200]

Throughput: a synthetic in-process stream of events is handed to the `amqp` sink the way
the engine hands it over: one `send` per event (`batch_size: 1`) or one `send_batch` per
256 (`batch_size: 256`); the clock stops once the broker confirmed every message, and an
independent consumer checks the queue holds them all.

Latency: `pipeline run` watches a folder (inotify, `closed_write`) and publishes with the
amqp sink; this script writes `--files` files at `--rate` per second and consumes the
bound queue with its own aio-pika connection. Latency is from the writer's close() to
the message's arrival at that consumer, p50/p99.

Needs RabbitMQ on 127.0.0.1:5672 with guest/guest (AMQP_URL overrides it). Everything the
run declares (exchange `fsp-bench-<pid>`, its queues) is deleted at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from types import MappingProxyType

import aio_pika
import structlog
from fspipeline_amqp import AmqpSink

from pipeline import ComponentContext, Event, EventKind, from_json

URL = os.environ.get("AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/")
PIPELINE = str(Path(sys.executable).with_name("pipeline"))
NAME = f"fsp-bench-{os.getpid()}"


def quiet_logs() -> None:
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(40))


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


async def declare(channel: aio_pika.abc.AbstractChannel, queue: str) -> None:
    await channel.declare_exchange(NAME, aio_pika.ExchangeType.TOPIC, auto_delete=False)
    declared = await channel.declare_queue(queue, durable=True)
    await declared.bind(NAME, routing_key="fs.#")
    await declared.purge()


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


CONFIG = """\
pipelines:
  bench:
    sources:
      - type: inotify
        paths: [inbox]
        events: [closed_write]
    sinks:
      - type: amqp
        url: ${{AMQP_URL}}
        exchange: {exchange}
        batch_size: 256
"""


def start_pipeline(folder: Path) -> subprocess.Popen[bytes]:
    (folder / "inbox").mkdir()
    (folder / "config.yaml").write_text(CONFIG.format(exchange=NAME))
    proc = subprocess.Popen(
        [PIPELINE, "--log-format", "json", "run", "config.yaml"],
        cwd=folder,
        stderr=subprocess.PIPE,
        env={**os.environ, "AMQP_URL": URL},
    )
    assert proc.stderr is not None
    deadline = time.monotonic() + 30
    for line in iter(proc.stderr.readline, b""):
        if b"running; press Ctrl-C" in line:
            threading.Thread(target=proc.stderr.read, daemon=True).start()  # keep it drained
            return proc
        if time.monotonic() > deadline:
            break
    proc.kill()
    raise RuntimeError("pipeline run did not start")


async def latency(files: int, rate: float) -> list[float]:
    """Milliseconds from each file's close() to its message reaching our consumer."""
    queue = f"{NAME}.latency"
    closed: dict[str, float] = {}
    received: dict[str, float] = {}
    async with await aio_pika.connect(URL) as admin:
        channel = await admin.channel()
        await declare(channel, queue)
        await channel.set_qos(prefetch_count=1000)
        declared = await channel.declare_queue(queue, passive=True)

        async def arrived(message: aio_pika.abc.AbstractIncomingMessage) -> None:
            received[from_json(message.body).path] = time.monotonic()
            await message.ack()

        await declared.consume(arrived)
        with tempfile.TemporaryDirectory(prefix="fsp-bench-") as scratch:
            folder = Path(scratch)
            proc = start_pipeline(folder)
            try:
                await asyncio.to_thread(write_files, folder / "inbox", files, rate, closed)
                deadline = time.monotonic() + 30
                while len(received) < files and time.monotonic() < deadline:
                    await asyncio.sleep(0.05)
            finally:
                proc.terminate()
                proc.wait(15)
        await channel.queue_delete(queue)
        await channel.exchange_delete(NAME)
    return [(received[p] - closed[p]) * 1000 for p in closed if p in received]


def write_files(inbox: Path, files: int, rate: float, closed: dict[str, float]) -> None:
    interval = 1.0 / rate
    start = time.monotonic()
    for n in range(files):
        path = inbox / f"f{n:06d}.csv"
        with open(path, "wb") as out:
            out.write(b"id,amount\n1,9.99\n")
        closed[str(path)] = time.monotonic()
        pause = start + (n + 1) * interval - time.monotonic()
        if pause > 0:
            time.sleep(pause)


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=20_000, help="events per throughput run")
    parser.add_argument("--files", type=int, default=1000, help="files for the latency run")
    parser.add_argument("--rate", type=float, default=200.0, help="files written per second")
    args = parser.parse_args()
    quiet_logs()
    print(f"RabbitMQ at {URL.split('@')[-1]}, persistent messages, publisher confirms")
    print(f"{'measure':<34} {'events':>7} {'seconds':>8} {'events/s':>9} {'in queue':>9}")
    for batch_size in (1, 256):
        count = args.events if batch_size > 1 else min(args.events, 5000)
        elapsed, held = asyncio.run(throughput(synthetic(count), batch_size))
        label = f"into RabbitMQ, batch_size {batch_size}"
        print(f"{label:<34} {count:>7} {elapsed:>8.2f} {count / elapsed:>9.0f} {held:>9}")
    with contextlib.suppress(KeyboardInterrupt):
        waits = asyncio.run(latency(args.files, args.rate))
        print(
            f"\nfile close -> independent consumer, {len(waits)}/{args.files} files "
            f"at {args.rate:g}/s through `pipeline run` (inotify -> amqp sink):"
        )
        print(
            f"p50 {statistics.median(waits):.2f} ms   p99 {percentile(waits, 0.99):.2f} ms   "
            f"max {max(waits):.2f} ms"
        )


if __name__ == "__main__":
    main()
