"""Counters the engine keeps per component, for the live status, /metrics and the dashboard.

Plain integers bumped on the hot path; readers take a `snapshot` when they need one.
"""

from __future__ import annotations

import bisect
import dataclasses
import time
from collections.abc import Callable

LATENCY_BUCKETS: tuple[float, ...] = (
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
)  # fmt: skip
"""Upper bounds in seconds, as Prometheus histograms take them (+Inf is implied)."""


class Histogram:
    """Counts of observations per bucket (not cumulative), their sum and count."""

    __slots__ = ("buckets", "count", "counts", "total")

    def __init__(self, buckets: tuple[float, ...] = LATENCY_BUCKETS) -> None:
        self.buckets = buckets
        self.counts = [0] * (len(buckets) + 1)
        self.total = 0.0
        self.count = 0

    def observe(self, seconds: float) -> None:
        self.counts[bisect.bisect_left(self.buckets, seconds)] += 1
        self.total += seconds
        self.count += 1

    def cumulative(self) -> list[tuple[float, int]]:
        """(upper bound, observations <= it) pairs, ending with (inf, count)."""
        running, out = 0, []
        for bound, count in zip((*self.buckets, float("inf")), self.counts, strict=True):
            running += count
            out.append((bound, running))
        return out

    def quantile(self, q: float) -> float | None:
        """An estimate (the bucket's upper bound) of the q-quantile; None without data."""
        if not self.count:
            return None
        rank = q * self.count
        for bound, running in self.cumulative():
            if running >= rank:
                return bound if bound != float("inf") else self.buckets[-1]
        return self.buckets[-1]


@dataclasses.dataclass(eq=False)
class ComponentStats:
    """What one component did since the start. Sources count `events_out`; stages both;
    sinks `events_in` (accepted into the queue), `delivered`, `dead_lettered`, `retries`."""

    pipeline: str
    label: str
    kind: str
    type_name: str
    events_in: int = 0
    events_out: int = 0
    delivered: int = 0
    dead_lettered: int = 0
    retries: int = 0
    restarts: int = 0
    last_error: str | None = None
    last_error_time: float | None = None
    failing: bool = False
    """A sink whose last attempt failed and which has not delivered since; a source being
    restarted."""
    delivery_seconds: Histogram = dataclasses.field(default_factory=Histogram)
    """How long each `send`/`send_batch` call took (successful ones)."""
    latency_seconds: Histogram = dataclasses.field(default_factory=Histogram)
    """From the event's time (when the source saw it) to its delivery."""
    queue_depth: Callable[[], int] = lambda: 0

    def error(self, reason: str) -> None:
        self.last_error = reason
        self.last_error_time = time.time()
