"""pytest plugin: fspipeline's testing helpers as fixtures (loaded automatically once
fspipeline is installed, through the `pytest11` entry point)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from pipeline.clock import FakeClock
from pipeline.testing.components import ComponentT, make_component
from pipeline.testing.pipelines import PipelineRun


@pytest.fixture
def fake_clock() -> FakeClock:
    """A clock that moves only on `await fake_clock.advance(seconds)`."""
    return FakeClock()


@pytest.fixture
def component_factory(tmp_path: Path) -> Callable[..., Any]:
    """`component_factory(cls, {options}, clock=..., state_dir=...)`: a component built as
    the config loader would, relative paths resolved against the test's tmp_path."""

    def build(
        cls: type[ComponentT], options: dict[str, Any] | None = None, **kw: Any
    ) -> ComponentT:
        kw.setdefault("config_dir", tmp_path)
        return make_component(cls, options, **kw)

    return build


@pytest.fixture
def pipeline_factory(tmp_path: Path) -> Callable[..., PipelineRun]:
    """`pipeline_factory(config, plugins=[...], clock=...)`: a PipelineRun whose relative
    paths (state_dir, log files) resolve against the test's tmp_path."""

    def build(config: dict[str, Any] | str, **kw: Any) -> PipelineRun:
        kw.setdefault("config_dir", tmp_path)
        return PipelineRun(config, **kw)

    return build
