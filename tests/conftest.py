"""Shared fixtures: run a component for real and collect what it emits."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import structlog

from pipeline import ComponentContext, Event, Source, stop_tasks

# tests/windows/ drives the live Win32 APIs; the GitHub Actions windows-latest job runs it
# (.github/workflows/). Everywhere else it is not collected: there is nothing to run it on.
collect_ignore = [] if sys.platform == "win32" else ["windows"]


def make_component(
    cls: type[Any], tmp_path: Path, state_dir: Path | None = None, **options: Any
) -> Any:
    """Build a component from raw options as the config loader would."""
    validated = cls.Options.model_validate(options, context={"config_dir": tmp_path})
    context = ComponentContext(
        pipeline="t",
        label="t.sources[0]",
        config_dir=tmp_path,
        state_dir=state_dir,
        log=structlog.get_logger("test"),
    )
    return cls(validated, context)


class Running:
    """A source running in the background of the current event loop."""

    def __init__(self, source: Source[Any]) -> None:
        self.source = source
        self.events: list[Event] = []
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Running:
        await self.source.open()

        async def emit(event: Event) -> None:
            self.events.append(event)

        self._task = asyncio.create_task(self.source.run(emit))
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._task is not None
        await stop_tasks(self._task)
        await self.source.close()

    async def wait_for(
        self, condition: Callable[[list[Event]], bool], timeout: float = 5.0
    ) -> None:
        """Wait until `condition(events)` holds; fail with what was seen if it never does."""
        deadline = asyncio.get_running_loop().time() + timeout
        while not condition(self.events):
            if asyncio.get_running_loop().time() > deadline:
                seen = [(e.kind.value, e.path, e.src_path) for e in self.events]
                raise AssertionError(f"condition not met within {timeout}s; events: {seen}")
            await asyncio.sleep(0.01)

    async def settle(self, quiet: float = 0.2) -> None:
        """Wait until no new event arrived for `quiet` seconds."""
        count = -1
        while count != len(self.events):
            count = len(self.events)
            await asyncio.sleep(quiet)

    def kinds(self, path: Path | str) -> list[str]:
        return [e.kind.value for e in self.events if e.path == str(path)]
