"""pipeline.testing: what a plugin author gets to test components and pipelines quickly."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from pipeline import FakeClock
from pipeline.sources.poll import PollSource
from pipeline.stages.debounce import DebounceStage
from pipeline.testing import PipelineRun, SourceRun, StageRun, make_component, make_event


def test_a_debounce_window_of_an_hour_takes_no_real_time() -> None:
    stage = make_component(DebounceStage, {"quiet": "1h"}, clock=FakeClock())

    async def scenario() -> list[str]:
        async with StageRun(stage) as run:
            await run.send(make_event("modified", "/in/a"), make_event("modified", "/in/a"))
            await run.clock.advance(3599)
            assert run.events == []
            await run.clock.advance(1)
            return [e.path for e in run.events]

    started = time.monotonic()
    assert asyncio.run(scenario()) == ["/in/a"]
    assert time.monotonic() - started < 2


def test_bad_options_fail_as_pipeline_check_would() -> None:
    with pytest.raises(ValidationError, match="quiet"):
        make_component(DebounceStage, {"quiet": "soon"})


def test_a_whole_pipeline_with_retries_on_a_fake_clock(fake_clock: FakeClock) -> None:
    config = {
        "pipelines": {
            "p": {
                "sources": [{"type": "scripted"}],
                "stages": [{"type": "filter", "include": ["**/*.csv"]}],
                "sinks": [{"type": "collect", "fail": 2, "retry_backoff": "30s"}],
            }
        }
    }

    async def scenario() -> PipelineRun:
        async with PipelineRun(config, clock=fake_clock) as run:
            await run.emit(
                make_event("closed_write", "/in/a.csv"), make_event("created", "/in/b.txt")
            )
            await fake_clock.advance(60)  # two back-offs of at most 30 s and 60 s
            await fake_clock.advance(60)
            await run.wait_for(lambda: "default" in run.collected)
        return run

    run = asyncio.run(scenario())
    assert [e.path for e in run.collected["default"]] == ["/in/a.csv"]
    assert run.attempts["default"] == 3
    assert run.clean is True
    assert run.dead_letters == []


def test_dead_letters_are_reported_to_the_test(tmp_path: Path) -> None:
    yaml_text = """
pipelines:
  p:
    sources: [{type: scripted}]
    sinks: [{type: collect, fail: 5, max_attempts: 2, retry_backoff: 1ms}]
"""

    async def scenario() -> PipelineRun:
        async with PipelineRun(yaml_text, config_dir=tmp_path) as run:
            await run.emit(make_event("created", "/in/x"))
            await run.wait_for(lambda: bool(run.dead_letters))
        return run

    run = asyncio.run(scenario())
    [(event, component, reason)] = run.dead_letters
    assert (event.path, component) == ("/in/x", "p.sinks[0]")
    assert "scripted failure" in reason


def test_a_source_runs_for_real(tmp_path: Path, component_factory: Any) -> None:
    source = component_factory(PollSource, {"paths": ["."], "interval": "50ms"})

    async def scenario() -> list[str]:
        async with SourceRun(source) as run:
            await asyncio.sleep(0.2)
            (tmp_path / "new.txt").write_text("x")
            await run.wait_for(lambda evs: any(e.path.endswith("new.txt") for e in evs), 5)
            return [e.kind.value for e in run.events if e.path.endswith("new.txt")]

    assert asyncio.run(scenario())[0] == "created"


def test_the_temporary_config_dir_of_make_component_is_gone_after_the_process() -> None:
    script = (
        "from pipeline.sinks.logfile import LogfileSink\n"
        "from pipeline.testing import make_component\n"
        "sink = make_component(LogfileSink, {'path': 'out.jsonl'})\n"
        "print(sink.context.config_dir)\n"
    )
    made = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=60
    )
    folder = Path(made.stdout.strip())
    assert folder.name.startswith("fspipeline-test-")
    assert not folder.exists()
