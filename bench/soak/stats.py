"""Reads the running pipeline's counters from its HTTP endpoint (/api/stats, /metrics)."""

from __future__ import annotations

import dataclasses
import json
import urllib.request
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

LATENCY = "fspipeline_latency_seconds"


@dataclasses.dataclass(frozen=True)
class Counters:
    """One component's counters, as /api/stats reports them."""

    label: str
    kind: str
    type_name: str
    events_in: int
    events_out: int
    delivered: int
    dead_lettered: int
    retries: int
    queue_depth: int
    last_error: str | None


@dataclasses.dataclass(frozen=True)
class Stats:
    """Every component of the soak pipeline at one moment, found by kind and type."""

    components: tuple[Counters, ...]
    events_seen: int
    """Events that left the stages (the live tail's count)."""

    def one(self, kind: str, type_name: str) -> Counters:
        matches = [c for c in self.components if c.kind == kind and c.type_name == type_name]
        if len(matches) != 1:
            raise LookupError(f"expected one {kind} {type_name!r}, found {len(matches)}")
        return matches[0]

    @property
    def source(self) -> Counters:
        return self.one("source", "inotify")

    @property
    def sinks(self) -> list[Counters]:
        return [c for c in self.components if c.kind == "sink"]

    def key(self) -> tuple[int, ...]:
        """Every counter that moves while events flow: equal keys mean nothing moved."""
        return tuple(
            n
            for c in self.components
            for n in (c.events_in, c.events_out, c.delivered, c.dead_lettered, c.queue_depth)
        )


def _counters(row: dict[str, Any]) -> Counters:
    return Counters(
        label=row["label"],
        kind=row["kind"],
        type_name=row["type_name"],
        events_in=int(row["events_in"]),
        events_out=int(row["events_out"]),
        delivered=int(row["delivered"]),
        dead_lettered=int(row["dead_lettered"]),
        retries=int(row["retries"]),
        queue_depth=int(row["queue_depth"]),
        last_error=row.get("last_error"),
    )


def fetch_stats(port: int, timeout: float = 10.0) -> Stats:
    """GET /api/stats of the pipeline listening on 127.0.0.1:`port`."""
    url = f"http://127.0.0.1:{port}/api/stats"
    with urllib.request.urlopen(url, timeout=timeout) as response:
        body = json.load(response)
    rows = [part for pipeline in body["pipelines"] for part in pipeline["components"]]
    return Stats(tuple(_counters(row) for row in rows), int(body["events_seen"]))


def fetch_latency(port: int, sink_type: str, timeout: float = 10.0) -> dict[float, float]:
    """The delivery-latency histogram of the sink of type `sink_type`, from /metrics:
    upper bound (seconds) -> deliveries that took at most that long, since the start."""
    url = f"http://127.0.0.1:{port}/metrics"
    with urllib.request.urlopen(url, timeout=timeout) as response:
        text = response.read().decode()
    buckets: dict[float, float] = {}
    for family in text_string_to_metric_families(text):
        if family.name != LATENCY:
            continue
        for sample in family.samples:
            if sample.name.endswith("_bucket") and sample.labels.get("type") == sink_type:
                buckets[float(sample.labels["le"])] = sample.value
    return buckets
