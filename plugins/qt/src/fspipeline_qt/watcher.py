"""One QFileSystemWatcher in the Qt thread, driven from asyncio, its signals handed back.

QFileSystemWatcher says only *which* path changed: `directoryChanged(path)` for a
watched folder (an entry added, removed, renamed, or its attributes changed) and
`fileChanged(path)` for a watched file (written, attributes changed, renamed or
deleted). On Linux it uses inotify, without reporting a file's content change to its
folder's watch, and it drops a watch by itself when its path is deleted or renamed.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
from collections.abc import Callable, Sequence
from typing import TypeVar

import shiboken6
from PySide6 import QtCore

from fspipeline_qt.runtime import QtRuntime

T = TypeVar("T")

CHUNK = 512
"""Paths added per job: Qt's thread reads the kernel's events between two jobs. (Qt
keeps its watched paths in a list it searches on each add, so adding N paths costs
time in N squared: 10,000 take about 0.7 s, 40,000 about 7 s.)"""

OnChange = Callable[[str, bool], None]
"""Called on the event loop with a path Qt named, and whether it is a watched folder."""


def nameable(path: str) -> bool:
    """Whether Qt can name `path`: it holds text only (Qt names files in UTF-8; a name
    with other bytes, kept in a str as surrogate escapes, has no QString form)."""
    try:
        path.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


class QtWatcher:
    """A QFileSystemWatcher living in the Qt thread; every method is awaited on the loop."""

    def __init__(self, runtime: QtRuntime, watcher: QtCore.QFileSystemWatcher) -> None:
        self._runtime = runtime
        self._watcher: QtCore.QFileSystemWatcher | None = watcher

    @classmethod
    async def create(cls, runtime: QtRuntime, on_change: OnChange) -> QtWatcher:
        """A new watcher whose signals call `on_change` on the running loop."""
        loop = asyncio.get_running_loop()

        def forward(path: str, folder: bool) -> None:  # in the Qt thread
            with contextlib.suppress(RuntimeError):  # the loop is closed: nobody listens
                loop.call_soon_threadsafe(on_change, path, folder)

        def make() -> QtCore.QFileSystemWatcher:
            watcher = QtCore.QFileSystemWatcher()
            watcher.directoryChanged.connect(lambda path: forward(path, True))
            watcher.fileChanged.connect(lambda path: forward(path, False))
            return watcher

        return cls(runtime, await asyncio.wrap_future(runtime.submit(make)))

    async def _in_qt(self, work: Callable[[QtCore.QFileSystemWatcher], T]) -> T:
        watcher = self._watcher
        assert watcher is not None, "the watcher is closed"
        return await asyncio.wrap_future(self._runtime.submit(lambda: work(watcher)))

    async def watch(self, paths: Sequence[str], *, again: bool = False) -> list[str]:
        """Watch `paths` (after dropping their watches first, with `again`: Qt may have
        dropped one already, or hold it on a file that has since been replaced); return
        those Qt refused. A path that no longer exists is not refused: it is just gone."""
        refused: list[str] = []
        for start in range(0, len(paths), CHUNK):
            chunk = list(paths[start : start + CHUNK])
            refused += await self._in_qt(functools.partial(_add, paths=chunk, again=again))
        return refused

    async def unwatch(self, paths: Sequence[str]) -> None:
        """Stop watching `paths` (those Qt does not watch are ignored)."""
        for start in range(0, len(paths), CHUNK):
            chunk = list(paths[start : start + CHUNK])
            await self._in_qt(functools.partial(_remove, paths=chunk))

    async def count(self) -> int:
        """How many paths Qt watches (for tests and diagnostics)."""
        return await self._in_qt(lambda watcher: len(watcher.files()) + len(watcher.directories()))

    async def close(self) -> None:
        """Delete the watcher in the Qt thread: its signals stop, its inotify fd closes."""
        watcher, self._watcher = self._watcher, None
        if watcher is not None:
            await asyncio.wrap_future(self._runtime.submit(lambda: _dispose(watcher)))


def _add(watcher: QtCore.QFileSystemWatcher, paths: list[str], again: bool) -> list[str]:
    """In the Qt thread: the paths of `paths` Qt could not watch, and that still exist."""
    if again:
        watcher.removePaths(paths)
    unhandled = watcher.addPaths(paths)
    if not unhandled:
        return []
    # Qt also returns the paths it already watched.
    watched = set(watcher.files()) | set(watcher.directories())
    return [path for path in unhandled if path not in watched and os.path.lexists(path)]


def _remove(watcher: QtCore.QFileSystemWatcher, paths: list[str]) -> None:
    watcher.removePaths(paths)


def _dispose(watcher: QtCore.QFileSystemWatcher) -> None:
    shiboken6.delete(watcher)  # disconnects it too (no .disconnect(): see runtime.submit)
