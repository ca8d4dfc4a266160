"""Reads a copy of an NTFS change journal (`$UsnJrnl:$J`) from a file, on any OS.

`$J` is a sparse stream: the journal's start is trimmed away as it grows, so a copy
begins with a (possibly huge) zero-filled region. Where the OS reports holes
(`SEEK_DATA`) the reader starts at the first data; runs of zeros it reads anyway are
skipped by the record scanner in one search each. Reading is chunked, so a journal of
any size is replayed in bounded memory, and `follow` can keep reading what is appended.
"""

from __future__ import annotations

import contextlib
import errno
import os
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from pipeline.windows.usn_records import PAGE_SIZE
from pipeline.windows.usn_scan import Item, RecordScanner

CHUNK_SIZE = 1 << 20


def first_data(handle: BinaryIO) -> int:
    """The page where data starts after the leading holes of a sparse file (0 if unknown)."""
    seek_data = getattr(os, "SEEK_DATA", None)
    if seek_data is None:
        return 0
    try:
        found = os.lseek(handle.fileno(), 0, seek_data)
    except OSError as exc:
        if exc.errno == errno.ENXIO:  # nothing but holes (or empty)
            return os.fstat(handle.fileno()).st_size // PAGE_SIZE * PAGE_SIZE
        return 0  # the file system cannot tell: read it all
    return found // PAGE_SIZE * PAGE_SIZE


class JournalReader:
    """One journal file, read from its first data to its end (and again as it grows)."""

    def __init__(self, path: Path, *, chunk_size: int = CHUNK_SIZE) -> None:
        self.path = path
        self.chunk_size = chunk_size
        self._handle: BinaryIO | None = None
        self._identity = (0, 0)
        self.scanner = RecordScanner()

    def open(self, *, keep_position: bool = False) -> None:
        """Open the file (OSError if it cannot be) and find where its data starts; or,
        with `keep_position`, go on from where the last reading stopped."""
        self.close()
        handle = open(self.path, "rb")  # noqa: SIM115  (held open across reads)
        stat = os.fstat(handle.fileno())
        self._handle = handle
        self._identity = (stat.st_dev, stat.st_ino)
        if not keep_position:
            self.scanner = RecordScanner(first_data(handle))

    def close(self) -> None:
        if self._handle is not None:
            self._handle.close()
            self._handle = None

    def read_chunk(self, *, final: bool) -> tuple[list[Item], bool]:
        """Decode the next chunk; returns its items and whether the end was reached.

        With `final`, the end of the file is the end of the journal: a record cut by it
        is a decode error. Without it (following a growing file) such a record waits.
        """
        handle = self._handle
        if handle is None:
            raise ValueError("the journal file is not open")
        handle.seek(self.scanner.end)
        data = handle.read(self.chunk_size)
        at_end = len(data) < self.chunk_size
        items = list(self.scanner.feed(data, final=final and at_end))
        return items, at_end

    def read_all(self) -> Iterator[Item]:
        """Every record and decode error from here to the end of the file, which ends it."""
        while True:
            items, at_end = self.read_chunk(final=True)
            yield from items
            if at_end:
                return

    def replaced(self) -> bool:
        """Whether the path now names another file, or the file shrank (it was rewritten)."""
        try:
            stat = os.stat(self.path)
        except OSError:
            return False  # gone for now: keep what is open, look again later
        if (stat.st_dev, stat.st_ino) != self._identity:
            return True
        return stat.st_size < self.scanner.end

    def __enter__(self) -> JournalReader:
        self.open()
        return self

    def __exit__(self, *exc: object) -> None:
        with contextlib.suppress(OSError):
            self.close()
