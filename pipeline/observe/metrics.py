"""`/metrics`: the engine's counters in the Prometheus text format, read at scrape time."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.process_collector import ProcessCollector
from prometheus_client.registry import Collector

from pipeline.observe.snapshot import readiness

if TYPE_CHECKING:
    from pipeline.engine.runner import Runner
    from pipeline.engine.stats import ComponentStats, Histogram

PREFIX = "fspipeline_"
LABELS = ("pipeline", "component", "type", "kind")

# name, help, the kinds of component it is about, how to read it
_COUNTERS: tuple[tuple[str, str, frozenset[str], Callable[[ComponentStats], int]], ...] = (
    ("events_in", "Events that entered a stage or a sink's queue.",
     frozenset({"stage", "sink"}), lambda s: s.events_in),
    ("events_out", "Events a source emitted or a stage passed on.",
     frozenset({"source", "stage"}), lambda s: s.events_out),
    ("delivered", "Events a sink delivered.", frozenset({"sink"}), lambda s: s.delivered),
    ("dead_lettered", "Events a sink gave up on and dead-lettered.",
     frozenset({"sink"}), lambda s: s.dead_lettered),
    ("retries", "Failed delivery attempts that were retried.",
     frozenset({"sink"}), lambda s: s.retries),
    ("source_restarts", "Times a source crashed and was restarted.",
     frozenset({"source"}), lambda s: s.restarts),
)  # fmt: skip


def _bound(seconds: float) -> str:
    return "+Inf" if math.isinf(seconds) else repr(seconds)


def _labels(stats: ComponentStats) -> list[str]:
    return [stats.pipeline, stats.label, stats.type_name, stats.kind]


def _histogram(
    name: str,
    text: str,
    sinks: Iterable[ComponentStats],
    pick: Callable[[ComponentStats], Histogram],
) -> HistogramMetricFamily:
    family = HistogramMetricFamily(PREFIX + name, text, labels=LABELS)
    for stats in sinks:
        histogram = pick(stats)
        buckets = [(_bound(bound), count) for bound, count in histogram.cumulative()]
        family.add_metric(_labels(stats), buckets, sum_value=histogram.total)
    return family


class RunnerCollector(Collector):
    """Reads `Runner.stats()` at each scrape; before a runner is attached, only `ready`."""

    def __init__(self, runner: Callable[[], Runner | None]) -> None:
        self._runner = runner

    def describe(self) -> Iterable[Metric]:
        return []  # registering must not collect: the runner may not exist yet

    def collect(self) -> Iterator[Metric]:
        runner = self._runner()
        ready = GaugeMetricFamily(
            PREFIX + "ready", "1 while every source is watching and every sink delivering."
        )
        ready.add_metric([], 1.0 if readiness(runner)[0] else 0.0)
        yield ready
        if runner is None:
            return
        every = runner.stats()
        for name, text, kinds, read in _COUNTERS:
            counter = CounterMetricFamily(PREFIX + name, text, labels=LABELS)
            for stats in every:
                if stats.kind in kinds:
                    counter.add_metric(_labels(stats), read(stats))
            yield counter
        sinks = [stats for stats in every if stats.kind == "sink"]
        depth = GaugeMetricFamily(
            PREFIX + "queue_depth", "Events waiting in a sink's queue.", labels=LABELS
        )
        failing = GaugeMetricFamily(
            PREFIX + "failing",
            "1 for a sink whose last attempt failed or a source being restarted.",
            labels=LABELS,
        )
        for stats in every:
            if stats.kind == "sink":
                depth.add_metric(_labels(stats), stats.queue_depth())
            failing.add_metric(_labels(stats), 1.0 if stats.failing else 0.0)
        yield depth
        yield failing
        yield _histogram(
            "delivery_seconds",
            "How long a successful send took.",
            sinks,
            lambda s: s.delivery_seconds,
        )
        yield _histogram(
            "latency_seconds",
            "From when the source saw an event to its delivery.",
            sinks,
            lambda s: s.latency_seconds,
        )


def metrics_registry(runner: Callable[[], Runner | None]) -> CollectorRegistry:
    """A registry of the pipeline's metrics and the process's (CPU, memory, open files)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(RunnerCollector(runner))
    ProcessCollector(registry=registry)
    return registry


def exposition(registry: CollectorRegistry) -> bytes:
    """The text format scrapers read (`text/plain; version=0.0.4`)."""
    return generate_latest(registry)
