"""fspipeline: route file-system events through YAML-declared pipelines of plugins.

This module is the whole public API a plugin author imports; everything else may move.
"""

import pipeline._startup  # noqa: F401  first: see its docstring
from pipeline.clock import Clock, FakeClock, SystemClock
from pipeline.cloudevents import EventDecodeError, from_json, to_cloudevent, to_json
from pipeline.components import (
    Component,
    ComponentContext,
    ComponentKind,
    Emit,
    Progress,
    Sink,
    Source,
    Stage,
)
from pipeline.delivery import Hold, delivering, hold_delivery, release
from pipeline.errors import ConfigError, DeliveryError, PipelineError, PluginError, SourceError
from pipeline.event import Event, EventKind
from pipeline.hookspecs import hookimpl, hookspec
from pipeline.options import ByteSize, ComponentOptions, ConfigPath, Duration
from pipeline.redact import redact
from pipeline.tasks import stop_tasks
from pipeline.templates import (
    Template,
    TemplateError,
    bind_constants,
    compile_template,
    process_constants,
)

__all__ = [
    "ByteSize",
    "Clock",
    "Component",
    "ComponentContext",
    "ComponentKind",
    "ComponentOptions",
    "ConfigError",
    "ConfigPath",
    "DeliveryError",
    "Duration",
    "Emit",
    "Event",
    "EventDecodeError",
    "EventKind",
    "FakeClock",
    "Hold",
    "PipelineError",
    "PluginError",
    "Progress",
    "Sink",
    "Source",
    "SourceError",
    "Stage",
    "SystemClock",
    "Template",
    "TemplateError",
    "bind_constants",
    "compile_template",
    "delivering",
    "from_json",
    "hold_delivery",
    "hookimpl",
    "hookspec",
    "process_constants",
    "redact",
    "release",
    "stop_tasks",
    "to_cloudevent",
    "to_json",
]
