"""The `watchdog` source: any of watchdog's observers (native, polling, kqueue, FSEvents, …)."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Mapping
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Any, Literal

from watchdog.events import FileSystemEvent, FileSystemEventHandler
from watchdog.observers.api import BaseObserver

from pipeline.components import ComponentContext, Emit, Source
from pipeline.errors import SourceError
from pipeline.event import ALL_KINDS, Event, EventKind
from pipeline.hookspecs import hookimpl
from pipeline.options import Duration
from pipeline.sources.common import WatchOptions, prepare_roots

ObserverName = Literal["auto", "inotify", "polling", "kqueue", "fsevents", "read_directory_changes"]

KINDS: dict[str, EventKind] = {
    "created": EventKind.CREATED,
    "modified": EventKind.MODIFIED,
    "attrib": EventKind.ATTRIB,
    "opened": EventKind.OPENED,
    "closed": EventKind.CLOSED_WRITE,
    "closed_no_write": EventKind.CLOSED_NOWRITE,
    "deleted": EventKind.DELETED,
    "moved": EventKind.MOVED,
}
QUEUE_SIZE = 4096


class WatchdogOptions(WatchOptions):
    observer: ObserverName = "auto"
    """Which watchdog observer: `auto` picks the platform's native one (inotify, FSEvents,
    kqueue, ReadDirectoryChangesW); `polling` works on any file system."""
    polling_interval: Duration = 1.0
    """Seconds between scans for the `polling` observer."""


def _observer(name: ObserverName, interval: float) -> BaseObserver:
    if name == "polling":
        from watchdog.observers.polling import PollingObserver

        return PollingObserver(timeout=interval)
    try:
        if name == "auto":
            from watchdog.observers import Observer

            return Observer()
        if name == "inotify":
            from watchdog.observers.inotify import InotifyObserver

            return InotifyObserver()
        if name == "kqueue":
            from watchdog.observers.kqueue import KqueueObserver

            return KqueueObserver()
        if name == "fsevents":
            from watchdog.observers.fsevents import FSEventsObserver

            return FSEventsObserver()
        from watchdog.observers.read_directory_changes import WindowsApiObserver

        return WindowsApiObserver()
    except (ImportError, AttributeError, OSError) as exc:
        raise SourceError(
            f"watchdog's {name} observer is not available on this system ({exc}); "
            "use `observer: auto` or `observer: polling`"
        ) from exc


def _text(path: bytes | str) -> str:
    return os.fsdecode(path)


class _Forward(FileSystemEventHandler):
    """Runs on watchdog's thread; hands each event to the loop, waiting when the queue is full."""

    def __init__(
        self, loop: asyncio.AbstractEventLoop, queue: asyncio.Queue[FileSystemEvent]
    ) -> None:
        self.loop = loop
        self.queue = queue
        self.closed = False

    def on_any_event(self, event: FileSystemEvent) -> None:
        if self.closed:
            return
        future = asyncio.run_coroutine_threadsafe(self.queue.put(event), self.loop)
        try:
            future.result()
        except Exception:  # the loop is shutting down: nothing left to deliver to
            future.cancel()


class WatchdogSource(Source[WatchdogOptions]):
    """Watches folders through a watchdog observer, for macOS, BSD, Windows and network drives.

    Use it where the `inotify` source is not available: `observer: auto` uses the
    platform's native API (FSEvents on macOS, kqueue on BSD, ReadDirectoryChangesW on
    Windows, inotify on Linux), `observer: polling` scans with stat and works on any file
    system. What a platform cannot see (close events outside Linux, for one) is not
    reported. Modifications of a folder itself (its list of entries changed) are not
    reported; the entries' own events are.
    """

    type_name = "watchdog"
    Options = WatchdogOptions

    def __init__(self, options: WatchdogOptions, context: ComponentContext) -> None:
        super().__init__(options, context)
        self.wanted = frozenset(options.events) if options.events is not None else ALL_KINDS
        self.source = f"{context.pipeline}/{self.type_name}"
        self._observer: BaseObserver | None = None
        self._handler: _Forward | None = None
        self._queue: asyncio.Queue[FileSystemEvent] = asyncio.Queue(QUEUE_SIZE)
        self._metas: list[tuple[str, Mapping[str, Any]]] = []

    async def open(self) -> None:
        roots = prepare_roots(self.options)
        observer = _observer(self.options.observer, self.options.polling_interval)
        handler = self._handler = _Forward(asyncio.get_running_loop(), self._queue)
        for root in roots:
            observer.schedule(handler, root, recursive=self.options.recursive)
            self._metas.append((root, MappingProxyType({"root": root})))
        self._metas.sort(key=lambda item: len(item[0]), reverse=True)  # innermost root first
        try:
            await asyncio.to_thread(observer.start)
        except OSError as exc:
            raise SourceError(f"watchdog observer failed to start: {exc}") from exc
        self._observer = observer
        self.log.info("watching", paths=roots, observer=type(observer).__name__)

    def _meta(self, path: str) -> Mapping[str, Any]:
        for root, meta in self._metas:
            if path == root or path.startswith(root + "/") or path.startswith(root + os.sep):
                return meta
        return MappingProxyType({})

    def convert(self, raw: FileSystemEvent) -> Event | None:
        """The fspipeline event for a watchdog event, or None when it is not reported."""
        kind = KINDS.get(raw.event_type)
        if kind is None or (raw.is_directory and kind is EventKind.MODIFIED):
            return None
        src = _text(raw.src_path)
        if kind is EventKind.MOVED:
            if not raw.dest_path:  # moved out of every watched folder
                kind, path, origin = EventKind.DELETED, src, None
            else:
                path, origin = _text(raw.dest_path), src
        else:
            path, origin = src, None
        if kind not in self.wanted:
            return None
        return Event(
            kind, path, self.source, raw.is_directory, origin, datetime.now(UTC), self._meta(path)
        )

    async def run(self, emit: Emit) -> None:
        while True:
            event = self.convert(await self._queue.get())
            if event is not None:
                await emit(event)

    async def close(self) -> None:
        observer, self._observer = self._observer, None
        if self._handler is not None:
            self._handler.closed = True
        while not self._queue.empty():  # unblock a watchdog thread waiting for room
            self._queue.get_nowait()
        if observer is not None:
            observer.stop()
            await asyncio.to_thread(observer.join, 5.0)


@hookimpl
def pipeline_components() -> list[type[WatchdogSource]]:
    return [WatchdogSource]
