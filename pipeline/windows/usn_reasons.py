"""The flags of a USN record: change reasons (USN_REASON_*) and file attributes, by name.

Values are those of the Win32 headers (winioctl.h, winnt.h). Names drop the `USN_REASON_`
and `FILE_ATTRIBUTE_` prefixes: `["DATA_EXTEND", "CLOSE"]`, `["ARCHIVE"]`.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping

DATA_OVERWRITE = 0x00000001
DATA_EXTEND = 0x00000002
DATA_TRUNCATION = 0x00000004
NAMED_DATA_OVERWRITE = 0x00000010
NAMED_DATA_EXTEND = 0x00000020
NAMED_DATA_TRUNCATION = 0x00000040
FILE_CREATE = 0x00000100
FILE_DELETE = 0x00000200
EA_CHANGE = 0x00000400
SECURITY_CHANGE = 0x00000800
RENAME_OLD_NAME = 0x00001000
RENAME_NEW_NAME = 0x00002000
INDEXABLE_CHANGE = 0x00004000
BASIC_INFO_CHANGE = 0x00008000
HARD_LINK_CHANGE = 0x00010000
COMPRESSION_CHANGE = 0x00020000
ENCRYPTION_CHANGE = 0x00040000
OBJECT_ID_CHANGE = 0x00080000
REPARSE_POINT_CHANGE = 0x00100000
STREAM_CHANGE = 0x00200000
TRANSACTED_CHANGE = 0x00400000
INTEGRITY_CHANGE = 0x00800000
DESIRED_STORAGE_CLASS_CHANGE = 0x01000000
CLOSE = 0x80000000

REASON_NAMES: Mapping[int, str] = {
    DATA_OVERWRITE: "DATA_OVERWRITE",
    DATA_EXTEND: "DATA_EXTEND",
    DATA_TRUNCATION: "DATA_TRUNCATION",
    NAMED_DATA_OVERWRITE: "NAMED_DATA_OVERWRITE",
    NAMED_DATA_EXTEND: "NAMED_DATA_EXTEND",
    NAMED_DATA_TRUNCATION: "NAMED_DATA_TRUNCATION",
    FILE_CREATE: "FILE_CREATE",
    FILE_DELETE: "FILE_DELETE",
    EA_CHANGE: "EA_CHANGE",
    SECURITY_CHANGE: "SECURITY_CHANGE",
    RENAME_OLD_NAME: "RENAME_OLD_NAME",
    RENAME_NEW_NAME: "RENAME_NEW_NAME",
    INDEXABLE_CHANGE: "INDEXABLE_CHANGE",
    BASIC_INFO_CHANGE: "BASIC_INFO_CHANGE",
    HARD_LINK_CHANGE: "HARD_LINK_CHANGE",
    COMPRESSION_CHANGE: "COMPRESSION_CHANGE",
    ENCRYPTION_CHANGE: "ENCRYPTION_CHANGE",
    OBJECT_ID_CHANGE: "OBJECT_ID_CHANGE",
    REPARSE_POINT_CHANGE: "REPARSE_POINT_CHANGE",
    STREAM_CHANGE: "STREAM_CHANGE",
    TRANSACTED_CHANGE: "TRANSACTED_CHANGE",
    INTEGRITY_CHANGE: "INTEGRITY_CHANGE",
    DESIRED_STORAGE_CLASS_CHANGE: "DESIRED_STORAGE_CLASS_CHANGE",
    CLOSE: "CLOSE",
}

DATA_CHANGE = (
    DATA_OVERWRITE
    | DATA_EXTEND
    | DATA_TRUNCATION
    | NAMED_DATA_OVERWRITE
    | NAMED_DATA_EXTEND
    | NAMED_DATA_TRUNCATION
)
"""Reasons that mean the content changed (the main stream or a named one): `modified`."""
WRITTEN = DATA_CHANGE | FILE_CREATE
"""Reasons that make the final close of a file a `closed_write` (a new empty file counts)."""
METADATA_CHANGE = (
    EA_CHANGE
    | SECURITY_CHANGE
    | INDEXABLE_CHANGE
    | BASIC_INFO_CHANGE
    | HARD_LINK_CHANGE
    | COMPRESSION_CHANGE
    | ENCRYPTION_CHANGE
    | OBJECT_ID_CHANGE
    | REPARSE_POINT_CHANGE
    | STREAM_CHANGE
    | INTEGRITY_CHANGE
    | DESIRED_STORAGE_CLASS_CHANGE
)
"""Reasons that change what is known about a file, not its content: `attrib`."""

FILE_ATTRIBUTE_DIRECTORY = 0x00000010

ATTRIBUTE_NAMES: Mapping[int, str] = {
    0x00000001: "READONLY",
    0x00000002: "HIDDEN",
    0x00000004: "SYSTEM",
    FILE_ATTRIBUTE_DIRECTORY: "DIRECTORY",
    0x00000020: "ARCHIVE",
    0x00000040: "DEVICE",
    0x00000080: "NORMAL",
    0x00000100: "TEMPORARY",
    0x00000200: "SPARSE_FILE",
    0x00000400: "REPARSE_POINT",
    0x00000800: "COMPRESSED",
    0x00001000: "OFFLINE",
    0x00002000: "NOT_CONTENT_INDEXED",
    0x00004000: "ENCRYPTED",
    0x00008000: "INTEGRITY_STREAM",
    0x00010000: "VIRTUAL",
    0x00020000: "NO_SCRUB_DATA",
    0x00040000: "RECALL_ON_OPEN",
    0x00080000: "PINNED",
    0x00100000: "UNPINNED",
    0x00400000: "RECALL_ON_DATA_ACCESS",
    0x20000000: "STRICTLY_SEQUENTIAL",
}


def _names(mask: int, table: Mapping[int, str]) -> tuple[str, ...]:
    names = [name for bit, name in table.items() if mask & bit]
    unknown = mask & ~sum(table)
    if unknown:
        names.append(f"{unknown:#010x}")  # reserved bits are shown, never dropped
    return tuple(names)


@functools.lru_cache(maxsize=4096)
def reason_names(mask: int) -> tuple[str, ...]:
    """The names of the reason bits set in `mask`, in bit order; unknown bits as hex."""
    return _names(mask, REASON_NAMES)


@functools.lru_cache(maxsize=4096)
def attribute_names(mask: int) -> tuple[str, ...]:
    """The names of the file attribute bits set in `mask`; unknown bits as hex."""
    return _names(mask, ATTRIBUTE_NAMES)
