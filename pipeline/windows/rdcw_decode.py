"""Decodes the buffers ReadDirectoryChangesW fills: FILE_NOTIFY_(EXTENDED_)INFORMATION chains.

Pure functions over bytes, with explicit little-endian `struct` formats: the layouts are
those of winnt.h on every Windows architecture, whatever platform runs this code (on
Linux, ctypes' DWORD is 8 bytes and WCHAR 4, so ctypes structures would be wrong here).

A damaged buffer never raises and is never read past its end: `decode` returns the
records before the damage and a message saying what is wrong; the caller treats the
rest as lost (an overflow: rescan).
"""

from __future__ import annotations

import dataclasses
import struct

FILE_ACTION_ADDED = 1
FILE_ACTION_REMOVED = 2
FILE_ACTION_MODIFIED = 3
FILE_ACTION_RENAMED_OLD_NAME = 4
FILE_ACTION_RENAMED_NEW_NAME = 5
ACTIONS = frozenset(range(FILE_ACTION_ADDED, FILE_ACTION_RENAMED_NEW_NAME + 1))

FILE_ATTRIBUTE_DIRECTORY = 0x10

# FILE_NOTIFY_INFORMATION: NextEntryOffset, Action, FileNameLength (bytes), FileName[].
BASIC_HEADER = struct.Struct("<III")
# FILE_NOTIFY_EXTENDED_INFORMATION: NextEntryOffset, Action, CreationTime,
# LastModificationTime, LastChangeTime, LastAccessTime, AllocatedLength, FileSize,
# FileAttributes, ReparsePointTag/EaSize, FileId, ParentFileId, FileNameLength, FileName[].
EXTENDED_HEADER = struct.Struct("<IIqqqqqqIIQQI")
assert BASIC_HEADER.size == 12 and EXTENDED_HEADER.size == 84

FILETIME_UNIX_EPOCH = 116_444_736_000_000_000
"""1970-01-01 in FILETIME units (100 ns since 1601-01-01)."""


@dataclasses.dataclass(frozen=True, slots=True)
class ExtendedInfo:
    """What FILE_NOTIFY_EXTENDED_INFORMATION adds to a record (times are FILETIMEs)."""

    creation_time: int
    last_modification_time: int
    last_change_time: int
    last_access_time: int
    allocated_length: int
    file_size: int
    attributes: int
    reparse_tag: int
    file_id: int
    parent_file_id: int

    @property
    def is_dir(self) -> bool:
        return bool(self.attributes & FILE_ATTRIBUTE_DIRECTORY)


@dataclasses.dataclass(frozen=True, slots=True)
class NotifyRecord:
    """One change: an action on a name relative to the watched folder (`\\`-separated)."""

    action: int
    name: str
    info: ExtendedInfo | None = None


@dataclasses.dataclass(frozen=True, slots=True)
class Decoded:
    """The records of one buffer, and what was wrong with it (None: nothing)."""

    records: list[NotifyRecord]
    error: str | None = None


def filetime_to_unix(filetime: int) -> float | None:
    """A FILETIME as Unix seconds; None for 0 (not set) and negative values."""
    if filetime <= 0:
        return None
    return (filetime - FILETIME_UNIX_EPOCH) / 10_000_000


def decode(buffer: bytes, *, extended: bool) -> Decoded:
    """The records chained in `buffer` (FILE_NOTIFY_EXTENDED_INFORMATION if `extended`)."""
    header = EXTENDED_HEADER if extended else BASIC_HEADER
    records: list[NotifyRecord] = []
    size = len(buffer)
    offset = 0
    while True:
        if offset + header.size > size:
            return Decoded(
                records,
                f"record {len(records)} at byte {offset} is cut short: its header needs "
                f"{header.size} bytes, {max(size - offset, 0)} are left",
            )
        fields = header.unpack_from(buffer, offset)
        next_offset, action, name_length = fields[0], fields[1], fields[-1]
        name_start = offset + header.size
        problem = _check(action, name_length, next_offset, name_start - offset, size - name_start)
        if problem is not None:
            return Decoded(records, f"record {len(records)} at byte {offset}: {problem}")
        raw = buffer[name_start : name_start + name_length]
        # Lone surrogates are valid in NTFS names; os functions on Windows take them back.
        name = raw.decode("utf-16-le", "surrogatepass")
        info = ExtendedInfo(*fields[2:12]) if extended else None
        records.append(NotifyRecord(action, name, info))
        if next_offset == 0:
            return Decoded(records)
        if offset + next_offset >= size:
            return Decoded(
                records,
                f"record {len(records) - 1} at byte {offset} points past the end of the "
                f"buffer (next record at byte {offset + next_offset} of {size})",
            )
        offset += next_offset


def _check(action: int, name_length: int, next_offset: int, fixed: int, room: int) -> str | None:
    """What is wrong with one record's header, or None."""
    if action not in ACTIONS:
        return f"unknown action {action} (expected 1 to 5)"
    if name_length == 0:
        return "empty file name"
    if name_length % 2:
        return f"file name length {name_length} is odd (names are UTF-16, 2 bytes a unit)"
    if name_length > room:
        return f"file name of {name_length} bytes runs past the end of the buffer ({room} left)"
    if next_offset % 4:
        return f"next record offset {next_offset} is not DWORD-aligned"
    if next_offset and next_offset < fixed + name_length:
        return f"next record offset {next_offset} overlaps this record's name"
    return None
