"""The `debounce` stage: per-path quiet period with a cap, coalescing, and optional batches."""

from __future__ import annotations

import asyncio
import math
import os.path
from collections import OrderedDict, deque
from typing import Any

from pydantic import Field, ValidationInfo, field_validator

from pipeline.components import ComponentContext, Emit, Stage
from pipeline.delivery import Hold, delivering, hold_delivery, release
from pipeline.event import Event, EventKind
from pipeline.hookspecs import hookimpl
from pipeline.options import ComponentOptions, Duration

_LEVEL = {
    EventKind.OPENED: 1,
    EventKind.CLOSED_NOWRITE: 2,
    EventKind.ATTRIB: 3,
    EventKind.MODIFIED: 4,
    EventKind.CLOSED_WRITE: 5,
}
_KIND_OF_LEVEL = {level: kind for kind, level in _LEVEL.items()}


class DebounceOptions(ComponentOptions):
    quiet: Duration = 0.2
    """How long a path must see no new event before its (coalesced) event is passed on."""
    max_wait: Duration | None = None
    """Longest a path's events are held even if it never goes quiet (a file written to
    without pause still fires this often). Unset: 10 times `quiet`."""
    batch: bool = False
    """Instead of one event per path, pass on one `batch` event listing every path that
    settled within `batch_window` (`meta.paths`, `meta.kinds`, `meta.count`)."""
    batch_window: Duration = 1.0
    """With `batch`: how long after the first path settles the batch is passed on."""
    batch_max: int = Field(default=10_000, ge=1)
    """With `batch`: a batch holding this many paths is passed on at once."""

    @field_validator("max_wait")
    @classmethod
    def _wait_covers_quiet(cls, value: float | None, info: ValidationInfo) -> float | None:
        quiet = info.data.get("quiet")
        if value is not None and isinstance(quiet, float) and value < quiet:
            raise ValueError(f"max_wait must be at least quiet ({quiet:g}s): it caps the wait")
        return value


class _Pending:
    """What one path has seen since its window opened (its first held event)."""

    __slots__ = ("born", "deleted", "event", "first", "holds", "last", "level", "moved", "src")

    def __init__(self, event: Event, now: float) -> None:
        self.event = event
        self.first = now
        self.last = now
        self.born = False  # did not exist before the window: created, or moved in from outside
        self.deleted = False
        self.moved = False
        self.src: str | None = None
        self.level = 0  # strongest of opened < closed_nowrite < attrib < modified < closed_write
        self.holds: list[Hold] | None = None  # upstream deliveries, when a source tracks them

    def add(self, event: Event, now: float) -> None:
        self.event, self.last, kind = event, now, event.kind
        if kind is EventKind.CREATED:
            if self.deleted:  # replaced within the window: new content under the same name
                self.deleted = False
                self.level = 4 if not self.born else self.level
            else:
                self.born = self.born or self.level == 0
        elif kind is EventKind.DELETED:
            self.deleted, self.level = True, 0
        elif kind is EventKind.MOVED:
            self.moved, self.src = True, event.src_path
            self.born, self.deleted, self.level = event.src_path is None, False, 0
        else:
            self.deleted = False
            level = _LEVEL.get(kind, 0)
            if level in (4, 5):
                self.level = level  # a write after a close reopens the file
            elif self.level != 5:
                self.level = max(self.level, level)

    def keep(self, hold: Hold | None) -> None:
        if hold is not None:
            if self.holds is None:
                self.holds = []
            self.holds.append(hold)

    def absorb(self, origin: _Pending) -> None:
        """A move from `origin`'s path to this one: what it held travels with it."""
        self.born = origin.born
        for hold in origin.holds or ():
            self.keep(hold)
        if origin.moved:
            self.src = origin.src

    def result(self) -> Event | None:
        """The one event this window comes to, or None when it comes to nothing."""
        event = self.event
        if self.deleted:
            if self.born:
                return None
            if self.moved and self.src is not None:
                return event.evolve(kind=EventKind.DELETED, path=self.src, src_path=None)
            kind = EventKind.DELETED
        elif self.moved:
            kind = EventKind.MOVED
        elif self.level == 5:
            kind = EventKind.CLOSED_WRITE
        elif self.born:
            kind = EventKind.CREATED
        else:
            kind = _KIND_OF_LEVEL.get(self.level, event.kind)
        src = self.src if kind is EventKind.MOVED else None
        if kind is event.kind and src == event.src_path:
            return event
        return event.evolve(kind=kind, src_path=src)


class DebounceStage(Stage[DebounceOptions]):
    """Holds each path's events until it has been quiet for `quiet`, then emits one event.

    A burst of events on one path becomes one event, `quiet` after the burst ends (trailing
    edge), or `max_wait` after it began if it never ends. Paths are independent: a busy
    file never delays another. The emitted event is the path's last one, with the kind
    the whole window comes to:

    | the window saw (in order)                       | emitted                          |
    | ---------------------------------------------- | -------------------------------- |
    | created, then modified / attrib / opened       | created                          |
    | ... with closed_write as the last write        | closed_write (wins over created) |
    | closed_write, then modified again              | modified (created if new)        |
    | modified, attrib, closed_nowrite, opened only  | the one first in this list       |
    | created (or moved in from outside) ... deleted | nothing at all                   |
    | anything else, then deleted                    | deleted                          |
    | deleted, then created                          | modified (the file was replaced) |
    | moved a→b, then anything but deleted on b      | moved, src_path a                |
    | moved a→b, then deleted b                      | deleted a                        |
    | events on a, then moved a→b                    | moved a→b (a's events travel)    |
    | moved a→b, then moved b→c                      | moved a→c                        |

    `overflow` events pass at once. With `batch: true`, settled paths are collected for
    `batch_window` (or until `batch_max`) into one `batch` event: `path` is their common
    folder, `meta.paths`, `meta.kinds` and `meta.count` list them (and `meta.root` is kept
    when they share one). At shutdown every held event (and batch) is emitted.

    Memory: about 0.6 KB per pending path, events included (a million pending paths stay
    well under 1 GB; `bench/chain.py` measures it).
    """

    type_name = "debounce"
    Options = DebounceOptions

    def __init__(self, options: DebounceOptions, context: ComponentContext) -> None:
        super().__init__(options, context)
        # Last-seen order: the first entry has the earliest quiet deadline.
        self._pending: OrderedDict[str, _Pending] = OrderedDict()
        # First-seen order, for max_wait; entries no longer pending are skipped lazily.
        self._firsts: deque[_Pending] = deque()
        self._arrived = asyncio.Event()
        self._max_wait = options.max_wait if options.max_wait is not None else options.quiet * 10
        self._batch: list[Event] = []
        self._batch_holds: list[Hold] = []
        self._batch_due = math.inf

    @property
    def pending(self) -> int:
        return len(self._pending)

    async def process(self, event: Event, emit: Emit) -> None:
        if event.kind is EventKind.OVERFLOW:
            await emit(event)
            return
        now = self.context.clock.monotonic()
        pending, path = self._pending, event.path
        record = pending.get(path)
        if event.kind is EventKind.MOVED and event.src_path is not None:
            origin = pending.pop(event.src_path, None)
        else:
            origin = None
        if record is None:
            record = _Pending(event, now)
            pending[path] = record
            self._firsts.append(record)
        else:
            pending.move_to_end(path)
        record.add(event, now)
        record.keep(hold_delivery())
        if origin is not None:
            record.absorb(origin)
        if not self._arrived.is_set():
            self._arrived.set()

    def _next_due(self) -> tuple[float, _Pending | None]:
        firsts, pending = self._firsts, self._pending
        while firsts and pending.get(firsts[0].event.path) is not firsts[0]:
            firsts.popleft()
        due, record = self._batch_due, None
        if pending:
            head = next(iter(pending.values()))
            if head.last + self.options.quiet < due:
                due, record = head.last + self.options.quiet, head
        if firsts and firsts[0].first + self._max_wait < due:
            due, record = firsts[0].first + self._max_wait, firsts[0]
        return due, record

    async def run(self, emit: Emit) -> None:
        clock = self.context.clock
        while True:
            due, record = self._next_due()
            if due == math.inf:
                self._arrived.clear()
                await self._arrived.wait()
                continue
            wait = due - clock.monotonic()
            if wait > 0:
                await clock.sleep(wait)
                continue
            if record is None:
                await self._emit_batch(emit)
                continue
            del self._pending[record.event.path]
            await self._settled(record, emit)

    async def _settled(self, record: _Pending, emit: Emit) -> None:
        event, holds = record.result(), record.holds or []
        if event is None:
            release(holds)  # came to nothing: settled as handled
            return
        if not self.options.batch:
            with delivering(holds):
                await emit(event)
            return
        if not self._batch:
            self._batch_due = self.context.clock.monotonic() + self.options.batch_window
        self._batch.append(event)
        self._batch_holds.extend(holds)
        if len(self._batch) >= self.options.batch_max:
            await self._emit_batch(emit)

    async def _emit_batch(self, emit: Emit) -> None:
        events, self._batch, self._batch_due = self._batch, [], math.inf
        holds, self._batch_holds = self._batch_holds, []
        if events:
            with delivering(holds):
                await emit(batch_of(events))

    async def flush(self, emit: Emit) -> None:
        while self._pending:
            _, record = self._pending.popitem(last=False)
            await self._settled(record, emit)
        self._firsts.clear()
        await self._emit_batch(emit)


def batch_of(events: list[Event]) -> Event:
    """One `batch` event for settled events: their common folder, paths, kinds and count."""
    paths = [e.path for e in events]
    try:
        folder = os.path.commonpath([os.path.dirname(p) for p in paths])
    except ValueError:  # relative and absolute paths mixed: no common folder
        folder = ""
    roots = {e.meta.get("root") for e in events}
    meta: dict[str, Any] = {
        "paths": paths,
        "kinds": [e.kind.value for e in events],
        "count": len(events),
    }
    root = roots.pop() if len(roots) == 1 else None
    if isinstance(root, str):
        meta["root"] = root
    return Event(EventKind.BATCH, folder, events[0].source, True, meta=meta)


@hookimpl
def pipeline_components() -> list[type[DebounceStage]]:
    return [DebounceStage]
