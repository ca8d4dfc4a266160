"""Turns the changes found by comparing listings into fspipeline events."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import datetime
from types import MappingProxyType
from typing import Any

from pipeline import Event, EventKind
from pipeline.sources.report import change_events
from pipeline.sources.snapshot import INO, MTIME_NS, SIZE, Change, below

NO_META: Mapping[str, Any] = MappingProxyType({})


class EventMaker:
    """Makes the events of one source: its kinds, its `source` name, `meta.root`."""

    def __init__(
        self,
        source: str,
        roots: Sequence[str],
        wanted: frozenset[EventKind],
        hidden: Sequence[str] = (),
    ) -> None:
        self.source = source
        self.wanted = wanted
        self._roots = sorted(
            ((root, below(root), MappingProxyType({"root": root})) for root in roots),
            key=lambda item: len(item[0]),
            reverse=True,  # innermost first
        )
        self._hidden = tuple(hidden)
        self._hidden_below = tuple(below(path) for path in hidden)

    def meta_for(self, path: str) -> Mapping[str, Any]:
        """The meta every event about `path` carries: the watched path it is in."""
        for root, prefix, meta in self._roots:
            if path == root or path.startswith(prefix):
                return meta
        return NO_META

    def _shown(self, change: Change) -> bool:
        # The source's own state_dir, when it lies in a watched tree, is not reported.
        path = change.path
        return not (path in self._hidden or path.startswith(self._hidden_below))

    def live(self, changes: Iterable[Change], seen: datetime) -> Iterator[Event]:
        """Events for changes seen while running; files carry size, mtime and inode."""
        for change in changes:
            if change.kind not in self.wanted or not self._shown(change):
                continue
            meta = self.meta_for(change.path)
            entry = change.entry
            if entry is not None and not change.is_dir:
                meta = MappingProxyType(
                    {
                        **meta,
                        "size": entry[SIZE],
                        "mtime": entry[MTIME_NS] / 1e9,
                        "inode": entry[INO],
                    }
                )
            yield Event(
                change.kind, change.path, self.source, change.is_dir, change.src_path, seen, meta
            )

    def caught_up(self, changes: Iterable[Change], seen: datetime) -> Iterator[Event]:
        """Events for what changed while the process was down (`meta.scan: true`)."""
        yield from change_events(
            (change for change in changes if self._shown(change)),
            wanted=self.wanted,
            source=self.source,
            meta_for=self.meta_for,
            seen=seen,
        )
