"""Where the live `usn` source resumes: (journal id, next USN) kept under its state_dir.

A USN identifies a record only within one journal, named by its 64-bit journal id.
A saved position can be used when the journal is the same and still holds the record
at that USN. It cannot after the journal was deleted and recreated (another id), or
wrapped (its oldest records, those from the saved USN on, were purged: the saved USN is
below `FirstUsn` or `LowestValidUsn`): the source then warns, emits `overflow`, and
rescans the watched folders for what changed since `since`, the journal time up to
which everything had been reported.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import struct
import threading
from pathlib import Path
from typing import Any

POSITION_FILE = "usn-position.json"
FORMAT = 1

JOURNAL_DATA = struct.Struct("<QqqqqQQ")
"""USN_JOURNAL_DATA (V0, and the start of V1 and V2): UsnJournalID, FirstUsn, NextUsn,
LowestValidUsn, MaxUsn, MaximumSize, AllocationDelta."""


@dataclasses.dataclass(frozen=True)
class JournalInfo:
    """What FSCTL_QUERY_USN_JOURNAL says about a volume's journal."""

    journal_id: int
    first_usn: int
    next_usn: int
    lowest_valid_usn: int
    max_usn: int
    maximum_size: int = 0
    allocation_delta: int = 0

    @classmethod
    def decode(cls, data: bytes) -> JournalInfo:
        if len(data) < JOURNAL_DATA.size:
            raise ValueError(f"USN_JOURNAL_DATA needs {JOURNAL_DATA.size} bytes, got {len(data)}")
        return cls(*JOURNAL_DATA.unpack_from(data))

    @property
    def oldest_usn(self) -> int:
        """The lowest USN a read may start from."""
        return max(self.first_usn, self.lowest_valid_usn)


@dataclasses.dataclass(frozen=True)
class Position:
    """A point in one volume's journal up to which every record was reported."""

    volume: str
    journal_id: int
    next_usn: int
    since: float
    """Journal time (epoch seconds) of the last record reported, or of the start."""


@dataclasses.dataclass(frozen=True)
class ResumePlan:
    """Where to start reading, and why the saved position could not be used (if so)."""

    start_usn: int
    gap: str | None = None
    since: float | None = None
    """With a gap: the time from which the rescan looks for changed files."""


def plan_resume(saved: Position | None, journal: JournalInfo, volume: str) -> ResumePlan:
    """Resume at the saved USN when the journal still holds it; else start at its end."""
    if saved is None or saved.volume.casefold() != volume.casefold():
        return ResumePlan(journal.next_usn)  # first start here: report changes from now on
    if saved.journal_id != journal.journal_id:
        gap = (
            f"the change journal of {volume} was deleted and recreated (journal id "
            f"{saved.journal_id:#x} is now {journal.journal_id:#x}); what changed before "
            "that is not in it"
        )
    elif saved.next_usn < journal.oldest_usn:
        gap = (
            f"the change journal of {volume} wrapped: the records from USN {saved.next_usn} on "
            f"were purged (the oldest left is {journal.oldest_usn}); raise its size with "
            f"`fsutil usn createjournal m=<bytes> a=<bytes> {volume}` if this recurs"
        )
    elif saved.next_usn > journal.next_usn:
        gap = (
            f"the saved position (USN {saved.next_usn}) is past the end of the change journal "
            f"of {volume} (USN {journal.next_usn}); it was reset"
        )
    else:
        return ResumePlan(saved.next_usn)
    return ResumePlan(journal.next_usn, gap, saved.since)


class PositionFile:
    """The saved position in `folder`; written atomically, read leniently."""

    def __init__(self, folder: Path) -> None:
        self.path = folder / POSITION_FILE

    def load(self) -> tuple[Position | None, str | None]:
        """The saved position (None if there is none) and a problem to warn about, if any."""
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return None, None
        except OSError as exc:
            return None, f"cannot read {self.path}: {exc.strerror}; starting at the journal's end"
        try:
            data: Any = json.loads(text)
            if data.get("format") != FORMAT:
                raise ValueError(f"unknown format {data.get('format')!r}")
            position = Position(
                volume=str(data["volume"]),
                journal_id=int(data["journal_id"]),
                next_usn=int(data["next_usn"]),
                since=float(data["since"]),
            )
        except (ValueError, TypeError, KeyError, AttributeError) as exc:
            return None, f"{self.path} is damaged ({exc}); starting at the journal's end"
        return position, None

    def save(self, position: Position) -> None:
        """Replace the file so that a crash leaves the old position or the new one."""
        data = {"format": FORMAT, **dataclasses.asdict(position)}
        self.path.parent.mkdir(parents=True, exist_ok=True)
        temp = self.path.with_name(f".{self.path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
        try:
            with open(temp, "w", encoding="utf-8") as handle:
                handle.write(json.dumps(data))
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(temp, self.path)
        except BaseException:
            with contextlib.suppress(OSError):
                temp.unlink()
            raise
