"""Webhook sink throughput: events/s and requests/s into a local HTTP server, batched or not.

    .venv/bin/python bench/webhook.py                # 5,000 events unbatched, 50,000 batched
    .venv/bin/python bench/webhook.py --events 1000

A synthetic source emits the events through the real engine into the `webhook` sink
(structured mode); a minimal asyncio HTTP/1.1 server in its own process counts requests
and events (keep-alive, answers 200 at once), so the figures are the sink's and the
engine's cost, not the server's. One row per (batch_size, concurrency). The last table
is the latency of one `send` (request out, 200 back) without the engine.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import socket
import statistics
import subprocess
import sys
import time
from typing import Any

import brokerbench
import httpx
from brokerbench import REPO, Column, Table

from pipeline import Event, EventKind
from tests.conftest import make_component

ROWS = [(1, 1, 1), (1, 8, 1), (100, 1, 10), (100, 4, 10)]
"""(batch_size, concurrency, events as a multiple of --events) of each measured run; batched
rows get more events so that they last long enough to measure."""
TABLE = Table(
    Column("batch_size", 10),
    Column("concurrency", 11),
    Column("events", 8),
    Column("requests", 8),
    Column("seconds", 8, ".2f"),
    Column("events/s", 9, ",.0f"),
    Column("requests/s", 10, ",.0f"),
)


# -- the server (a separate process) --------------------------------------------------


async def serve(port: int) -> None:
    counts: dict[str, float] = {"requests": 0, "events": 0, "first": 0.0, "last": 0.0}

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n"):
                    if line[:15].lower() == b"content-length:":
                        length = int(line[15:])
                body = await reader.readexactly(length) if length else b""
                payload = b""
                if head.startswith(b"GET /stats"):
                    payload = json.dumps(counts).encode()
                elif head.startswith(b"POST /reset"):
                    counts.update(requests=0, events=0, first=0.0, last=0.0)
                else:
                    # CLOCK_MONOTONIC: the same clock in every process of the machine.
                    counts["last"] = time.monotonic()
                    counts["first"] = counts["first"] or counts["last"]
                    counts["requests"] += 1
                    counts["events"] += body.count(b'"specversion"')
                writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\n\r\n" % len(payload))
                writer.write(payload)
        except (asyncio.IncompleteReadError, ConnectionError):
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", port, backlog=512)
    async with server:
        await server.serve_forever()


class Server:
    """The counting server in a child process."""

    def __init__(self) -> None:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc = subprocess.Popen([sys.executable, __file__, "--serve", str(self.port)])
        deadline = time.monotonic() + 10
        while True:
            try:
                self.stats()
                return
            except httpx.TransportError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)

    def stats(self) -> dict[str, float]:
        counts: dict[str, float] = httpx.get(self.url + "/stats").json()
        return counts

    def reset(self) -> None:
        httpx.post(self.url + "/reset")

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)


# -- the pipeline under test ------------------------------------------------------------


def measure(server: Server, events: int, batch_size: int, concurrency: int) -> dict[str, Any]:
    sink = {
        "type": "webhook",
        "url": server.url + "/hook/{kind}",
        "batch_size": batch_size,
        "concurrency": concurrency,
        "queue_size": 4096,
    }
    server.reset()

    async def scenario() -> None:
        async with httpx.AsyncClient() as stats:

            async def all_counted() -> bool:
                counted: int = (await stats.get(server.url + "/stats")).json()["events"]
                return counted >= events

            await brokerbench.run_burst(sink, events, all_counted, poll=0.05)

    asyncio.run(scenario())
    counts = server.stats()
    # From the first request's arrival to the last's: start-up is not throughput.
    elapsed = counts["last"] - counts["first"]
    return {
        "batch_size": batch_size,
        "concurrency": concurrency,
        "events": counts["events"],
        "requests": counts["requests"],
        "seconds": elapsed,
        "events_per_s": counts["events"] / elapsed,
        "requests_per_s": counts["requests"] / elapsed,
    }


def send_latency(server: Server, sends: int) -> tuple[float, float]:
    """p50 and p99 of one `send`, in ms, driven directly (no engine, no queue)."""
    from pipeline.sinks.webhook import WebhookSink

    hook = make_component(WebhookSink, REPO, url=server.url + "/hook")

    async def run() -> list[float]:
        await hook.open()
        times = []
        for n in range(sends):
            event = Event(EventKind.CLOSED_WRITE, f"/bench/in/l{n}.csv", "b/burst")
            started = time.perf_counter()
            await hook.send(event)
            times.append((time.perf_counter() - started) * 1000)
        await hook.close()
        return times

    times = asyncio.run(run())
    return statistics.median(times), brokerbench.percentile(times, 0.99)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--events", type=int, default=5000, help="events per unbatched row (x10 when batched)"
    )
    parser.add_argument("--serve", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        asyncio.run(serve(args.serve))
        return
    brokerbench.quiet_logs()
    server = Server()
    try:
        print("webhook sink -> local HTTP server (its own process)")
        print(TABLE.header())
        for batch_size, concurrency, times in ROWS:
            row = measure(server, args.events * times, batch_size, concurrency)
            cells = ("events", "requests", "seconds", "events_per_s", "requests_per_s")
            print(TABLE.row(batch_size, concurrency, *(row[cell] for cell in cells)))
        p50, p99 = send_latency(server, 2000)
        print(f"\none send (request -> 200), 2000 sequential: p50 {p50:.2f} ms, p99 {p99:.2f} ms")
    finally:
        server.stop()


if __name__ == "__main__":
    main()
