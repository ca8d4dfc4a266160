"""Live mode of the `usn` source: tails a volume's change journal and resumes where it stopped.

Each poll reads what the journal gained since the last one (FSCTL_READ_USN_JOURNAL
never waits here; an empty read sleeps `poll_interval`). With a state_dir, the journal
id and the next USN are saved after events were handed on (at most every
`checkpoint_interval`, and at shutdown), so a restart resumes exactly there: records
already read before a crash may be reported again, none is skipped. A gap (another
journal, a wrapped one, error 1181) is a warning, an `overflow` event per watched
path, and a rescan of those paths for files changed since the last record reported.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import ntpath
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from pipeline.components import Emit
from pipeline.errors import SourceError
from pipeline.event import Event, EventKind
from pipeline.sources.report import change_events
from pipeline.windows.usn_events import JournalInterpreter
from pipeline.windows.usn_live import (
    ERROR_ACCESS_DENIED,
    ERROR_JOURNAL_DELETE_IN_PROGRESS,
    ERROR_JOURNAL_ENTRY_DELETED,
    ERROR_JOURNAL_NOT_ACTIVE,
    VolumeJournal,
    WindowsApiError,
    volume_of,
)
from pipeline.windows.usn_paths import PathResolver, PathScope
from pipeline.windows.usn_records import UsnDecodeError
from pipeline.windows.usn_rescan import changed_since
from pipeline.windows.usn_scan import scan_buffer
from pipeline.windows.usn_state import JournalInfo, Position, PositionFile, plan_resume

if TYPE_CHECKING:
    from structlog.typing import FilteringBoundLogger

    from pipeline.clock import Clock

T = TypeVar("T")


class JournalDevice(Protocol):
    """What the tail needs of a volume's journal (`usn_live.VolumeJournal` on Windows)."""

    def open(self) -> None: ...
    def close(self) -> None: ...
    def query(self) -> JournalInfo: ...
    def read(
        self, start_usn: int, journal_id: int, *, only_on_close: bool, buffer_size: int
    ) -> tuple[int, bytes]: ...
    def path_of(self, ref: int) -> str | None: ...


GAP_ERRORS = frozenset({ERROR_JOURNAL_ENTRY_DELETED, ERROR_JOURNAL_DELETE_IN_PROGRESS})


def explain(exc: WindowsApiError, volume: str) -> str:
    """What to do about a failure to open or query the journal, in one line."""
    if exc.code == ERROR_ACCESS_DENIED:
        return (
            f"reading the change journal of {volume} needs administrator rights: {exc}; "
            "run elevated (or as a service account in the Administrators group)"
        )
    if exc.code == ERROR_JOURNAL_NOT_ACTIVE:
        return (
            f"the change journal of {volume} is not active; enable it with "
            f"`fsutil usn createjournal m=33554432 a=8388608 {volume}` (as administrator)"
        )
    return f"cannot use the change journal of {volume}: {exc}"


def _retrieve(future: asyncio.Future[None]) -> None:
    if not future.cancelled():
        future.exception()  # logged by whoever awaited it; never "never retrieved"


class JournalTail:
    """Follows the change journal of the volume that holds `paths`."""

    def __init__(
        self,
        paths: Sequence[str],
        *,
        only_on_close: bool,
        poll_interval: float,
        buffer_size: int,
        checkpoint_interval: float,
        state_dir: Path | None,
        source: str,
        wanted: frozenset[EventKind],
        log: FilteringBoundLogger,
        clock: Clock,
        journal: JournalDevice | None = None,
    ) -> None:
        self.paths = list(paths)
        self.volume = volume_of(self.paths[0])
        self.only_on_close = only_on_close
        self.poll_interval = poll_interval
        self.buffer_size = buffer_size
        self.checkpoint_interval = checkpoint_interval
        self.positions = PositionFile(state_dir) if state_dir is not None else None
        self.source = source
        self.wanted = wanted
        self.log = log
        self.clock = clock
        self.journal: JournalDevice = journal or VolumeJournal(self.volume)
        self.resolver = PathResolver(self.volume, lookup=self.journal.path_of)
        self.scope = PathScope(self.paths, "\\", self.resolver.root)
        self.interpreter = JournalInterpreter(
            self.resolver, self.scope, source=source, wanted=wanted
        )
        self.journal_id = 0
        self.position = 0
        self.since = time.time()
        self._gap: tuple[str, float] | None = None
        self._saved_at = -float("inf")
        self._opened = False
        self._inflight: asyncio.Future[Any] | None = None
        self._saving: asyncio.Future[None] | None = None

    async def _in_thread(self, call: Callable[[], T]) -> T:
        """Run a blocking call in a thread; a cancelled caller leaves it to finish, and
        `close` waits for it before the handle it uses is closed."""
        future = asyncio.ensure_future(asyncio.to_thread(call))
        self._inflight = future
        return await asyncio.shield(future)

    async def open(self) -> None:
        # The journal names files by their long names; a configured 8.3 short name
        # (C:\Users\RUNNER~1) or a symlinked folder must be compared in that form.
        self.paths = [ntpath.realpath(path) for path in self.paths]
        self.scope = PathScope(self.paths, "\\", self.resolver.root)
        self.interpreter.scope = self.scope
        try:
            await self._in_thread(self.journal.open)
            info = await self._in_thread(self.journal.query)
        except WindowsApiError as exc:
            self.journal.close()
            raise SourceError(explain(exc, self.volume)) from exc
        saved = None
        if self._opened:  # restarted in place by the engine: carry on where it was
            saved = Position(self.volume, self.journal_id, self.position, self.since)
        elif self.positions is not None:
            saved, problem = self.positions.load()
            if problem is not None:
                self.log.warning("saved journal position unusable", problem=problem)
        plan = plan_resume(saved, info, self.volume)
        self.journal_id, self.position = info.journal_id, plan.start_usn
        if saved is not None and plan.gap is None:
            self.since = saved.since
        if plan.gap is not None:
            self._gap = (plan.gap, plan.since if plan.since is not None else self.since)
        self._opened = True
        self.log.info(
            "reading the change journal",
            volume=self.volume,
            journal_id=f"{info.journal_id:#x}",
            start_usn=self.position,
            resumed=saved is not None and plan.gap is None,
            paths=self.paths,
        )

    async def run(self, emit: Emit) -> None:
        if self._gap is not None:
            reason, since = self._gap
            self._gap = None
            await self._recover(emit, reason, since)
        while True:
            try:
                next_usn, data = await self._in_thread(self._read)
            except WindowsApiError as exc:
                await self._recover(emit, await self._lost(exc), self.since)
                continue
            events, latest = await self._in_thread(functools.partial(self._interpret, data))
            for event in events:
                await emit(event)
            self.position = next_usn
            if latest is not None:
                self.since = max(self.since, latest)
            await self._checkpoint(force=False)
            if not data:
                await self.clock.sleep(self.poll_interval)

    async def _lost(self, exc: WindowsApiError) -> str:
        """Why a read failed, when it was a gap in the journal; else raise SourceError."""
        try:
            info = await self._in_thread(self.journal.query)
        except WindowsApiError as failed:
            raise SourceError(explain(failed, self.volume)) from exc
        if info.journal_id != self.journal_id:
            plan = plan_resume(
                Position(self.volume, self.journal_id, self.position, self.since),
                info,
                self.volume,
            )
            return plan.gap or f"the change journal of {self.volume} was recreated"
        if exc.code in GAP_ERRORS or self.position < info.oldest_usn:
            return (
                f"the change journal of {self.volume} lost the records from USN "
                f"{self.position} on ({exc})"
            )
        raise SourceError(explain(exc, self.volume)) from exc

    def _read(self) -> tuple[int, bytes]:
        return self.journal.read(
            self.position,
            self.journal_id,
            only_on_close=self.only_on_close,
            buffer_size=self.buffer_size,
        )

    def _interpret(self, data: bytes) -> tuple[list[Event], float | None]:
        """Runs in a thread: path lookups may ask the OS."""
        events: list[Event] = []
        latest = None
        for item in scan_buffer(data):
            if isinstance(item, UsnDecodeError):
                self.log.warning(
                    "damaged journal record skipped", volume=self.volume, error=str(item)
                )
                continue
            events.extend(self.interpreter.feed(item))
            moment = item.time
            if moment is not None:
                latest = moment.timestamp()
        return events, latest

    async def _recover(self, emit: Emit, reason: str, since: float) -> None:
        """A gap in the journal: warn, `overflow`, restart at its end, rescan the paths."""
        self.log.warning(
            "change journal gap; rescanning the watched folders", reason=reason, paths=self.paths
        )
        now = datetime.now(UTC)
        if EventKind.OVERFLOW in self.wanted:
            for path in self.paths:
                meta = {"root": path, "reason": reason}
                await emit(Event(EventKind.OVERFLOW, path, self.source, True, None, now, meta))
        restart = time.time()  # what changes from here on, the journal has from next_usn
        try:
            info: JournalInfo = await self._in_thread(self.journal.query)
        except WindowsApiError as exc:
            raise SourceError(explain(exc, self.volume)) from exc
        self.journal_id, self.position = info.journal_id, info.next_usn
        self.interpreter.forget_opens()
        changes = await self._in_thread(lambda: list(changed_since(self.paths, since)))
        root_meta = {path: {"root": path} for path in self.paths}
        for event in change_events(
            changes,
            wanted=self.wanted,
            source=self.source,
            meta_for=lambda p: root_meta.get(self.scope.root_of(p) or "", {}),
            seen=now,
        ):
            await emit(event)
        self.since = restart
        await self._checkpoint(force=True)

    def _resume_usn(self) -> int:
        """Where reading must start again: a rename half still waiting is read again."""
        pending = self.interpreter.pending_usn()
        return self.position if pending is None else min(self.position, pending)

    async def _checkpoint(self, *, force: bool) -> None:
        if self.positions is None:
            return
        now = self.clock.monotonic()
        if not force and now - self._saved_at < self.checkpoint_interval:
            return
        self._saved_at = now
        position = Position(self.volume, self.journal_id, self._resume_usn(), self.since)
        if self._saving is not None and not self._saving.done():
            # One write at a time, in order: one a cancelled run left going finishes first.
            await asyncio.wait({self._saving})
        saving = asyncio.ensure_future(asyncio.to_thread(self.positions.save, position))
        self._saving = saving
        saving.add_done_callback(_retrieve)
        try:
            await asyncio.shield(saving)
        except OSError as exc:
            self.log.error("cannot save the journal position", error=str(exc))

    async def close(self) -> None:
        if self._inflight is not None:
            with contextlib.suppress(Exception, asyncio.CancelledError):
                await self._inflight
        if self._opened:
            await self._checkpoint(force=True)
        self.journal.close()
