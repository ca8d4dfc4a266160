"""Run a whole pipeline in-process: scripted events in, collected events out, fake time."""

from __future__ import annotations

import asyncio
import contextlib
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path
from types import TracebackType
from typing import Any

import yaml

from pipeline.clock import Clock, FakeClock
from pipeline.components import Emit, Sink, Source
from pipeline.config import load_config_data
from pipeline.engine import Runner
from pipeline.event import Event
from pipeline.hookspecs import hookimpl
from pipeline.options import ComponentOptions
from pipeline.registry import Registry, build_registry


class ScriptedOptions(ComponentOptions):
    channel: str = "default"
    """Name tests use with `PipelineRun.emit(..., channel=)` when there are several."""


class CollectOptions(ComponentOptions):
    name: str = "default"
    """Key under which `PipelineRun.collected` keeps what this sink received."""
    fail: int = 0
    """Fail this many deliveries before succeeding (to exercise retries)."""


class PipelineRun:
    """A config run by the real engine, with two test-only components available to it.

    - source `scripted`: emits whatever the test passes to `run.emit(event)`;
    - sink `collect`: records each delivered event in `run.collected[name]`, optionally
      failing its first `fail` attempts.

        config = {"pipelines": {"p": {
            "sources": [{"type": "scripted"}],
            "stages": [{"type": "debounce", "quiet": "1s"}],
            "sinks": [{"type": "collect"}],
        }}}
        async with PipelineRun(config, clock=FakeClock()) as run:
            await run.emit(make_event("modified", "/in/a"))
            await run.clock.advance(1.0)
            await run.wait_for(lambda: len(run.collected["default"]) == 1)

    `config` is a mapping or YAML text; `plugins` are extra plugin objects or modules
    (the ones under test) registered beside the built-ins. Installed plugins are not
    loaded unless `autoload=True`. Leaving the block shuts down like Ctrl-C and sets
    `clean` (True when every queue drained in time) and `dead_letters`.
    """

    def __init__(
        self,
        config: dict[str, Any] | str,
        *,
        plugins: Iterable[object] = (),
        clock: Clock | None = None,
        config_dir: Path | None = None,
        autoload: bool = False,
    ) -> None:
        self.config = yaml.safe_load(config) if isinstance(config, str) else dict(config)
        self._scratch = None if config_dir else tempfile.TemporaryDirectory(prefix="fspipeline-")
        """A folder made for this run when none was given; removed when the run ends."""
        self.config_dir = config_dir or Path(self._scratch.name)  # type: ignore[union-attr]
        self._clock = clock
        self.collected: dict[str, list[Event]] = {}
        self.attempts: dict[str, int] = {}
        self.dead_letters: list[tuple[Event, str, str]] = []
        self.clean: bool | None = None
        self._channels: dict[str, asyncio.Queue[Event]] = {}
        extra = [(f"test-plugin-{i}", p) for i, p in enumerate(plugins)]
        self.registry: Registry = build_registry(
            extra_plugins=[("pipeline.testing", self._test_plugin()), *extra], autoload=autoload
        )
        self._task: asyncio.Task[bool] | None = None
        self.runner: Runner | None = None

    @property
    def clock(self) -> FakeClock:
        if not isinstance(self._clock, FakeClock):
            raise TypeError("pass clock=FakeClock() to PipelineRun to move time by hand")
        return self._clock

    def _channel(self, name: str) -> asyncio.Queue[Event]:
        return self._channels.setdefault(name, asyncio.Queue())

    def _test_plugin(self) -> object:
        run = self

        class ScriptedSource(Source[ScriptedOptions]):
            """Emits the events a test hands to `PipelineRun.emit`."""

            type_name = "scripted"
            Options = ScriptedOptions

            async def run(self, emit: Emit) -> None:
                channel = run._channel(self.options.channel)
                while True:
                    event = await channel.get()
                    await emit(event)
                    channel.task_done()

        class CollectSink(Sink[CollectOptions]):
            """Keeps every delivered event for the test to inspect."""

            type_name = "collect"
            Options = CollectOptions

            async def send(self, event: Event) -> None:
                name = self.options.name
                run.attempts[name] = run.attempts.get(name, 0) + 1
                if run.attempts[name] <= self.options.fail:
                    raise ConnectionError(f"collect sink {name!r}: scripted failure")
                run.collected.setdefault(name, []).append(event)

        class TestPlugin:
            @hookimpl
            def pipeline_components(self) -> list[type[Any]]:
                return [ScriptedSource, CollectSink]

            @hookimpl
            def pipeline_event_dead_lettered(
                self, event: Event, component: str, reason: str
            ) -> None:
                run.dead_letters.append((event, component, reason))

        return TestPlugin()

    async def __aenter__(self) -> PipelineRun:
        plan = load_config_data(
            self.config, self.registry, source="<test config>", config_dir=self.config_dir
        )
        self.runner = Runner(plan, self.registry, clock=self._clock)
        self._task = asyncio.create_task(self.runner.run())
        await asyncio.sleep(0)  # let the pipelines open before the first emit
        return self

    async def emit(self, *events: Event, channel: str = "default") -> None:
        """Hand events to the `scripted` source(s) of `channel`; returns once they entered
        the first stage (so the fake clock can be advanced right after)."""
        queue = self._channel(channel)
        for event in events:
            queue.put_nowait(event)
        await queue.join()

    async def wait_for(self, condition: Callable[[], bool], timeout: float = 5.0) -> None:
        """Wait in real time until `condition()` holds; fail showing what was collected."""
        deadline = asyncio.get_running_loop().time() + timeout
        while not condition():
            if self._task is not None and self._task.done():
                self._task.result()  # the pipeline failed: raise its error
            if asyncio.get_running_loop().time() > deadline:
                seen = {k: [e.path for e in v] for k, v in self.collected.items()}
                raise AssertionError(f"condition not met within {timeout} s; collected: {seen}")
            await asyncio.sleep(0.005)

    async def stop(self) -> bool:
        """Shut down as on Ctrl-C (flush, drain within the deadline); True if clean."""
        if self.runner is not None and self._task is not None:
            self.runner.request_stop()
            self.clean = await self._task
            self._task = None
        return bool(self.clean)

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        try:
            if kind is None:
                await self.stop()
            elif self.runner is not None and self._task is not None:
                self.runner.request_stop()
                self.runner.request_stop()  # a failing test does not wait for the drain
                with contextlib.suppress(Exception):
                    await self._task
        finally:
            if self._scratch is not None:
                self._scratch.cleanup()
