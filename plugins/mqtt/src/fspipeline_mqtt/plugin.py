"""The plugin module the `fspipeline` entry point names: it registers the components."""

from __future__ import annotations

from typing import Any

from pipeline import Component, hookimpl

from fspipeline_mqtt.sink import MqttSink
from fspipeline_mqtt.source import MqttSource


@hookimpl
def pipeline_components() -> list[type[Component[Any]]]:
    return [MqttSink, MqttSource]
