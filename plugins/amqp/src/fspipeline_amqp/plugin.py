"""The module the `fspipeline` entry point names: it registers the amqp sink and source."""

from __future__ import annotations

from typing import Any

from pipeline import Component, hookimpl

from fspipeline_amqp.sink import AmqpSink
from fspipeline_amqp.source import AmqpSource


@hookimpl
def pipeline_components() -> list[type[Component[Any]]]:
    return [AmqpSink, AmqpSource]
