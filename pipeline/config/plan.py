"""The validated, runnable form of a configuration."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import Field

from pipeline.components import ComponentKind
from pipeline.options import ComponentOptions, Duration
from pipeline.registry import ComponentSpec

if TYPE_CHECKING:
    from pipeline.expr import Expression


class DeliveryPolicy(ComponentOptions):
    """Engine-owned keys a sink may carry beside its own options."""

    queue_size: int = Field(default=1024, ge=1, le=1_000_000)
    """Events that may wait in memory for this sink; when full, sources are slowed, never
    dropped."""
    concurrency: int = Field(default=1, ge=1, le=256)
    """Deliveries in flight at once. Events about one path keep their order whatever this is."""
    max_attempts: int = Field(default=3, ge=0)
    """Deliveries tried before the event is dead-lettered; 0: retry until delivered (with
    `spool: true`, an outage of any length then fills the disk, not the dead letters)."""
    send_timeout: Duration | None = None
    """Longest time one delivery (a `send` or `send_batch` call) may take; then it is
    cancelled and counts as failed (retried, then dead-lettered), so a target that hangs
    cannot stall the sink. null (the default): as long as the sink takes; set it for
    targets that may hang, not for commands that legitimately run long."""
    retry_backoff: Duration = 0.5
    """Wait before the first retry; doubled each time, with jitter."""
    retry_max_backoff: Duration = 30.0
    """The longest wait between two retries."""
    batch_size: int = Field(default=1, ge=1, le=100_000)
    """Hand the sink up to this many events in one call (for sinks that take batches)."""
    batch_wait: Duration = 0.0
    """How long a batch may wait to fill up before it is sent anyway."""
    spool: bool = False
    """Keep the queue on disk under `state_dir` instead of in memory: events accepted for
    this sink survive a crash or kill -9 and are delivered after the restart, and an outage
    of the target fills the disk, not the memory."""
    spool_max: int = Field(default=1_000_000, ge=1)
    """Events the spool may hold before sources are slowed down."""


DELIVERY_KEYS = frozenset(DeliveryPolicy.model_fields)


@dataclasses.dataclass(frozen=True)
class ComponentPlan:
    """One component to build: its spec, validated options and config location."""

    spec: ComponentSpec
    options: ComponentOptions
    label: str
    delivery: DeliveryPolicy | None = None
    when: Expression | None = None
    """A routing condition: only matching events enter this stage or sink."""

    @property
    def kind(self) -> ComponentKind:
        return self.spec.kind


@dataclasses.dataclass(frozen=True)
class PipelinePlan:
    name: str
    sources: tuple[ComponentPlan, ...]
    stages: tuple[ComponentPlan, ...]
    sinks: tuple[ComponentPlan, ...]
    dead_letter: ComponentPlan | None = None


@dataclasses.dataclass(frozen=True)
class Plan:
    """Everything `pipeline run` needs; built only from a config without problems."""

    source: str
    config_dir: Path
    state_dir: Path | None
    shutdown_timeout: float
    pipelines: tuple[PipelinePlan, ...]
    data: dict[str, Any]
    run_as: str | None = None
    """The user to become once every pipeline is open (after the privileged set-up)."""
