"""After a gap in the change journal: the files under the watched folders changed since a time.

The journal no longer holds what happened in the gap, so the folders are walked and
every file whose modification or creation time is not older than `since` (less a
margin for clocks and timestamp granularity) is reported, as a scan finds it:
`modified` and `closed_write` with `meta.scan: true`. Deletions and renames made in the
gap cannot be recovered this way; the `overflow` event before the rescan tells
consumers that they may have to re-synchronise.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence

from pipeline.event import EventKind
from pipeline.sources.snapshot import Change, entry_of

REPARSE_POINT = 0x400
MARGIN = 2.0
"""Seconds before `since` still counted as after it (FAT-style 2 s times, clock skew)."""


def _is_link(stat: os.stat_result) -> bool:
    # Junctions and symlinks are reparse points on Windows (elsewhere: 0, not a link).
    return bool(getattr(stat, "st_file_attributes", 0) & REPARSE_POINT)


def changed_since(roots: Sequence[str], since: float) -> Iterator[Change]:
    """`modified` changes for the files below `roots` written or created at `since` or later.

    Symlinks and junctions are not followed; folders that cannot be read are skipped.
    """
    threshold = since - MARGIN
    pending = list(roots)
    while pending:
        folder = pending.pop()
        try:
            with os.scandir(folder) as entries:
                found = list(entries)
        except OSError:
            continue
        for entry in found:
            try:
                stat = entry.stat(follow_symlinks=False)
                is_dir = entry.is_dir(follow_symlinks=False)
            except OSError:
                continue
            if is_dir:
                if not _is_link(stat):
                    pending.append(entry.path)
            elif max(stat.st_mtime, stat.st_ctime) >= threshold:
                yield Change(EventKind.MODIFIED, entry.path, False, None, entry_of(stat))
