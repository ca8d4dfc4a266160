"""The harness the sink benchmarks share (broker_*.py, webhook.py): a synthetic event stream
through the real engine, the file-close -> independent-consumer latency run, and tables.

Throughput: `run_burst` builds a pipeline whose `burst` source emits N closed_write events
as fast as the engine takes them into the sink under test, and times (wall clock and this
process's CPU) from the engine's start until the caller's `reached()` says all arrived.

Latency: `close_to_arrival` runs `pipeline run` in a subprocess (inotify on /dev/shm ->
the sink), closes one file every few ms and waits until the caller's independent consumer
(a `Receiver`, in this process) has noted each one. Writer and consumer read the same
monotonic clock: latency = arrival - close.
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
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Iterable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, Self

import structlog

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from pipeline import ComponentOptions, Emit, Event, EventKind, Source, hookimpl  # noqa: E402
from pipeline.config import Plan, load_config_data  # noqa: E402
from pipeline.engine import Runner  # noqa: E402
from pipeline.registry import Registry, build_registry  # noqa: E402
from tests.e2e.cli import Background  # noqa: E402

WARM_UP_FILES = 20
"""Files written (and not measured) before the latency run: the sink's first connection,
first allocations and client-side setup (nats-py's reply inbox) are not latency."""


def quiet_logs() -> None:
    """Only errors from the components running in this process."""
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(40))


def broker_arguments(doc: str, *, url: str, url_help: str, events: int) -> argparse.Namespace:
    """The command line of a broker sink benchmark: --url, --events, --files, --pause."""
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument("--url", default=url, help=url_help)
    parser.add_argument("--events", type=int, default=events, help="events per throughput row")
    parser.add_argument("--files", type=int, default=1000, help="files in the latency run")
    parser.add_argument("--pause", type=float, default=0.005, help="seconds between files")
    return parser.parse_args()


# -- throughput: a synthetic source through the engine ---------------------------------


class BurstOptions(ComponentOptions):
    count: int


class BurstSource(Source[BurstOptions]):
    """Emits `count` closed_write events as fast as the engine takes them, then idles."""

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


@dataclass(frozen=True)
class Timing:
    """How long a run took: wall clock, and the CPU time this whole process spent."""

    seconds: float
    cpu_seconds: float


def burst_plan(
    sink: dict[str, Any], events: int, plugins: Iterable[tuple[str, object]] = ()
) -> tuple[Plan, Registry]:
    """One pipeline: `events` synthetic events into `sink` (a sink's config mapping)."""
    registry = build_registry(extra_plugins=[("burst", BurstPlugin()), *plugins], autoload=False)
    source = {"type": "burst", "count": events}
    data = {"pipelines": {"b": {"sources": [source], "sinks": [sink]}}}
    return load_config_data(data, registry, source="bench", config_dir=REPO), registry


async def run_burst(
    sink: dict[str, Any],
    events: int,
    reached: Callable[[], Awaitable[bool]],
    *,
    plugins: Iterable[tuple[str, object]] = (),
    poll: float = 0.01,
    timeout: float | None = None,
) -> Timing:
    """Run the burst pipeline until `reached()` (asked every `poll` s) or `timeout` s."""
    plan, registry = burst_plan(sink, events, plugins)
    runner = Runner(plan, registry)
    task = asyncio.create_task(runner.run())
    started, cpu_started = time.perf_counter(), time.process_time()
    while not await reached():
        if timeout is not None and time.perf_counter() - started >= timeout:
            break
        await asyncio.sleep(poll)
    timing = Timing(time.perf_counter() - started, time.process_time() - cpu_started)
    runner.request_stop()
    await task
    return timing


# -- tables ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Column:
    title: str
    width: int
    spec: str = ""
    """How a value is formatted after its alignment and width, e.g. `.2f` or `,.0f`."""
    align: str = ">"


class Table:
    """Fixed-width columns: a header line and one line per row."""

    def __init__(self, *columns: Column, gap: str = "  ") -> None:
        self.columns = columns
        self.gap = gap

    def header(self) -> str:
        return self.gap.join(format(c.title, f"{c.align}{c.width}") for c in self.columns)

    def row(self, *values: object) -> str:
        cells = zip(self.columns, values, strict=True)
        return self.gap.join(format(v, f"{c.align}{c.width}{c.spec}") for c, v in cells)


ENGINE_TABLE = Table(
    Column("batch_size", 10),
    Column("concurrency", 11),
    Column("seconds", 8, ".2f"),
    Column("events/s", 9, ",.0f"),
    Column("CPU us/event", 12, ".1f"),
    Column("events/CPU-s", 12, ",.0f"),
)
LATENCY_TABLE = Table(*(Column(title, 8, ".2f") for title in ("p50 ms", "p99 ms", "max ms")))


def print_engine_rows(
    rows: Iterable[tuple[int, int]], events: int, measure: Callable[[int, int], tuple[int, Timing]]
) -> None:
    """ENGINE_TABLE for (batch_size, concurrency) rows; `measure` returns (delivered, timing)."""
    print(ENGINE_TABLE.header())
    for batch_size, concurrency in rows:
        delivered, timing = measure(batch_size, concurrency)
        assert delivered == events, (batch_size, concurrency, delivered, timing)
        cpu_us_per_event = timing.cpu_seconds / events * 1e6
        print(
            ENGINE_TABLE.row(
                batch_size,
                concurrency,
                timing.seconds,
                events / timing.seconds,
                cpu_us_per_event,
                1e6 / cpu_us_per_event,
            )
        )


# -- latency: file close -> an independent consumer ------------------------------------


class Receiver(Protocol):
    """An independent consumer of what the sink sent: when each path first arrived
    (time.monotonic()), until stopped."""

    arrived: dict[str, float]

    def stop(self) -> None: ...


class LoopReceiver(ABC):
    """A Receiver whose asyncio client runs in a thread and event loop of its own."""

    def __init__(self) -> None:
        self.arrived: dict[str, float] = {}
        self._ready = threading.Event()
        self._failure: BaseException | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._thread = threading.Thread(target=lambda: asyncio.run(self._main()), daemon=True)

    @abstractmethod
    def consuming(self) -> AbstractAsyncContextManager[None]:
        """Subscribed (noting arrivals in `arrived`) while the context is open."""

    def start(self) -> Self:
        """Start consuming; returns once subscribed."""
        self._thread.start()
        if not self._ready.wait(15) or self._failure is not None:
            raise SystemExit(f"the consumer did not start: {self._failure!r}")
        return self

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        try:
            async with self.consuming():
                self._ready.set()
                await self._stop.wait()
        except BaseException as exc:
            self._failure = exc
            self._ready.set()
            raise

    def stop(self) -> None:
        if self._loop is not None and self._stop is not None and self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(10)


@dataclass(frozen=True)
class Latency:
    files: int
    received: int
    p50_ms: float
    p99_ms: float
    max_ms: float


def percentile(values: Iterable[float], share: float) -> float:
    """The value below which `share` of them lie (the sorted list at int(n * share) - 1)."""
    ordered = sorted(values)
    return ordered[max(0, int(len(ordered) * share) - 1)]


def write_files(inbox: Path, count: int, pause: float) -> dict[str, float]:
    """Close one one-byte file every `pause` s (never two at once); when each was closed."""
    closed: dict[str, float] = {}
    due = time.monotonic()
    for n in range(count):
        if (wait := due - time.monotonic()) > 0:
            time.sleep(wait)
        due = time.monotonic() + pause
        path = inbox / f"f{n:06d}"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o644)
        os.write(fd, b"x")
        os.close(fd)
        closed[str(path)] = time.monotonic()
    return closed


def close_to_arrival(
    config: str,
    receiver: Receiver,
    files: int,
    pause: float,
    *,
    name: str,
    env: dict[str, str] | None = None,
) -> Latency:
    """Run `config` (its source watching `inbox`), write `files` files `pause` s apart and
    measure until `receiver` (started; stopped here at the end) has noted them all."""
    base = Path("/dev/shm") if Path("/dev/shm").is_dir() else None
    with tempfile.TemporaryDirectory(dir=base, prefix=f"fsbench-{name}-") as folder:
        root = Path(folder)
        inbox = root / "inbox"
        inbox.mkdir()
        (root / "config.yaml").write_text(config)
        running = Background("run", "config.yaml", cwd=root, env=env)
        closed: dict[str, float] = {}
        try:
            running.wait_ready()
            for warm in range(WARM_UP_FILES):
                (inbox / f"warm{warm}").write_bytes(b"x")
            time.sleep(0.5)
            closed = write_files(inbox, files, pause)
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
        raise SystemExit(f"none of the files arrived; pipeline stderr:\n{running.stderr}")
    return Latency(files, len(times), statistics.median(times), percentile(times, 0.99), times[-1])


def print_latency(arrival: str, latency: Latency, pause: float, note: str = "") -> None:
    """The latency table under a line naming what arrived where (`arrival`)."""
    print(
        f"\nfile close -> {arrival} ({latency.received} of {latency.files} files, "
        f"one every {pause * 1000:g} ms{note})"
    )
    print(LATENCY_TABLE.header())
    print(LATENCY_TABLE.row(latency.p50_ms, latency.p99_ms, latency.max_ms))


def engine_benchmark(
    doc: str,
    *,
    sink: str,
    url: str,
    url_help: str,
    events: int,
    rows: Iterable[tuple[int, int]],
    throughput: Callable[[str, int, int, int], tuple[int, Timing]],
    latency: Callable[[str, int, float], Latency],
    arrival: str,
) -> None:
    """The command of a sink benchmark whose rows are (batch_size, concurrency): parse
    the command line, print ENGINE_TABLE (`throughput(url, events, batch_size,
    concurrency)`) and the latency table (`latency(url, files, pause)`)."""
    args = broker_arguments(doc, url=url, url_help=url_help, events=events)
    quiet_logs()
    print(f"{sink} into {args.url} ({args.events:,} events a row)\n")
    print_engine_rows(
        rows, args.events, lambda batch, lanes: throughput(args.url, args.events, batch, lanes)
    )
    print_latency(arrival, latency(args.url, args.files, args.pause), args.pause)
