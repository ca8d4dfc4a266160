"""Turns changes found by a scan (a rescan, a catch-up, a polled folder) into events.

Scan events carry `meta.scan: true`, and a file's `size`, `mtime` and `inode` when they
are known. A file found new or changed also gets a `closed_write` when that kind is
wanted, so a pipeline that only listens for `closed_write` misses nothing a scan finds;
except a file some process still has open for writing (`still_open`), whose own close
is on its way.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Iterator, Mapping
from datetime import datetime
from types import MappingProxyType
from typing import Any

from pipeline.event import Event, EventKind
from pipeline.sources.snapshot import INO, MTIME_NS, SIZE, Change, Entry

WRITTEN = frozenset({EventKind.CREATED, EventKind.MODIFIED})
"""Changes of a file that a `closed_write` also reports."""


def scan_meta(base: Mapping[str, Any], entry: Entry | None, is_dir: bool) -> Mapping[str, Any]:
    meta = {**base, "scan": True}
    if entry is not None and not is_dir and entry[INO] and entry[SIZE] >= 0:
        meta.update(size=entry[SIZE], mtime=entry[MTIME_NS] / 1e9, inode=entry[INO])
    return MappingProxyType(meta)


def change_events(
    changes: Iterable[Change],
    *,
    wanted: frozenset[EventKind],
    source: str,
    meta_for: Callable[[str], Mapping[str, Any]],
    seen: datetime,
    still_open: Collection[str] = (),
) -> Iterator[Event]:
    """The events that report `changes`, in order, restricted to the `wanted` kinds."""
    closed = EventKind.CLOSED_WRITE in wanted
    for change in changes:
        kind, path, is_dir = change.kind, change.path, change.is_dir
        also_closed = closed and not is_dir and kind in WRITTEN and path not in still_open
        if kind not in wanted and not also_closed:
            continue
        meta = scan_meta(meta_for(path), change.entry, is_dir)
        if kind in wanted:
            yield Event(kind, path, source, is_dir, change.src_path, seen, meta)
        if also_closed:
            yield Event(EventKind.CLOSED_WRITE, path, source, False, None, seen, meta)
