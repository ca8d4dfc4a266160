"""/metrics: valid Prometheus text whose counters agree with what was really delivered."""

from __future__ import annotations

import asyncio

from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

from pipeline.observe.metrics import exposition, metrics_registry
from pipeline.testing import PipelineRun, make_event

CONFIG = {
    "pipelines": {
        "landing": {
            "sources": [{"type": "scripted"}],
            "stages": [{"type": "filter", "exclude": ["*.tmp"]}],
            "sinks": [
                {"type": "collect", "name": "all", "fail": 2, "retry_backoff": "10ms"},
                {"type": "collect", "name": "csv", "when": 'ext == ".csv"'},
            ],
        }
    }
}
NAMES = ["a.csv", "b.txt", "c.csv", "d.tmp", "e.csv", "f.json", "g.tmp"]


def scrape(run: PipelineRun | None) -> dict[str, list[Sample]]:
    registry = metrics_registry(lambda: run.runner if run else None)
    text = exposition(registry).decode()
    return {family.name: family.samples for family in text_string_to_metric_families(text)}


def value(samples: list[Sample], name: str, component: str) -> float:
    found = [s.value for s in samples if s.name == name and s.labels["component"] == component]
    assert len(found) == 1, (name, component, samples)
    return found[0]


def test_counters_agree_with_the_events_delivered() -> None:
    async def scenario() -> tuple[dict[str, list[Sample]], dict[str, int]]:
        async with PipelineRun(CONFIG) as run:
            await run.emit(*(make_event("closed_write", f"/in/{name}") for name in NAMES))
            await run.wait_for(
                lambda: (
                    len(run.collected.get("all", [])) == 5
                    and len(run.collected.get("csv", [])) == 3
                )
            )
            families = scrape(run)
            delivered = {name: len(events) for name, events in run.collected.items()}
        return families, delivered

    families, delivered = asyncio.run(scenario())
    all_sink, csv_sink = "landing.sinks[0]", "landing.sinks[1]"
    assert value(families["fspipeline_events_out"], "fspipeline_events_out_total",
                 "landing.sources[0]") == len(NAMES)  # fmt: skip
    stage_out = value(families["fspipeline_events_out"], "fspipeline_events_out_total",
                      "landing.stages[0]")  # fmt: skip
    assert stage_out == 5  # the two .tmp files were filtered out
    delivered_samples = families["fspipeline_delivered"]
    assert value(delivered_samples, "fspipeline_delivered_total", all_sink) == delivered["all"]
    assert value(delivered_samples, "fspipeline_delivered_total", csv_sink) == delivered["csv"]
    assert value(families["fspipeline_events_in"], "fspipeline_events_in_total", csv_sink) == 3
    assert value(families["fspipeline_retries"], "fspipeline_retries_total", all_sink) == 2
    assert value(families["fspipeline_dead_lettered"], "fspipeline_dead_lettered_total",
                  all_sink) == 0  # fmt: skip
    assert value(families["fspipeline_queue_depth"], "fspipeline_queue_depth", all_sink) == 0
    assert families["fspipeline_ready"][0].value == 1.0
    for name in ("fspipeline_delivery_seconds", "fspipeline_latency_seconds"):
        samples = families[name]
        count = value(samples, f"{name}_count", all_sink)
        assert count == delivered["all"]  # one send per event (no batching configured)
        buckets = [s for s in samples if s.name == f"{name}_bucket"
                   and s.labels["component"] == all_sink]  # fmt: skip
        assert buckets[-1].labels["le"] == "+Inf" and buckets[-1].value == count
        assert [b.value for b in buckets] == sorted(b.value for b in buckets)
    labels = families["fspipeline_delivered"][0].labels
    assert labels == {"pipeline": "landing", "component": all_sink, "type": "collect",
                      "kind": "sink"}  # fmt: skip


def test_before_the_pipelines_start_only_readiness_is_reported_and_it_is_zero() -> None:
    families = scrape(None)
    assert families["fspipeline_ready"][0].value == 0.0
    assert "fspipeline_delivered" not in families
    assert "process_cpu_seconds" in families  # the process's own numbers come along
