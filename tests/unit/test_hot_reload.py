"""Runner.reload: what a changed config keeps, swaps, adds and removes, with no event lost."""

from __future__ import annotations

import asyncio
import copy
from pathlib import Path
from typing import Any

from pipeline.config import load_config_data
from pipeline.engine.reload import diff
from pipeline.testing import PipelineRun, make_event


def config(
    tmp_path: Path, *sinks: dict[str, Any], stages: list[Any] | None = None
) -> dict[str, Any]:
    return {
        "state_dir": str(tmp_path / "state"),
        "pipelines": {
            "p": {
                "sources": [{"type": "scripted"}],
                "stages": stages or [],
                "sinks": list(sinks),
            },
            "other": {
                "sources": [{"type": "scripted", "channel": "o"}],
                "sinks": [{"type": "collect", "name": "o"}],
            },
        },
    }  # fmt: skip


def test_a_swap_under_load_loses_and_repeats_nothing(tmp_path: Path) -> None:
    spooled = {"type": "collect", "name": "a", "spool": True}
    before = config(tmp_path, spooled)
    after = config(tmp_path, spooled, {"type": "collect", "name": "b"}, stages=[{"type": "filter"}])

    async def scenario() -> PipelineRun:
        async with PipelineRun(before, config_dir=tmp_path) as run:
            assert run.runner is not None
            await run.runner.started.wait()
            other = run.runner.pipelines[1]

            async def produce() -> None:
                for i in range(400):
                    await run.emit(make_event("created", f"/in/{i:04d}"))
                    if i % 20 == 0:
                        await asyncio.sleep(0.001)

            producing = asyncio.create_task(produce())
            await asyncio.sleep(0.01)
            plan = load_config_data(after, run.registry, source="t", config_dir=tmp_path)
            changes = diff(run.runner.plan, plan)
            assert changes.keep == ("other",)
            assert changes.swap["p"].sources
            assert changes.swap["p"].sinks == frozenset({"p.sinks[0]"})
            await run.runner.reload(plan)
            assert run.runner.pipelines[1] is other  # untouched
            await producing
            await run.wait_for(lambda: len(run.collected.get("a", [])) == 400)
        return run

    run = asyncio.run(scenario())
    paths = [e.path for e in run.collected["a"]]
    assert paths == [f"/in/{i:04d}" for i in range(400)]  # once each, in order
    b = [e.path for e in run.collected.get("b", [])]
    assert len(b) == len(set(b)) and b == sorted(b) and b, "b starts mid-stream, then gets all"
    assert b[-1] == "/in/0399"
    assert run.clean


def test_removed_and_added_pipelines(tmp_path: Path) -> None:
    before = config(tmp_path, {"type": "collect", "name": "a"})
    after = copy.deepcopy(before)
    del after["pipelines"]["other"]
    after["pipelines"]["new"] = {
        "sources": [{"type": "scripted", "channel": "n"}],
        "sinks": [{"type": "collect", "name": "n"}],
    }

    async def scenario() -> PipelineRun:
        async with PipelineRun(before, config_dir=tmp_path) as run:
            assert run.runner is not None
            await run.runner.started.wait()
            await run.emit(make_event("created", "/o/1"), channel="o")
            await run.runner.reload(
                load_config_data(after, run.registry, source="t", config_dir=tmp_path)
            )
            assert [r.name for r in run.runner.pipelines] == ["p", "new"]
            await run.emit(make_event("created", "/n/1"), channel="n")
            await run.wait_for(lambda: "n" in run.collected)
        return run

    run = asyncio.run(scenario())
    assert [e.path for e in run.collected["o"]] == ["/o/1"]  # drained before it was removed
    assert [e.path for e in run.collected["n"]] == ["/n/1"]
