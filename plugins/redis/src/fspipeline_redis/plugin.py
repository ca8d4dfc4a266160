"""The plugin module the `fspipeline` entry point names: it registers the components."""

from __future__ import annotations

from typing import Any

from pipeline import Component, hookimpl

from fspipeline_redis.sink import RedisSink
from fspipeline_redis.source import RedisSource


@hookimpl
def pipeline_components() -> list[type[Component[Any]]]:
    return [RedisSink, RedisSource]
