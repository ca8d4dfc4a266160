"""Stage benchmark: per-event cost of each stage and of filter→debounce→transform→logfile.

1. Each stage alone: `process` called directly on synthetic events (no engine), in µs/event.
2. The whole chain through the real engine (registry, config validation, Runner): a
   synthetic in-process source emits N events as fast as back-pressure allows, into
   filter → debounce → transform → logfile; the same run without stages is the baseline,
   and the difference is what the chain adds per event.
3. Memory: RSS growth with 1,000,000 distinct paths pending in debounce (events included,
   built the way a source builds them).

    .venv/bin/python bench/chain.py [--events 200000] [--pending 1000000] [--dir /dev/shm]

Targets: the chain adds under 20 µs per event; a million pending paths stay under 1 GB.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from types import MappingProxyType
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import structlog

from pipeline import (
    ComponentContext,
    ComponentOptions,
    Emit,
    Event,
    EventKind,
    Source,
    Stage,
    hookimpl,
)
from pipeline.config import load_config_data
from pipeline.engine import Runner
from pipeline.registry import Registry, build_registry

ROOT = "/data/landing"
META = MappingProxyType({"root": ROOT})


def synthetic(i: int, kind: EventKind = EventKind.CLOSED_WRITE) -> Event:
    name = "x.tmp" if i % 10 == 9 else f"part-{i:07d}.csv"  # 10% dropped by the filter
    return Event(
        kind, f"{ROOT}/2026/11/24/batch-{i // 1000:04d}/{name}", "bench/synthetic", meta=META
    )


class SyntheticOptions(ComponentOptions):
    count: int = 100_000


class SyntheticSource(Source[SyntheticOptions]):
    """Emits `count` closed_write events on distinct paths, then idles."""

    type_name = "synthetic"
    Options = SyntheticOptions
    started_at: float = 0.0
    started_cpu: float = 0.0

    async def run(self, emit: Emit) -> None:
        events = [synthetic(i) for i in range(self.options.count)]
        SyntheticSource.started_at = time.perf_counter()
        SyntheticSource.started_cpu = time.process_time()
        for event in events:
            await emit(event)
        await asyncio.Event().wait()


class BenchPlugin:
    @hookimpl
    def pipeline_components(self) -> list[type[Any]]:
        return [SyntheticSource]


FILTER = {
    "type": "filter",
    "include": ["*.csv"],
    "exclude": ["**/.*", "*.tmp"],
    "directories": "drop",
}
DEBOUNCE = {"type": "debounce", "quiet": "20ms"}
TRANSFORM = {"type": "transform", "relative_to": "root", "set": {"meta.key": "{stem}-{kind}"}}


# -- 1. each stage alone ---------------------------------------------------------------


def build_stage(registry: Registry, options: dict[str, Any], tmp: Path) -> Stage[Any]:
    raw = dict(options)
    spec = registry.find(raw.pop("type"))[0]
    validated = spec.options_model.model_validate(raw, context={"config_dir": tmp})
    context = ComponentContext("bench", "bench.stages[0]", tmp, None, structlog.get_logger())
    stage: Stage[Any] = spec.cls(validated, context)
    return stage


def time_stage(stage: Stage[Any], events: list[Event], flush: bool = False) -> float:
    """µs per event for `process` (and, for a holding stage, the flush that emits them)."""
    passed = 0

    async def emit(event: Event) -> None:
        nonlocal passed
        passed += 1

    async def main() -> float:
        started = time.perf_counter()
        for event in events:
            await stage.process(event, emit)
        if flush:
            await stage.flush(emit)
        return time.perf_counter() - started

    elapsed = asyncio.run(main())
    return elapsed / len(events) * 1e6


def stages_alone(registry: Registry, count: int, tmp: Path, rounds: int) -> None:
    events = [synthetic(i) for i in range(count)]
    cases: list[tuple[str, dict[str, Any], bool]] = [
        ("filter (globs, as in config.yaml)", FILTER, False),
        (
            "filter (expression)",
            {
                "type": "filter",
                "expression": 'ext in [".csv", ".tsv"] and not startswith(name, "x")',
            },
            False,
        ),
        ("filter (regex)", {"type": "filter", "regex": r"/batch-\d+/part-"}, False),
        ("debounce (process + emit on flush)", DEBOUNCE, True),
        ("debounce batch mode (process + flush)", {**DEBOUNCE, "batch": True}, True),
        ("transform (relative_to + set template)", TRANSFORM, False),
    ]
    print(f"1. each stage alone, {count:,} events, process() called directly, best of {rounds}")
    for label, options, flush in cases:
        gc.collect()
        cost = min(
            time_stage(build_stage(registry, options, tmp), events, flush) for _ in range(rounds)
        )
        print(f"   {label:<48} {cost:6.2f} µs/event  {1e6 / cost:>12,.0f} events/s")
    files = make_files(tmp, 2000)
    for label, options in (
        (
            "transform add: [size, mtime] (thread)",
            {"type": "transform", "add": ["size", "mtime"]},
        ),
        ("transform add: [sha256] (1 KB files)", {"type": "transform", "add": ["sha256"]}),
        (
            "ready mode: close (stat in a thread)",
            {"type": "ready", "mode": "close"},
        ),
    ):
        cost = min(time_stage(build_stage(registry, options, tmp), files) for _ in range(rounds))
        print(f"   {label:<48} {cost:6.2f} µs/event  {1e6 / cost:>12,.0f} events/s")


def make_files(tmp: Path, count: int) -> list[Event]:
    folder = tmp / "files"
    folder.mkdir(exist_ok=True)
    events = []
    for i in range(count):
        path = folder / f"f{i:05d}.csv"
        path.write_bytes(b"x" * 1024)
        events.append(
            Event(EventKind.CLOSED_WRITE, str(path), "bench/files", meta={"root": str(tmp)})
        )
    return events


# -- 2. the chain in the engine --------------------------------------------------------


def run_pipeline(
    registry: Registry, stages: list[dict[str, Any]], count: int, tmp: Path
) -> tuple[float, float, int]:
    """Wall and CPU seconds from the first emit until the log file holds every passed event."""
    log = tmp / f"events-{len(stages)}.jsonl"
    log.unlink(missing_ok=True)
    data = {
        "pipelines": {
            "bench": {
                "sources": [{"type": "synthetic", "count": count}],
                "stages": stages,
                "sinks": [{"type": "logfile", "path": str(log)}],
            }
        }
    }
    plan = load_config_data(data, registry, source="bench", config_dir=tmp)
    runner = Runner(plan, registry)
    expected = sum(1 for i in range(count) if i % 10 != 9) if stages else count
    workers = runner.pipelines[0].workers

    async def main() -> tuple[float, float]:
        task = asyncio.create_task(runner.run())
        while sum(w.delivered for w in workers) < expected:
            await asyncio.sleep(0.005)
        wall = time.perf_counter() - SyntheticSource.started_at
        cpu = time.process_time() - SyntheticSource.started_cpu
        runner.request_stop()
        await task
        return wall, cpu

    gc.collect()
    wall, cpu = asyncio.run(main())
    with open(log, "rb") as handle:
        lines = sum(1 for _ in handle)
    return wall, cpu, lines


def chain(registry: Registry, count: int, tmp: Path, rounds: int) -> None:
    print(f"\n2. the chain in the engine, {count:,} events (10% dropped by the filter)")
    print(f"   best of {rounds} runs; CPU time is the steadier figure on a busy machine")
    runs = {}
    for label, stages in (
        ("source → logfile (baseline)", []),
        ("source → filter → debounce → transform → logfile", [FILTER, DEBOUNCE, TRANSFORM]),
    ):
        results = [run_pipeline(registry, stages, count, tmp) for _ in range(rounds)]
        wall = min(r[0] for r in results)
        cpu = min(r[1] for r in results)
        runs[label] = (wall, cpu)
        print(
            f"   {label:<50} {count / wall:>9,.0f} events/s  "
            f"wall {wall / count * 1e6:6.2f} µs/event  CPU {cpu / count * 1e6:6.2f} µs/event  "
            f"({results[0][2]:,} lines written)"
        )
    (base_wall, base_cpu), (full_wall, full_cpu) = runs.values()
    print(
        f"   the chain adds {(full_wall - base_wall) / count * 1e6:.2f} µs per event of wall time, "
        f"{(full_cpu - base_cpu) / count * 1e6:.2f} µs of CPU (target: under 20 µs)"
    )


# -- 3. memory -------------------------------------------------------------------------


def rss_bytes() -> int:
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def memory(registry: Registry, count: int, tmp: Path) -> None:
    stage = build_stage(registry, {"type": "debounce", "quiet": "1h"}, tmp)

    async def never(event: Event) -> None:
        raise AssertionError("nothing may leave a one-hour debounce")

    async def main() -> int:
        gc.collect()
        before = rss_bytes()
        for i in range(count):
            path = f"{ROOT}/incoming/2026/11/24/batch-{i // 1000:04d}/part-{i:07d}.csv"
            await stage.process(
                Event(EventKind.CLOSED_WRITE, path, "landing/inotify", meta=META), never
            )
        gc.collect()
        return rss_bytes() - before

    grown = asyncio.run(main())
    pending = getattr(stage, "pending", count)
    print(
        f"\n3. memory: {pending:,} distinct paths pending in debounce: RSS grew "
        f"{grown / 2**20:,.0f} MiB ({grown / pending:,.0f} bytes per path, event included; "
        f"target: under 1 GB)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--pending", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=3, help="runs of each chain; the best counts")
    parser.add_argument("--dir", default="/dev/shm" if os.path.isdir("/dev/shm") else None)
    args = parser.parse_args()
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(40))
    os.environ.setdefault("FSPIPELINE_DISABLE_PLUGIN_AUTOLOAD", "1")
    registry = build_registry(extra_plugins=[("bench", BenchPlugin())], autoload=False)
    tmp = Path(tempfile.mkdtemp(prefix="fsp-chain-", dir=args.dir))
    try:
        print(f"python {sys.version.split()[0]}, files in {tmp}\n")
        stages_alone(registry, args.events, tmp, args.rounds)
        chain(registry, args.events, tmp, args.rounds)
        memory(registry, args.pending, tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
