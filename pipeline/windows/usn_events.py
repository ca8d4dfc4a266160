"""Turns USN records, in journal order, into fspipeline events.

NTFS writes a record each time a new reason joins a file's open: the reasons
accumulate from the open (each record repeats the earlier ones) until the final close,
whose record has `CLOSE` and every reason of that open; the next open starts afresh.
So this module tracks, per file reference, the reasons seen since its last close, and
reports each thing once per open, when its first reason appears:

| reason(s) appearing | event |
| --- | --- |
| FILE_CREATE | `created` |
| RENAME_OLD_NAME then RENAME_NEW_NAME | one `moved` (old path → new path) |
| DATA_OVERWRITE / DATA_EXTEND / DATA_TRUNCATION (or of a named stream) | `modified` |
| BASIC_INFO, SECURITY, EA, OBJECT_ID, HARD_LINK, STREAM, ... _CHANGE | `attrib` |
| FILE_DELETE | `deleted` |
| CLOSE, when the open created or wrote the file | `closed_write` |

One write is therefore one `modified` and one `closed_write`, however many records the
open produced; a folder never gets `closed_write`, nor does a file deleted in that open.
With `ReturnOnlyOnClose` only the close records arrive and everything is reported from
them (a `moved` then takes its old path from what was seen of the file before, or is
`null`). A rename's first half waits for its second; one left without it when the
journal ends is reported `deleted`. Moves follow the rules of every source: into the
watched paths from elsewhere is `moved` with `src_path: null`, out of them is `deleted`.

Each event's meta has `usn`, `reasons` (names), `file_reference`, `parent_reference`,
`attributes` (names), `timestamp` (the record's time, which is also the event's
`time`), `extents` for a V4 range record, and `root`, the configured path it is in.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from pipeline.event import Event, EventKind
from pipeline.windows.usn_paths import PathResolver, PathScope, format_reference
from pipeline.windows.usn_reasons import (
    CLOSE,
    DATA_CHANGE,
    FILE_CREATE,
    FILE_DELETE,
    METADATA_CHANGE,
    RENAME_NEW_NAME,
    RENAME_OLD_NAME,
    WRITTEN,
    attribute_names,
    reason_names,
)
from pipeline.windows.usn_records import UsnRecord

USN_KINDS: frozenset[EventKind] = frozenset(
    {
        EventKind.CREATED,
        EventKind.MODIFIED,
        EventKind.ATTRIB,
        EventKind.CLOSED_WRITE,
        EventKind.DELETED,
        EventKind.MOVED,
        EventKind.OVERFLOW,
    }
)
"""The kinds the change journal can tell (it records no opens, and no reads)."""


def record_meta(record: UsnRecord, moment: datetime | None) -> dict[str, Any]:
    """What an event made from `record` (journaled at `moment`) carries in its meta."""
    meta: dict[str, Any] = {
        "usn": record.usn,
        "reasons": list(reason_names(record.reason)),
        "file_reference": format_reference(record.file_reference),
        "parent_reference": format_reference(record.parent_reference),
    }
    if record.attributes is not None:
        meta["attributes"] = list(attribute_names(record.attributes))
    if moment is not None:
        meta["timestamp"] = f"{moment:%Y-%m-%dT%H:%M:%S}.{moment.microsecond:06d}Z"
    if record.major_version == 4:
        meta["extents"] = [list(extent) for extent in record.extents]
    return meta


class JournalInterpreter:
    """Folds records into events; feed them in journal order, one source per instance."""

    def __init__(
        self,
        resolver: PathResolver,
        scope: PathScope,
        *,
        source: str,
        wanted: frozenset[EventKind] = USN_KINDS,
    ) -> None:
        self.resolver = resolver
        self.scope = scope
        self.source = source
        self.wanted = wanted
        self._open: dict[int, int] = {}  # FRN -> reasons since its last close
        self._renaming: dict[int, tuple[str, UsnRecord]] = {}  # FRN -> old path, its record

    def pending_usn(self) -> int | None:
        """The USN of the oldest rename half still waiting: reading must resume there."""
        return min((record.usn for _, record in self._renaming.values()), default=None)

    def feed(self, record: UsnRecord) -> list[Event]:
        """The events `record` completes (often none: most records repeat earlier reasons)."""
        ref = record.file_reference
        before = self._open.get(ref, 0)
        new = record.reason & ~before
        # NTFS does not carry a rename's halves into later records the way it carries
        # other reasons, and a file may be renamed twice in one open: a half always counts.
        if record.reason & RENAME_OLD_NAME and not record.reason & RENAME_NEW_NAME:
            new |= RENAME_OLD_NAME
        elif record.reason & RENAME_NEW_NAME and ref in self._renaming:
            new |= RENAME_NEW_NAME
        reasons = before | record.reason & ~RENAME_OLD_NAME
        path = self.resolver.path_of(record)
        out: list[Event] = []
        note = _Note(self, record, out)
        if new & FILE_CREATE:
            note.add(EventKind.CREATED, path)
        if new & RENAME_NEW_NAME:
            old = None if new & RENAME_OLD_NAME else self._renaming.pop(ref, None)
            src = old[0] if old is not None else self.resolver.known(ref)
            if not new & FILE_CREATE:
                note.move(src if src != path else None, path)
        elif new & RENAME_OLD_NAME:
            self._renaming[ref] = (path, record)
        if new & DATA_CHANGE and not before & DATA_CHANGE:
            note.add(EventKind.MODIFIED, path)
        if new & METADATA_CHANGE and not before & METADATA_CHANGE:
            note.add(EventKind.ATTRIB, path)
        if new & FILE_DELETE:
            self._renaming.pop(ref, None)
            note.add(EventKind.DELETED, path)
        if record.reason & CLOSE:
            self._open.pop(ref, None)
            if reasons & WRITTEN and not reasons & FILE_DELETE and not record.is_dir:
                note.add(EventKind.CLOSED_WRITE, path)
        else:
            self._open[ref] = reasons
        self.resolver.learn(record, path)
        return out

    def flush(self) -> list[Event]:
        """At the end of the journal: renames whose second half never came, as `deleted`."""
        out: list[Event] = []
        for path, record in self._renaming.values():
            _Note(self, record, out).add(EventKind.DELETED, path)
        self._renaming.clear()
        return out

    def forget_opens(self) -> None:
        """After a gap in the journal (it wrapped): what was accumulated no longer holds."""
        self._open.clear()
        self._renaming.clear()


class _Note:
    """Adds the events of one record to `out`, within the scope and the wanted kinds."""

    def __init__(self, owner: JournalInterpreter, record: UsnRecord, out: list[Event]) -> None:
        self.owner = owner
        self.record = record
        self.out = out
        self._meta: dict[str, Any] | None = None
        self._time = datetime.min

    def _record_meta(self) -> dict[str, Any]:
        if self._meta is None:  # built once per record, and only when it has an event
            moment = self.record.time
            self._time = moment or datetime.now(UTC)
            self._meta = record_meta(self.record, moment)
        return self._meta

    def add(self, kind: EventKind, path: str, src: str | None = None) -> None:
        root = self.owner.scope.root_of(path)
        if root is None or kind not in self.owner.wanted:
            return
        meta = {"root": root, **self._record_meta()}
        is_dir = self.record.is_dir
        self.out.append(Event(kind, path, self.owner.source, is_dir, src, self._time, meta))

    def move(self, src: str | None, path: str) -> None:
        came_from = src if src is not None and self.owner.scope.root_of(src) is not None else None
        if self.owner.scope.root_of(path) is not None:
            self.add(EventKind.MOVED, path, came_from)
        elif came_from is not None:
            self.add(EventKind.DELETED, came_from)  # moved out of every watched path
