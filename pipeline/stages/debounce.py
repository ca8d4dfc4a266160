"""The `debounce` stage: per-path quiet period; the last event of a burst wins."""

from __future__ import annotations

import asyncio
from collections import OrderedDict

from pipeline.components import ComponentContext, Emit, Stage
from pipeline.event import Event, EventKind
from pipeline.hookspecs import hookimpl
from pipeline.options import ComponentOptions, Duration


class DebounceOptions(ComponentOptions):
    quiet: Duration = 0.2
    """How long a path must see no new event before its last event is passed on."""


class DebounceStage(Stage[DebounceOptions]):
    """Holds each path's events until the path has been quiet for `quiet`, then emits the last.

    A burst of writes to one file (created, modified (many), closed_write) becomes one event,
    the last one, `quiet` after the burst ends. Paths are independent: a busy file never
    delays another. `overflow` events pass at once. At shutdown every held event is emitted.
    """

    type_name = "debounce"
    Options = DebounceOptions

    def __init__(self, options: DebounceOptions, context: ComponentContext) -> None:
        super().__init__(options, context)
        # Insertion order is last-seen order, so the first entry is always the next due.
        self._pending: OrderedDict[str, tuple[Event, float]] = OrderedDict()
        self._arrived = asyncio.Event()

    @property
    def pending(self) -> int:
        return len(self._pending)

    async def process(self, event: Event, emit: Emit) -> None:
        if event.kind is EventKind.OVERFLOW:
            await emit(event)
            return
        self._pending.pop(event.path, None)
        self._pending[event.path] = (event, self.context.clock.monotonic())
        self._arrived.set()

    async def run(self, emit: Emit) -> None:
        clock, quiet, pending = self.context.clock, self.options.quiet, self._pending
        while True:
            if not pending:
                self._arrived.clear()
                await self._arrived.wait()
                continue
            path, (event, seen) = next(iter(pending.items()))
            wait = seen + quiet - clock.monotonic()
            if wait > 0:
                await clock.sleep(wait)
                continue
            del pending[path]
            await emit(event)

    async def flush(self, emit: Emit) -> None:
        while self._pending:
            _, (event, _) = self._pending.popitem(last=False)
            await emit(event)


@hookimpl
def pipeline_components() -> list[type[DebounceStage]]:
    return [DebounceStage]
