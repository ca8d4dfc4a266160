"""Helpers for testing components and whole pipelines: scripted events on a fake clock.

For plugin authors (and fspipeline's own tests). Everything here runs in-process on the
current event loop; with a `FakeClock`, debounce windows and retry back-offs take no real
time. The pytest plugin `pipeline.testing.fixtures` exposes them as fixtures.
"""

from pipeline.testing.components import (
    SinkRun,
    SourceRun,
    StageRun,
    make_component,
    make_event,
)
from pipeline.testing.pipelines import PipelineRun

__all__ = [
    "PipelineRun",
    "SinkRun",
    "SourceRun",
    "StageRun",
    "make_component",
    "make_event",
]
