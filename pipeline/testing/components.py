"""Build one component from raw options and drive it: feed a stage, run a source, send to a sink."""

from __future__ import annotations

import asyncio
import atexit
import shutil
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, Generic, TypeVar

import structlog

from pipeline.clock import Clock, FakeClock, SystemClock
from pipeline.components import Component, ComponentContext, Sink, Source, Stage
from pipeline.event import Event, EventKind
from pipeline.tasks import stop_tasks

ComponentT = TypeVar("ComponentT", bound=Component[Any])


def make_component(
    cls: type[ComponentT],
    options: dict[str, Any] | None = None,
    *,
    config_dir: Path | None = None,
    state_dir: Path | None = None,
    clock: Clock | None = None,
    pipeline: str = "test",
) -> ComponentT:
    """`cls` built from raw options exactly as the config loader would validate them.

    Relative paths in options resolve against `config_dir` (default: a new temporary folder,
    removed when the process exits; pass pytest's `tmp_path` to look at files afterwards).
    A pydantic ValidationError means the options are wrong, as `pipeline check` would say.
    """
    if config_dir is None:
        config_dir = Path(tempfile.mkdtemp(prefix="fspipeline-test-"))
        atexit.register(shutil.rmtree, config_dir, ignore_errors=True)
    validated = cls.Options.model_validate(options or {}, context={"config_dir": config_dir})
    label = f"{pipeline}.{cls.kind.value}s[0]"
    context = ComponentContext(
        pipeline=pipeline,
        label=label,
        config_dir=config_dir,
        state_dir=state_dir,
        log=structlog.get_logger("pipeline").bind(pipeline=pipeline, component=label),
        clock=clock or SystemClock(),
    )
    return cls(validated, context)


def make_event(
    kind: EventKind | str = EventKind.CREATED,
    path: str = "/data/file.txt",
    *,
    src_path: str | None = None,
    is_dir: bool = False,
    source: str = "test/scripted",
    **meta: Any,
) -> Event:
    """An event as a source would emit it; `meta` keys become `event.meta`."""
    return Event(EventKind(kind), path, source, src_path=src_path, is_dir=is_dir, meta=meta)


class _Collector:
    def __init__(self) -> None:
        self.events: list[Event] = []

    async def emit(self, event: Event) -> None:
        self.events.append(event)

    async def wait_for(self, condition: Callable[[list[Event]], bool], timeout: float) -> None:
        """Wait (in real time) until `condition(events)` holds, else fail showing the events."""
        deadline = asyncio.get_running_loop().time() + timeout
        while not condition(self.events):
            if asyncio.get_running_loop().time() > deadline:
                seen = [(e.kind.value, e.path) for e in self.events]
                raise AssertionError(f"condition not met within {timeout} s; events: {seen}")
            await asyncio.sleep(0.005)


StageT = TypeVar("StageT", bound=Stage[Any])


class StageRun(_Collector, Generic[StageT]):
    """A stage with its background task running; `send` events in, read `events` out.

        async with StageRun(stage) as run:
            await run.send(make_event("modified", "/in/a"))
            await run.clock.advance(1.0)    # the stage's timers fire, no real wait
            assert [e.path for e in run.events] == ["/in/a"]

    `clock` is the stage's clock: build the stage with `clock=FakeClock()` to control time.
    Leaving the block cancels the background task and calls `flush`, as shutdown does.
    """

    def __init__(self, stage: StageT) -> None:
        super().__init__()
        self.stage = stage
        self._task: asyncio.Task[None] | None = None

    @property
    def clock(self) -> FakeClock:
        clock = self.stage.context.clock
        if not isinstance(clock, FakeClock):
            raise TypeError("build the stage with clock=FakeClock() to move time by hand")
        return clock

    async def __aenter__(self) -> StageRun[StageT]:
        await self.stage.open()
        self._task = asyncio.create_task(self.stage.run(self.emit))
        return self

    async def send(self, *events: Event) -> None:
        for event in events:
            await self.stage.process(event, self.emit)

    async def flush(self) -> None:
        """Cancel the background task and flush what the stage holds, as at shutdown."""
        if self._task is not None:
            await stop_tasks(self._task)
            self._task = None
            await self.stage.flush(self.emit)

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.flush()
        await self.stage.close()


SourceT = TypeVar("SourceT", bound=Source[Any])


class SourceRun(_Collector, Generic[SourceT]):
    """A source opened and running in the background; what it emits lands in `events`.

    async with SourceRun(source) as run:
        (folder / "a.csv").write_text("x")
        await run.wait_for(lambda events: any(e.path.endswith("a.csv") for e in events))
    """

    def __init__(self, source: SourceT) -> None:
        super().__init__()
        self.source = source
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> SourceRun[SourceT]:
        await self.source.open()
        self._task = asyncio.create_task(self.source.run(self.emit))
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._task is not None:
            await stop_tasks(self._task)
            if not self._task.cancelled() and self._task.exception() is not None and kind is None:
                raise self._task.exception()  # type: ignore[misc]
        await self.source.close()


SinkT = TypeVar("SinkT", bound=Sink[Any])


class SinkRun(Generic[SinkT]):
    """A sink opened for the block and closed after it; `send` delivers like the engine."""

    def __init__(self, sink: SinkT) -> None:
        self.sink = sink

    async def __aenter__(self) -> SinkRun[SinkT]:
        await self.sink.open()
        return self

    async def send(self, *events: Event) -> None:
        """Deliver each event in order with `send` (as with the default batch_size 1)."""
        for event in events:
            await self.sink.send(event)

    async def send_batch(self, events: Sequence[Event]) -> None:
        await self.sink.send_batch(events)

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.sink.close()
