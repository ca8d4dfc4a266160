"""Per-component numbers at one moment, with rates and readiness: what every view shows."""

from __future__ import annotations

import collections
import dataclasses
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from pipeline.redact import redact

if TYPE_CHECKING:
    from pipeline.engine.runner import Runner
    from pipeline.engine.stats import ComponentStats

RATE_WINDOW = 5.0
"""Seconds over which the rates of the live view and the dashboard are averaged."""


@dataclasses.dataclass(frozen=True)
class ComponentStatus:
    """One component's counters, with its rate per second, ready to show or serialize."""

    pipeline: str
    label: str
    kind: str
    type_name: str
    events_in: int
    events_out: int
    delivered: int
    dead_lettered: int
    retries: int
    restarts: int
    queue_depth: int
    rate: float
    """Events per second: out of a source or stage, delivered by a sink."""
    failing: bool
    last_error: str | None
    last_error_time: float | None
    latency_p50: float | None
    latency_p99: float | None

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def throughput(stats: ComponentStats) -> int:
    """The count a component's rate is about: deliveries of a sink, events out otherwise."""
    return stats.delivered if stats.kind == "sink" else stats.events_out


class RateMeter:
    """Events per second of each component, averaged over the last `window` seconds.

    Each reading adds a sample; several readers (the live view, dashboards) may share one.
    A counter that goes down (a component rebuilt by a hot reload) starts over.
    """

    def __init__(
        self, window: float = RATE_WINDOW, now: Callable[[], float] = time.monotonic
    ) -> None:
        self.window = window
        self._now = now
        self._samples: dict[tuple[str, str], collections.deque[tuple[float, int]]] = {}

    def rate(self, key: tuple[str, str], count: int) -> float:
        now = self._now()
        samples = self._samples.setdefault(key, collections.deque())
        if samples and count < samples[-1][1]:
            samples.clear()
        samples.append((now, count))
        # Keep one sample at or before the window's start, so the span covers the window.
        while len(samples) > 2 and samples[1][0] <= now - self.window:
            samples.popleft()
        first_time, first_count = samples[0]
        span = now - first_time
        return (count - first_count) / span if span > 0 else 0.0


def snapshot(runner: Runner, meter: RateMeter) -> list[ComponentStatus]:
    """Every component of `runner`, pipeline by pipeline, in config order."""
    return [_status(stats, meter) for stats in runner.stats()]


def _status(stats: ComponentStats, meter: RateMeter) -> ComponentStatus:
    latency = stats.latency_seconds
    return ComponentStatus(
        pipeline=stats.pipeline,
        label=stats.label,
        kind=stats.kind,
        type_name=stats.type_name,
        events_in=stats.events_in,
        events_out=stats.events_out,
        delivered=stats.delivered,
        dead_lettered=stats.dead_lettered,
        retries=stats.retries,
        restarts=stats.restarts,
        queue_depth=stats.queue_depth(),
        rate=round(meter.rate((stats.pipeline, stats.label), throughput(stats)), 3),
        failing=stats.failing,
        last_error=redact(stats.last_error) if stats.last_error else None,
        last_error_time=stats.last_error_time,
        latency_p50=latency.quantile(0.5),
        latency_p99=latency.quantile(0.99),
    )


def readiness(runner: Runner | None) -> tuple[bool, str]:
    """Whether the process is ready (sources watching, sinks delivering), and why not."""
    if runner is None or not runner.started.is_set():
        return False, "starting: the pipelines are opening"
    if runner.stopping.is_set():
        return False, "stopping: the sources are closed and the queues draining"
    for stats in runner.stats():
        if not stats.failing:
            continue
        reason = redact(stats.last_error or "unknown error")
        if stats.kind == "source":
            return False, f"source {stats.label} ({stats.type_name}) is restarting: {reason}"
        if stats.kind == "sink":
            return False, f"sink {stats.label} ({stats.type_name}) cannot deliver: {reason}"
    if not runner.ready:
        return False, "not ready"
    return True, "ready: every source is watching and every sink delivering"
