"""Log file rotation shared by every writer: locked check-and-rename, retention and gzip.

Several sinks, in one process or in several, may append to the same file. Each decides
on its own that the file is due (size or period), then takes an exclusive `flock` on
`<file>.lock` and checks again under it: if the file it writes to is no longer the one
at the path, another writer (or logrotate) already rotated it, and it only reopens the
path. Otherwise it renames the file to `<stem>.<UTC time>Z<suffix>`
(`events.20261124T061649.123Z.jsonl`): a name that does not exist yet, so no rotated
file is ever overwritten, and names sort in time order. The lock file is kept (removing
it would let two writers lock different files).

A writer that has not noticed a rotation yet still appends to the renamed file for up to
one check interval; so a rotated file is compressed or deleted only once it has not been
written to for `settle` seconds. Both run in a worker thread, never on the event loop.
"""

from __future__ import annotations

import contextlib
import gzip
import os
import re
import shutil
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Literal

from pydantic import AfterValidator

from pipeline.options import Duration

if TYPE_CHECKING:
    from structlog.typing import FilteringBoundLogger


def _positive(seconds: float) -> float:
    if seconds <= 0:
        raise ValueError("a rotation period must be longer than 0")
    return seconds


Period = Annotated[Duration, AfterValidator(_positive)]
"""A rotation period, written `30m`, `1h`, `1d` or `7d`, held as float seconds."""

Outcome = Literal["rotated", "moved", "kept"]
"""`rotated`: this writer renamed the file; `moved`: another one had; `kept`: not due."""


class Rotator:
    """Rotates one log file path under a lock shared by every process writing it."""

    def __init__(self, path: Path, *, keep: int, compress: bool, log: FilteringBoundLogger) -> None:
        self.path = path
        self.keep = keep
        self.compress = compress
        self.log = log
        self.lock_path = path.with_name(path.name + ".lock")
        stem, suffix = os.path.splitext(path.name)
        if not stem:  # a dot-file such as `.events`
            stem, suffix = path.name, ""
        self._stem, self._suffix = stem, suffix
        self._rotated = re.compile(
            rf"^{re.escape(stem)}\.\d{{8}}T\d{{6}}\.\d{{3}}Z{re.escape(suffix)}(\.gz)?$"
        )

    def rotate(self, identity: tuple[int, int], due: Callable[[os.stat_result], bool]) -> Outcome:
        """Under the lock: rename the file if it is still `identity` (dev, inode) and `due`.

        Blocks while another writer holds the lock; run it in a thread.
        """
        fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), 0o644)
        try:
            if sys.platform != "win32":  # Windows: no flock; one writer per file there
                import fcntl

                fcntl.flock(fd, fcntl.LOCK_EX)
            try:
                current = os.stat(self.path)
            except FileNotFoundError:
                return "moved"
            if (current.st_dev, current.st_ino) != identity:
                return "moved"
            if not due(current):
                return "kept"
            target = self._free_name(time.time())
            os.rename(self.path, target)
            self.log.info("log file rotated", rotated_to=target.name, size=current.st_size)
            return "rotated"
        finally:
            os.close(fd)  # closing the descriptor releases the lock

    def _free_name(self, moment: float) -> Path:
        # Fixed-width UTC stamps sort by name in time order; on a clash, the next millisecond.
        millis = int(moment * 1000)
        for bump in range(100_000):
            seconds, ms = divmod(millis + bump, 1000)
            stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime(seconds)) + f".{ms:03d}Z"
            name = f"{self._stem}.{stamp}{self._suffix}"
            candidate = self.path.with_name(name)
            if not candidate.exists() and not candidate.with_name(name + ".gz").exists():
                return candidate
        raise OSError(f"no free name to rotate {self.path} to")

    def rotated_files(self) -> list[Path]:
        """The rotated files of this path, oldest first."""
        try:
            names = os.listdir(self.path.parent)
        except FileNotFoundError:
            return []
        return [self.path.with_name(n) for n in sorted(names) if self._rotated.match(n)]

    def tidy(self, settle: float) -> None:
        """Compress rotated files (if asked) and delete all but the newest `keep`.

        Only files not written to for `settle` seconds are touched. Blocks; run it in a
        thread. Several writers may tidy at once: every step tolerates the others.
        """
        quiet_since = time.time() - settle
        rotated = self.rotated_files()
        groups: dict[str, list[Path]] = {}
        for path in rotated:
            groups.setdefault(path.name.removesuffix(".gz"), []).append(path)
        ordered = list(groups.values())
        surplus = ordered[: max(0, len(ordered) - self.keep)]
        for files in surplus:
            for path in files:
                if _quiet(path, quiet_since):
                    with contextlib.suppress(FileNotFoundError):
                        path.unlink()
        if self.compress:
            for files in ordered[len(surplus) :]:
                plain = [p for p in files if p.suffix != ".gz"]
                if plain and _quiet(plain[0], quiet_since):
                    self._gzip(plain[0])

    def _gzip(self, path: Path) -> None:
        target = path.with_name(path.name + ".gz")
        temporary = path.with_name(f".{path.name}.gz.{os.getpid()}.tmp")
        try:
            with open(path, "rb") as source, gzip.open(temporary, "wb") as sink:
                shutil.copyfileobj(source, sink, 1 << 20)
            os.replace(temporary, target)
            path.unlink(missing_ok=True)
        except FileNotFoundError:
            temporary.unlink(missing_ok=True)  # another writer compressed it first
        except OSError:
            temporary.unlink(missing_ok=True)
            self.log.warning("could not compress a rotated log file", file=str(path), exc_info=True)


def _quiet(path: Path, since: float) -> bool:
    try:
        return os.stat(path).st_mtime <= since
    except FileNotFoundError:
        return False
