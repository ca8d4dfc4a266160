"""The validated, runnable form of a configuration."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from pydantic import Field

from pipeline.components import ComponentKind
from pipeline.options import ComponentOptions, Duration
from pipeline.registry import ComponentSpec


class DeliveryPolicy(ComponentOptions):
    """Engine-owned keys a sink may carry beside its own options."""

    queue_size: int = Field(default=1024, ge=1, le=1_000_000)
    """Events that may wait for this sink; when full, sources are slowed, never dropped."""
    max_attempts: int = Field(default=3, ge=1, le=1000)
    """Deliveries tried before the event is dead-lettered."""
    retry_backoff: Duration = 0.5
    """Wait before the first retry; doubled each time, with jitter, capped at 30s."""


DELIVERY_KEYS = frozenset(DeliveryPolicy.model_fields)


@dataclasses.dataclass(frozen=True)
class ComponentPlan:
    """One component to build: its spec, validated options and config location."""

    spec: ComponentSpec
    options: ComponentOptions
    label: str
    delivery: DeliveryPolicy | None = None

    @property
    def kind(self) -> ComponentKind:
        return self.spec.kind


@dataclasses.dataclass(frozen=True)
class PipelinePlan:
    name: str
    sources: tuple[ComponentPlan, ...]
    stages: tuple[ComponentPlan, ...]
    sinks: tuple[ComponentPlan, ...]


@dataclasses.dataclass(frozen=True)
class Plan:
    """Everything `pipeline run` needs; built only from a config without problems."""

    source: str
    config_dir: Path
    state_dir: Path | None
    shutdown_timeout: float
    pipelines: tuple[PipelinePlan, ...]
    data: dict[str, Any]
