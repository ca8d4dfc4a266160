"""The plugin module the `fspipeline` entry point names: it registers the components."""

from __future__ import annotations

from typing import Any

from pipeline import hookimpl

from fspipeline_nats.sink import NatsSink
from fspipeline_nats.source import NatsSource


@hookimpl
def pipeline_components() -> list[type[Any]]:
    return [NatsSink, NatsSource]
