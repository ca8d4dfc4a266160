"""Turns the change records of one watched folder into events.

What Windows sends is not what a pipeline wants, so this module:

- pairs a rename's two records (FILE_ACTION_RENAMED_OLD_NAME, then _NEW_NAME) into one
  `moved`; an old name that ends a buffer waits `move_wait` for the next buffer to start
  with its new name, and is reported `deleted` (renamed out of the watched tree) if not;
  a new name without an old one is a `moved` with `src_path: None` (from outside);
- pairs a REMOVED and an ADDED record of the same file id (how NTFS reports a move
  between two folders of the watched tree) into one `moved`, when the records carry file
  ids (extended information); a REMOVED record that ends a buffer waits `move_wait` for
  the next one, as an old name does;
- coalesces the several MODIFIED records one write makes (size, then last-write time)
  into one `modified`, and drops MODIFIED records of folders (their list of entries
  changed: the entries' own records say how);
- tells folders from files: by the record's attributes when it has them, else by what
  is known of the path, else by a stat;
- lists the folders that appear, for the source to scan: a folder moved in from outside
  the tree comes as one record, nothing is said of what it holds;
- keeps the `KnownTree` current, whatever kinds are reported, for rescans.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from datetime import datetime
from types import MappingProxyType
from typing import Any

from pipeline.event import Event, EventKind
from pipeline.windows.rdcw_decode import (
    FILE_ACTION_ADDED,
    FILE_ACTION_MODIFIED,
    FILE_ACTION_REMOVED,
    FILE_ACTION_RENAMED_NEW_NAME,
    FILE_ACTION_RENAMED_OLD_NAME,
    ExtendedInfo,
    NotifyRecord,
    filetime_to_unix,
)
from pipeline.windows.rdcw_known import KnownTree, record_mark
from pipeline.windows.rdcw_paths import join_name

ECHO_WINDOW = 2.0
"""Seconds after the scan of an arrived folder during which an ADDED record for a path it
found is taken for an echo of it (records reach the loop through a thread: later)."""
LOOKAHEAD = 16
"""Records searched after a REMOVED one for the ADDED record of the same file id."""

_IN_PLACE = frozenset({FILE_ACTION_ADDED, FILE_ACTION_REMOVED, FILE_ACTION_MODIFIED})

ProbeDir = Callable[[str], bool | None]
"""Whether an existing path is a folder (None: it is gone)."""


@dataclasses.dataclass(frozen=True, slots=True)
class PendingDeparture:
    """A rename's old name, or a removal with a file id, that ended a buffer: the next
    buffer may start with where it went."""

    path: str
    folder: bool
    info: ExtendedInfo | None
    deadline: float
    removed: bool = False
    """A REMOVED record (paired by file id with an ADDED one), not an old name."""


class RecordTranslator:
    """Translates the records of one watched folder (`root`) into events."""

    def __init__(
        self,
        root: str,
        *,
        source: str,
        wanted: Collection[EventKind],
        known: KnownTree,
        meta: Mapping[str, Any],
        expand: Callable[[str], str],
        probe_dir: ProbeDir,
        move_wait: float,
        exclude: Sequence[str] = (),
        mark: Callable[[], int] = record_mark,
    ) -> None:
        self.root = root
        self.source = source
        self.wanted = frozenset(wanted)
        self.known = known
        self.meta = meta if isinstance(meta, MappingProxyType) else MappingProxyType(dict(meta))
        self.expand = expand
        self.probe_dir = probe_dir
        self.move_wait = move_wait
        self.exclude = tuple(exclude)
        self.mark = mark
        self.pending: PendingDeparture | None = None
        self.arrivals: list[str] = []
        """Folders that appeared (created, or moved in from outside) since `take_arrivals`:
        what they hold has no records of its own when they were moved in."""
        self.echoes: dict[str, float] = {}
        """Paths already reported by the scan of an arrived folder, to when that stops
        mattering: their ADDED records, still on their way, are not reported again."""

    # -- entry points ----------------------------------------------------------------

    def translate(self, records: Sequence[NotifyRecord], now: float, seen: datetime) -> list[Event]:
        """The events of one buffer's records; `now` is the loop time (for `move_wait`)."""
        out: list[Event] = []
        if self.echoes:
            self.echoes = {path: until for path, until in self.echoes.items() if until > now}
        paired: set[int] = set()  # ADDED records already reported as a move's arrival
        index = self._settle_pending(out, records, paired, seen)
        last: dict[str, int] = {}  # the last action seen per path in this buffer
        while index < len(records):
            record = records[index]
            if index in paired:
                index += 1
                continue
            path = self.path_of(record)
            action = record.action
            if self.exclude and action in _IN_PLACE and self._excluded(path):
                index += 1  # the state_dir's own files: never reported, never tracked
                continue
            if action == FILE_ACTION_RENAMED_OLD_NAME:
                index = self._old_name(out, records, index, path=path, now=now, seen=seen)
            elif action == FILE_ACTION_REMOVED:
                self._removed(out, records, index, path=path, paired=paired, now=now, seen=seen)
            elif action == FILE_ACTION_RENAMED_NEW_NAME:
                self._moved(out, None, False, record, seen)
            elif action == FILE_ACTION_ADDED:
                self._added(out, path, record.info, seen)
            elif action == FILE_ACTION_MODIFIED and last.get(path) != FILE_ACTION_MODIFIED:
                folder = self._is_dir(path, record.info)
                if not folder:  # a folder's entries changed: their own records tell how
                    self.known.touch(path, folder, self.mark())
                    self._emit(out, EventKind.MODIFIED, path, folder, info=record.info, seen=seen)
            last[path] = action
            index += 1
        return out

    def _settle_pending(
        self,
        out: list[Event],
        records: Sequence[NotifyRecord],
        paired: set[int],
        seen: datetime,
    ) -> int:
        """Pair the departure left by the last buffer with where it went in this one (the
        first record for an old name, an ADDED record of the same file id for a removal),
        else report it deleted. Returns how many records at the start were used."""
        pending, self.pending = self.pending, None
        if pending is None:
            return 0
        if pending.removed:
            partner = _same_file_added(records, 0, pending.info, paired)
            if partner is not None:
                paired.add(partner)
                self._moved(out, pending.path, pending.folder, records[partner], seen)
                return 0
        elif records and records[0].action == FILE_ACTION_RENAMED_NEW_NAME:
            self._moved(out, pending.path, pending.folder, records[0], seen)
            return 1
        self._deleted(out, pending.path, pending.folder, pending.info, seen)
        return 0

    def _added(
        self, out: list[Event], path: str, info: ExtendedInfo | None, seen: datetime
    ) -> None:
        if self.echoes.pop(path, None) is not None:
            return
        folder = self._is_dir(path, info)
        self.known.touch(path, folder, self.mark())
        if folder:
            self.arrivals.append(path)
        self._emit(out, EventKind.CREATED, path, folder, info=info, seen=seen)

    def add_echoes(self, paths: Iterable[str], now: float) -> None:
        """`paths` were reported by a scan at `now` (loop time)."""
        until = now + ECHO_WINDOW
        self.echoes.update(dict.fromkeys(paths, until))

    def take_arrivals(self) -> list[str]:
        """The folders that appeared since the last call, to be scanned for what they hold."""
        arrivals, self.arrivals = self.arrivals, []
        return arrivals

    def _old_name(
        self,
        out: list[Event],
        records: Sequence[NotifyRecord],
        index: int,
        *,
        path: str,
        now: float,
        seen: datetime,
    ) -> int:
        """A rename's old name at `index`: paired with the new name right after it, held
        for the next buffer if it is the last record, else `deleted`. Returns the index
        of the last record used."""
        record = records[index]
        folder = self._was_dir(path, record.info)
        if index + 1 == len(records):
            self.pending = PendingDeparture(path, folder, record.info, now + self.move_wait)
            return index
        following = records[index + 1]
        if following.action == FILE_ACTION_RENAMED_NEW_NAME:
            self._moved(out, path, folder, following, seen)
            return index + 1
        self._deleted(out, path, folder, record.info, seen)
        return index

    def _removed(
        self,
        out: list[Event],
        records: Sequence[NotifyRecord],
        index: int,
        *,
        path: str,
        paired: set[int],
        now: float,
        seen: datetime,
    ) -> None:
        """A removal: a move if the same file is added a little further on (or, when it
        ends the buffer, at the start of the next one), else `deleted`."""
        record = records[index]
        folder = self._was_dir(path, record.info)
        partner = _same_file_added(records, index + 1, record.info, paired)
        if partner is not None:
            paired.add(partner)
            self._moved(out, path, folder, records[partner], seen)
        elif index + 1 == len(records) and record.info is not None and record.info.file_id:
            deadline = now + self.move_wait
            self.pending = PendingDeparture(path, folder, record.info, deadline, removed=True)
        else:
            self._deleted(out, path, folder, record.info, seen)

    def expired(self, now: float, seen: datetime) -> list[Event]:
        """An old name whose new name did not come within `move_wait`: `deleted`."""
        pending = self.pending
        if pending is None or pending.deadline > now:
            return []
        self.pending = None
        out: list[Event] = []
        self._deleted(out, pending.path, pending.folder, pending.info, seen)
        return out

    def next_deadline(self) -> float | None:
        return self.pending.deadline if self.pending is not None else None

    def drop_pending(self) -> None:
        """Forget a waiting old name and arrived folders (before a rescan, which tells
        what became of them)."""
        self.pending = None
        self.arrivals.clear()

    def path_of(self, record: NotifyRecord) -> str:
        return self.expand(join_name(self.root, record.name, self.known.sep))

    # -- helpers ---------------------------------------------------------------------

    def _is_dir(self, path: str, info: ExtendedInfo | None) -> bool:
        """For a path that should exist now (added, modified, a rename's new name)."""
        if info is not None:
            return info.is_dir
        probed = self.probe_dir(path)
        if probed is not None:
            return probed
        return bool(self.known.is_dir(path))

    def _was_dir(self, path: str, info: ExtendedInfo | None) -> bool:
        """For a path that is gone (removed, a rename's old name)."""
        if info is not None:
            return info.is_dir
        return bool(self.known.is_dir(path))

    def _excluded(self, path: str) -> bool:
        sep = self.known.sep
        return any(path == e or path.startswith(e + sep) for e in self.exclude)

    def _moved(
        self,
        out: list[Event],
        src: str | None,
        src_folder: bool,
        arrival: NotifyRecord,
        seen: datetime,
    ) -> None:
        dst = self.path_of(arrival)
        if arrival.info is not None:
            folder = arrival.info.is_dir
        else:
            probed = self.probe_dir(dst)
            folder = src_folder if probed is None else probed
        if src is not None and self._excluded(src):
            src = None  # out of the state_dir: as if from outside
        if self._excluded(dst):  # into the state_dir: as if out of the watched tree
            if src is not None:
                self._deleted(out, src, folder, arrival.info, seen)
            return
        if src is None:
            self.known.touch(dst, folder, self.mark())
            if folder:
                self.arrivals.append(dst)
        else:
            self.known.move(src, dst, folder, self.mark())
        self._emit(out, EventKind.MOVED, dst, folder, src=src, info=arrival.info, seen=seen)

    def _deleted(
        self, out: list[Event], path: str, folder: bool, info: ExtendedInfo | None, seen: datetime
    ) -> None:
        self.known.remove(path)
        self._emit(out, EventKind.DELETED, path, folder, info=info, seen=seen)

    def _emit(
        self,
        out: list[Event],
        kind: EventKind,
        path: str,
        folder: bool,
        *,
        src: str | None = None,
        info: ExtendedInfo | None,
        seen: datetime,
    ) -> None:
        if kind not in self.wanted or (self.exclude and self._excluded(path)):
            return
        out.append(Event(kind, path, self.source, folder, src, seen, self._meta(info, folder)))

    def _meta(self, info: ExtendedInfo | None, folder: bool) -> Mapping[str, Any]:
        if info is None:
            return self.meta
        facts: dict[str, Any] = {**self.meta, "inode": info.file_id}
        if not folder:
            facts["size"] = info.file_size
            facts["mtime"] = filetime_to_unix(info.last_modification_time)
            facts["created"] = filetime_to_unix(info.creation_time)
        return MappingProxyType(facts)


def _same_file_added(
    records: Sequence[NotifyRecord], start: int, info: ExtendedInfo | None, taken: set[int]
) -> int | None:
    """The index of the ADDED record, within LOOKAHEAD from `start`, of the file `info`
    describes (same non-zero file id), or None."""
    if info is None or not info.file_id:
        return None
    for index in range(start, min(start + LOOKAHEAD, len(records))):
        other = records[index]
        if (
            index not in taken
            and other.action == FILE_ACTION_ADDED
            and other.info is not None
            and other.info.file_id == info.file_id
        ):
            return index
    return None
