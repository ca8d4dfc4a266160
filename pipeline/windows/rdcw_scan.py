"""File-system reads for the `windows` source: stat scans of its trees and single probes,
through `\\\\?\\` paths so that trees deeper than MAX_PATH (260 characters) work.

Scans go through `snapscan.scan`, the same as the poll source's, with one change: on
Windows `os.DirEntry.stat()` leaves the inode (file id) and device at 0, which a rescan
needs to tell a move from a delete and a create, so each entry is stat-ed in full.
"""

from __future__ import annotations

import contextlib
import os
import stat as statmod
import sys
from collections.abc import Collection, Iterator, Sequence

from pipeline.sources.snapscan import scan
from pipeline.sources.snapshot import Snapshot
from pipeline.windows.rdcw_paths import to_extended

WINDOWS = sys.platform == "win32"


def api_path(path: str) -> str:
    """The form of `path` to hand to system calls: `\\\\?\\`-prefixed on Windows."""
    return to_extended(path) if WINDOWS else path


def stat_path(path: str) -> os.stat_result:
    """`os.lstat`, for paths of any length."""
    return os.stat(api_path(path), follow_symlinks=False)


def probe_dir(path: str) -> bool | None:
    """Whether `path` is a folder; None if it does not exist (any more)."""
    try:
        return statmod.S_ISDIR(stat_path(path).st_mode)
    except OSError:
        return None


class _Item:
    """A listed entry, stat-ed in full (file id and volume included) when asked."""

    __slots__ = ("_api", "path")

    def __init__(self, path: str, api: str) -> None:
        self.path = path
        self._api = api

    def stat(self, *, follow_symlinks: bool = True) -> os.stat_result:
        return os.stat(self._api, follow_symlinks=follow_symlinks)


@contextlib.contextmanager
def _listing(folder: str) -> Iterator[Iterator[_Item]]:
    with os.scandir(api_path(folder)) as entries:
        yield (_Item(os.path.join(folder, entry.name), entry.path) for entry in entries)


def scan_trees(
    roots: Sequence[str],
    *,
    recursive: bool,
    previous: Snapshot | None = None,
    skip: Collection[str] = (),
) -> Snapshot:
    """Stat every path under `roots` (blocking: run it in a thread)."""
    if not WINDOWS:  # DirEntry.stat() is complete elsewhere
        return scan(roots, recursive=recursive, previous=previous, skip=skip)
    return scan(
        roots,
        recursive=recursive,
        previous=previous,
        skip=skip,
        scandir=_listing,
        stat=lambda path: os.stat(api_path(path)),
    )
