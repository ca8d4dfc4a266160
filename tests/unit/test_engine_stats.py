"""The counters behind the live status, /metrics and the dashboard agree with what happened."""

from __future__ import annotations

import asyncio

from pipeline.engine.stats import Histogram
from pipeline.event import Event
from pipeline.testing import PipelineRun, make_event


def test_counts_per_component_match_the_events() -> None:
    config = {
        "pipelines": {
            "p": {
                "sources": [{"type": "scripted"}],
                "stages": [{"type": "filter", "include": ["**/*.csv"]}],
                "sinks": [
                    {"type": "collect", "name": "ok"},
                    {"type": "collect", "name": "bad", "fail": 99, "max_attempts": 2,
                     "retry_backoff": "1ms"},
                ],
            }
        }
    }  # fmt: skip
    tapped: list[tuple[str, Event]] = []

    async def scenario() -> dict[str, dict[str, object]]:
        async with PipelineRun(config) as run:
            assert run.runner is not None
            await run.runner.started.wait()
            assert run.runner.ready
            run.runner.add_tap(lambda pipeline, event: tapped.append((pipeline, event)))
            await run.emit(*(make_event("closed_write", f"/in/{i}.csv") for i in range(3)))
            await run.emit(make_event("closed_write", "/in/skip.txt"))
            await run.wait_for(lambda: len(run.dead_letters) == 3)
            stats = {s.label: vars(s) for s in run.runner.stats()}
        return stats

    stats = asyncio.run(scenario())
    assert stats["p.sources[0]"]["events_out"] == 4
    assert (stats["p.stages[0]"]["events_in"], stats["p.stages[0]"]["events_out"]) == (4, 3)
    ok, bad = stats["p.sinks[0]"], stats["p.sinks[1]"]
    assert (ok["events_in"], ok["delivered"], ok["dead_lettered"]) == (3, 3, 0)
    assert ok["latency_seconds"].count == 3
    assert (bad["delivered"], bad["dead_lettered"], bad["retries"]) == (0, 3, 3)
    assert bad["failing"] is True
    assert "scripted failure" in str(bad["last_error"])
    assert [(p, e.path) for p, e in tapped] == [("p", f"/in/{i}.csv") for i in range(3)]


def test_histogram_buckets_and_quantiles() -> None:
    histogram = Histogram((0.001, 0.01, 0.1))
    for seconds in (0.0005, 0.005, 0.005, 0.05, 5.0):
        histogram.observe(seconds)
    assert histogram.cumulative() == [(0.001, 1), (0.01, 3), (0.1, 4), (float("inf"), 5)]
    assert histogram.quantile(0.5) == 0.01
    assert histogram.count == 5


def test_a_stage_that_emits_from_its_timers_counts_what_it_emits() -> None:
    config = {
        "pipelines": {
            "p": {
                "sources": [{"type": "scripted"}],
                "stages": [{"type": "debounce", "quiet": "50ms"}],
                "sinks": [{"type": "collect"}],
            }
        }
    }

    async def scenario() -> dict[str, int]:
        async with PipelineRun(config) as run:
            assert run.runner is not None
            await run.emit(*(make_event("modified", "/in/a") for _ in range(5)))
            await run.wait_for(lambda: len(run.collected.get("default", [])) == 1)
            stage = next(s for s in run.runner.stats() if s.kind == "stage")
            return {"in": stage.events_in, "out": stage.events_out}

    assert asyncio.run(scenario()) == {"in": 5, "out": 1}
