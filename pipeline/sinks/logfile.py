"""The `logfile` sink: CloudEvents JSON lines appended to a file."""

from __future__ import annotations

import asyncio
import os

from pipeline.cloudevents import to_json
from pipeline.components import Sink
from pipeline.event import Event
from pipeline.hookspecs import hookimpl
from pipeline.options import ComponentOptions, ConfigPath


class LogfileOptions(ComponentOptions):
    path: ConfigPath
    """File to append to; created (with its folder) if missing. Relative to the config file."""
    fsync: bool = False
    """Force each line to disk before the event counts as delivered (slower; survives a crash
    of the machine)."""


class LogfileSink(Sink[LogfileOptions]):
    """Appends one CloudEvents JSON line per event to a file, safe to `tail -f`.

    Each line is written with a single `write` on a file opened with `O_APPEND`, so
    several pipelines or processes can append to the same file without interleaving
    their lines. Nothing is buffered in the process: a line is in the file when the
    event counts as delivered.
    """

    type_name = "logfile"
    Options = LogfileOptions

    async def open(self) -> None:
        self._fd = -1
        self._reopen()

    def _reopen(self) -> None:
        path = self.options.path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o644)
        self._inode = os.fstat(self._fd).st_ino

    def _rotated(self) -> bool:
        try:
            return os.stat(self.options.path).st_ino != self._inode
        except FileNotFoundError:
            return True

    async def send(self, event: Event) -> None:
        data = (to_json(event) + "\n").encode("utf-8")
        if self._fd < 0 or self._rotated():  # logrotate moved or removed it: follow the name
            self._close()
            self._reopen()
        written = os.write(self._fd, data)
        if written != len(data):
            raise OSError(f"short write to {self.options.path}: {written} of {len(data)} bytes")
        if self.options.fsync:
            await asyncio.to_thread(os.fsync, self._fd)

    def _close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    async def close(self) -> None:
        self._close()


@hookimpl
def pipeline_components() -> list[type[LogfileSink]]:
    return [LogfileSink]
