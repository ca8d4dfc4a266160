"""The component base classes a plugin subclasses: Source, Stage and Sink."""

from __future__ import annotations

import abc
import dataclasses
import inspect
from collections.abc import Awaitable, Callable, Sequence
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Generic, TypeVar

from pipeline.clock import Clock, SystemClock
from pipeline.options import ComponentOptions

if TYPE_CHECKING:
    from structlog.typing import FilteringBoundLogger

    from pipeline.event import Event

OptionsT = TypeVar("OptionsT", bound=ComponentOptions)

Emit = Callable[["Event"], Awaitable[None]]
"""Hands an event to the next step; awaiting it is how back-pressure reaches the caller."""

Progress = Callable[[str, int, "int | None"], None]
"""`progress(task, done, total)` reports a long job (a tree walk, a rescan, a catch-up):
`total` is None while unknown; `done == total` ends it. The live status shows rate and ETA."""


def _no_progress(task: str, done: int, total: int | None) -> None:
    """Where progress goes when nothing shows it."""


class ComponentKind(StrEnum):
    SOURCE = "source"
    STAGE = "stage"
    SINK = "sink"


@dataclasses.dataclass(frozen=True)
class ComponentContext:
    """What the engine tells a component about where it runs."""

    pipeline: str
    """Name of the pipeline the component belongs to."""
    label: str
    """Where it is declared, as a dotted config path: `landing.sinks[1]`."""
    config_dir: Path
    """Folder of the config file; relative paths in options are already resolved against it."""
    state_dir: Path | None
    """Folder for this component's durable state (created on demand), or None if unset."""
    log: FilteringBoundLogger
    """A structlog logger bound to pipeline and component."""
    clock: Clock = dataclasses.field(default_factory=SystemClock)
    """Time for timers; tests inject a FakeClock."""
    progress: Progress = _no_progress
    """Report a long job: `progress("initial walk", folders_done, None)`, then
    `progress("initial walk", n, n)` when it is over. Cheap enough to call per folder."""


class Component(abc.ABC, Generic[OptionsT]):
    """Common base: a type name, a typed options schema and a docstring.

    Subclasses set `type_name` and `Options`; the first line of the class docstring is the
    one-line summary `pipeline plugins` shows, the rest is its long description.
    """

    kind: ClassVar[ComponentKind]
    type_name: ClassVar[str]
    Options: ClassVar[type[ComponentOptions]]

    def __init__(self, options: OptionsT, context: ComponentContext) -> None:
        self.options = options
        self.context = context
        self.log = context.log

    @classmethod
    def summary(cls) -> str:
        doc = inspect.getdoc(cls) or ""
        return doc.strip().splitlines()[0] if doc.strip() else ""

    @classmethod
    def description(cls) -> str:
        doc = inspect.getdoc(cls) or ""
        return "\n".join(doc.strip().splitlines()[1:]).strip()

    async def open(self) -> None:
        """Acquire resources. For a source, return once it is watching."""

    async def close(self) -> None:
        """Release resources; called once, also after a failed `open`."""

    capabilities_after_start: ClassVar[tuple[str, ...]] = ()
    """Linux capabilities the component still needs once open, kept when `run_as` drops
    root (the fanotify source: CAP_DAC_READ_SEARCH, to open the files its events name)."""

    async def probe(self) -> None:
        """Check that what this component talks to is reachable and usable; do not keep it.

        `pipeline check --connect` calls it on a component that was built but not opened,
        under a timeout. Raise with a message that says what is wrong and what to do (wrong
        credentials, unreachable host, a missing queue). The default checks nothing.
        """


class Source(Component[OptionsT]):
    """Watches something and emits events until cancelled."""

    kind: ClassVar[ComponentKind] = ComponentKind.SOURCE

    tracks_delivery: ClassVar[bool] = False
    """True for a source that must learn when each of its events is settled (a broker
    consumer acknowledging upstream only after the pipeline delivered): the engine then
    calls `settled` once per emitted event."""

    @abc.abstractmethod
    async def run(self, emit: Emit) -> None:
        """Emit events until the task is cancelled. `open` has already returned."""

    def settled(self, event: Event, delivered: bool) -> None:
        """With `tracks_delivery`: `event`, emitted by this source, is settled.

        Called once per emitted event, on the event loop, so it must not block (hand the
        acknowledgement to a task). `delivered` is True once every sink that took the
        event delivered it (also when no sink wanted it, a stage dropped it, or a stage
        that holds events, such as debounce, took it), and False when a stage failed on it
        or a sink gave up and dead-lettered it. A sink with `spool: true` counts as soon as
        its spool has the event on disk; events still in a memory queue when the process
        stops are never settled (the broker redelivers them).
        """


class Stage(Component[OptionsT]):
    """Turns each event into zero or more events, possibly later (timers)."""

    kind: ClassVar[ComponentKind] = ComponentKind.STAGE

    @abc.abstractmethod
    async def process(self, event: Event, emit: Emit) -> None:
        """Handle one event: emit it, others, or nothing; or keep it to emit later."""

    async def run(self, emit: Emit) -> None:
        """Background work (timers) for stages that hold events; runs until cancelled."""

    async def flush(self, emit: Emit) -> None:
        """At shutdown: emit every event still held. `run` has been cancelled."""


class Sink(Component[OptionsT]):
    """Delivers events somewhere. Raising from `send` is a failed delivery."""

    kind: ClassVar[ComponentKind] = ComponentKind.SINK

    @abc.abstractmethod
    async def send(self, event: Event) -> None:
        """Deliver one event; return only once it is delivered."""

    def concurrent_sends(self) -> int:
        """How many `send` calls this sink wants in flight at once, whatever their paths.

        0 (the default): the engine runs the sink's `concurrency` lanes, each path's events
        in order. N > 0: up to N deliveries at once in arrival order, one path's events
        included, for a sink that handles overlap itself (the command sink's `on_busy`).
        """
        return 0

    async def send_batch(self, events: Sequence[Event]) -> None:
        """Deliver several events at once (when the sink is configured with `batch_size`).

        Override it where the target takes batches (one request, one transaction). The
        default sends them one by one. Raising fails the whole batch: it is retried, then
        each of its events is dead-lettered, so only raise once nothing more can succeed.
        """
        for event in events:
            await self.send(event)


AnyComponent = Component[Any]
