"""The `logfile` sink: one line per event appended to a file, with rotation and fsync policy."""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections.abc import Callable
from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, Field

from pipeline.cloudevents import to_json
from pipeline.components import ComponentContext, Sink
from pipeline.display import printable
from pipeline.event import Event
from pipeline.hookspecs import hookimpl
from pipeline.options import ByteSize, ComponentOptions, ConfigPath, Duration
from pipeline.sinks.rotation import Period, Rotator
from pipeline.tasks import stop_tasks
from pipeline.templates import TemplateText, compile_template

CHECK_INTERVAL = 1.0
"""Seconds between two checks that the path still names the file being written."""
CHECK_EVENTS = 1000
"""Lines between two such checks, whatever the time."""


def _fsync_policy(value: Any) -> Any:
    # `fsync: true/false` (the first form of this option) still means always/never.
    if isinstance(value, bool):
        return "always" if value else "never"
    return value


FsyncPolicy = Annotated[Literal["never", "always", "interval"], BeforeValidator(_fsync_policy)]

_CLOEXEC = getattr(os, "O_CLOEXEC", 0)  # not on Windows, where handles are not inherited


class LogfileOptions(ComponentOptions):
    path: ConfigPath
    """File to append to; created (with its folder) if missing. Relative to the config file."""
    format: Literal["json", "text"] = "json"
    """`json`: one CloudEvents JSON object a line, lossless. `text`: `template` for people,
    with control characters and bytes that are not UTF-8 escaped (`\\n`, `\\xff`)."""
    template: TemplateText = "{time} {kind} {path}"
    """The line written with `format: text`. Placeholders: {path} {kind} {src_path} {name}
    {stem} {ext} {dir} {relpath} {id} {time} {source} {is_dir} {paths} {meta.KEY}
    (`-` when the event lacks it, or `{meta.KEY:-default}`)."""
    rotate_size: ByteSize | None = None
    """Rotate once the file reaches this size, e.g. `100MB`; null: never by size."""
    rotate_every: Period | None = None
    """Rotate when a period starts (`1h`, `1d`: at 00:00 UTC); null: never by time."""
    keep: int = Field(default=7, ge=0, le=100_000)
    """Rotated files to keep (named `<stem>.<UTC time><suffix>`); older ones are deleted."""
    compress: bool = False
    """Gzip rotated files (`.gz`), in a background thread."""
    fsync: FsyncPolicy = "never"
    """`never`: leave it to the OS (survives a crash of the process, not of the machine).
    `always`: each line is on disk before its event counts as delivered (slow).
    `interval`: sync every `fsync_interval` (and every `fsync_events` lines)."""
    fsync_interval: Duration = 1.0
    """With `fsync: interval`: the longest time a written line waits to be synced."""
    fsync_events: int = Field(default=0, ge=0)
    """With `fsync: interval`: also sync after this many lines (0: by time only)."""


class LogfileSink(Sink[LogfileOptions]):
    """Appends one line per event to a file (CloudEvents JSON or text), with rotation.

    Each line is written with a single `write` on a file opened with `O_APPEND`, so
    several pipelines or processes can append to the same file without interleaving or
    losing lines (on a local file system; not on NFS). Nothing is buffered in the process:
    a line is in the file when the event counts as delivered; `fsync` says when it is on disk.

    Rotation (`rotate_size`, `rotate_every`) is safe with several writers: the one that
    finds the file due renames it while holding an flock on `<path>.lock`, and the others
    notice within a second and reopen the path. A file renamed or removed by logrotate is
    followed the same way. `keep` and `compress` apply to the rotated files.
    """

    type_name = "logfile"
    Options = LogfileOptions

    def __init__(self, options: LogfileOptions, context: ComponentContext) -> None:
        super().__init__(options, context)
        self.template = compile_template(options.template)
        self.rotator = Rotator(
            options.path, keep=options.keep, compress=options.compress, log=self.log
        )
        self.check_interval = CHECK_INTERVAL
        self.check_events = CHECK_EVENTS
        self.wall: Callable[[], float] = time.time
        """Wall-clock time for `rotate_every` (tests replace it)."""
        self._fd = -1
        self._identity = (0, 0)
        self._size = 0  # of the file at the last check, plus what this sink wrote since
        self._period = 0  # rotate_every period the open file started in
        self._checked_at = 0.0
        self._since_check = 0
        self._unsynced = 0
        self._io = asyncio.Lock()  # reopening, rotating and syncing
        self._sync_timer: asyncio.Task[None] | None = None
        self._tidying: set[asyncio.Task[None]] = set()
        self._waiting: set[asyncio.Task[None]] = set()  # tidies still in their delay

    # -- the file ----------------------------------------------------------------

    async def open(self) -> None:
        self._reopen()
        if self.options.rotate_size or self.options.rotate_every:
            self._tidy_later(0.0)  # leftovers of an earlier run

    def _reopen(self) -> None:
        self._close_fd()
        path = self.options.path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | _CLOEXEC, 0o644)
        stat = os.fstat(self._fd)
        self._identity = (stat.st_dev, stat.st_ino)
        self._size = stat.st_size
        # A non-empty file is as old as its last write: rotate a stale one at once.
        self._period = self._period_of(stat.st_mtime if stat.st_size else self.wall())
        self._checked_at = self.context.clock.monotonic()
        self._since_check = 0

    def _period_of(self, moment: float) -> int:
        every = self.options.rotate_every
        return int(moment // every) if every else 0

    def _close_fd(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    # -- delivery ----------------------------------------------------------------

    async def send(self, event: Event) -> None:
        if self.options.format == "json":
            line = to_json(event)
        else:
            line = self.template.render(event, escape=printable, missing="-")
        data = (line + "\n").encode("utf-8")
        if self._fd < 0 or self._check_due():
            await self._check()
        written = os.write(self._fd, data)
        if written != len(data):
            raise OSError(f"short write to {self.options.path}: {written} of {len(data)} bytes")
        self._size += written
        self._since_check += 1
        await self._after_write()

    def _check_due(self) -> bool:
        return (
            self._since_check >= self.check_events
            or self.context.clock.monotonic() - self._checked_at >= self.check_interval
            or self._due_by_size(self._size)
            or self._due_by_time()
        )

    def _due_by_size(self, size: int) -> bool:
        limit = self.options.rotate_size
        return limit is not None and limit > 0 and size >= limit

    def _due_by_time(self) -> bool:
        return bool(self.options.rotate_every) and self._period_of(self.wall()) > self._period

    async def _check(self) -> None:
        """Follow a rename (logrotate, another writer's rotation); rotate if it is due."""
        async with self._io:
            try:
                stat = os.stat(self.options.path)
            except FileNotFoundError:
                stat = None
            if self._fd < 0 or stat is None or (stat.st_dev, stat.st_ino) != self._identity:
                await self._sync_before_close()
                self._reopen()  # rotated by another writer or by logrotate: follow the path
            else:
                self._size = stat.st_size
                self._checked_at = self.context.clock.monotonic()
                self._since_check = 0
            if self._due_by_time() and not self._size:
                self._period = self._period_of(self.wall())  # nothing to rotate yet
            if not (self._due_by_size(self._size) or self._due_by_time()):
                return

            def due(current: os.stat_result) -> bool:
                return self._due_by_size(current.st_size) or (
                    self._due_by_time() and current.st_size > 0
                )

            outcome = await asyncio.to_thread(self.rotator.rotate, self._identity, due)
            if outcome != "kept":
                await self._sync_before_close()
                self._reopen()
            if outcome == "rotated":
                self._tidy_later(2 * self.check_interval)

    def _tidy_later(self, delay: float) -> None:
        """Compress and prune rotated files in a thread once they have settled."""

        async def tidy() -> None:
            await self.context.clock.sleep(delay)
            self._waiting.discard(task)  # from here on, close() waits for it
            await asyncio.to_thread(self.rotator.tidy, 2 * self.check_interval)

        task = asyncio.create_task(tidy(), name=f"{self.context.label} tidy")
        self._tidying.add(task)
        self._waiting.add(task)
        task.add_done_callback(self._tidied)

    def _tidied(self, task: asyncio.Task[None]) -> None:
        self._tidying.discard(task)
        self._waiting.discard(task)
        if not task.cancelled() and task.exception() is not None:
            self.log.error("could not tidy rotated log files", error=str(task.exception()))

    # -- fsync -------------------------------------------------------------------

    async def _after_write(self) -> None:
        policy = self.options.fsync
        if policy == "always":
            await self._sync()
        elif policy == "interval":
            self._unsynced += 1
            if self.options.fsync_events and self._unsynced >= self.options.fsync_events:
                await self._sync()
            elif self._sync_timer is None:
                self._sync_timer = asyncio.create_task(self._sync_later())

    async def _sync_later(self) -> None:
        try:
            await self.context.clock.sleep(self.options.fsync_interval)
            await self._sync()
        finally:
            self._sync_timer = None

    async def _sync(self) -> None:
        async with self._io:
            await self._sync_fd()

    async def _sync_fd(self) -> None:
        if self._fd >= 0:
            self._unsynced = 0
            await asyncio.to_thread(os.fsync, self._fd)

    async def _sync_before_close(self) -> None:
        if self.options.fsync != "never" and self._fd >= 0:
            with contextlib.suppress(OSError):
                await self._sync_fd()

    async def close(self) -> None:
        await stop_tasks(self._sync_timer)
        async with self._io:
            await self._sync_before_close()
            self._close_fd()
        for task in list(self._waiting):
            task.cancel()  # not settled yet: the next start (or rotation) tidies them
        await asyncio.gather(*self._tidying, return_exceptions=True)


@hookimpl
def pipeline_components() -> list[type[LogfileSink]]:
    return [LogfileSink]
