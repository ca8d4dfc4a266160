"""Decodes USN_RECORD_V2, V3 and V4 (the NTFS change journal's records) from bytes.

Pure and portable: explicit little-endian `struct` formats of the documented layouts
(never `ctypes.wintypes`, whose DWORD is 8 bytes and WCHAR 4 on Linux). A record is
checked against the bytes it was given before any field is read, so a damaged one is a
`UsnDecodeError` naming its offset and what is wrong, never a read past the data.

Layouts (offsets in bytes; all records start on an 8-byte boundary, RecordLength is
a multiple of 8 and includes the padding after the name, which may hold garbage):

- V2: RecordLength u32, Major u16, Minor u16, FileReferenceNumber u64,
  ParentFileReferenceNumber u64, Usn i64, TimeStamp i64 (FILETIME), Reason u32,
  SourceInfo u32, SecurityId u32, FileAttributes u32, FileNameLength u16,
  FileNameOffset u16, then the UTF-16LE name (usually at 60).
- V3: as V2 with 128-bit file reference numbers (name usually at 76).
- V4 (range tracking): header, two 128-bit references, Usn i64, Reason u32,
  SourceInfo u32, RemainingExtents u32, NumberOfExtents u16, ExtentSize u16, then
  NumberOfExtents extents of ExtentSize bytes each (Offset i64, Length i64). No name,
  time or attributes.
"""

from __future__ import annotations

import re
import struct
from datetime import UTC, datetime, timedelta
from typing import NamedTuple

from pipeline.windows.usn_reasons import FILE_ATTRIBUTE_DIRECTORY, attribute_names, reason_names

COMMON_HEADER = struct.Struct("<IHH")
V2_HEADER = struct.Struct("<IHHQQqqIIIIHH")
V3_HEADER = struct.Struct("<IHH16s16sqqIIIIHH")
V4_HEADER = struct.Struct("<IHH16s16sqIIIHH")
EXTENT = struct.Struct("<qq")
HEADERS = {2: V2_HEADER, 3: V3_HEADER, 4: V4_HEADER}
PAGE_SIZE = 4096
"""$J holds its records in pages of this size; a record never crosses one."""
MAX_RECORD_LENGTH = PAGE_SIZE
ALIGNMENT = 8

_FILETIME_EPOCH = datetime(1601, 1, 1, tzinfo=UTC)
_NONZERO = re.compile(rb"[^\x00]")


class UsnDecodeError(ValueError):
    """Bytes that are not a valid USN record; `offset` is where the record was expected."""

    def __init__(self, offset: int, problem: str, *, truncated: bool = False) -> None:
        super().__init__(f"USN record at offset {offset}: {problem}")
        self.offset = offset
        self.problem = problem
        self.truncated = truncated
        """True when the record may be whole once more bytes arrive (a tailed file)."""


class UsnRecord(NamedTuple):
    """One decoded change-journal record, every documented field kept (a tuple: cheap to
    build by the million)."""

    offset: int
    """Where the record starts in the stream or buffer it was read from."""
    length: int
    major_version: int
    minor_version: int
    file_reference: int
    """FileReferenceNumber: 64 bits (V2; MFT entry in the low 48, sequence above) or 128."""
    parent_reference: int
    usn: int
    reason: int
    source_info: int
    timestamp: int | None = None
    """TimeStamp as FILETIME (100 ns ticks since 1601-01-01 UTC); None for V4."""
    security_id: int | None = None
    attributes: int | None = None
    name: str | None = None
    """The file name (8.3 short or long: Windows does not say which); None for V4."""
    remaining_extents: int | None = None
    extents: tuple[tuple[int, int], ...] = ()
    """V4: (offset, length) of each changed range."""

    @property
    def is_dir(self) -> bool:
        return bool((self.attributes or 0) & FILE_ATTRIBUTE_DIRECTORY)

    @property
    def time(self) -> datetime | None:
        """The record's timestamp as an aware UTC datetime (None without a valid one)."""
        return filetime_to_datetime(self.timestamp)

    @property
    def reasons(self) -> list[str]:
        return list(reason_names(self.reason))

    @property
    def attribute_names(self) -> list[str]:
        return list(attribute_names(self.attributes or 0))


def filetime_to_datetime(ticks: int | None) -> datetime | None:
    """FILETIME ticks as a UTC datetime; None when absent or outside datetime's range."""
    if ticks is None or ticks < 0:
        return None
    try:
        return _FILETIME_EPOCH + timedelta(microseconds=ticks // 10)
    except OverflowError:
        return None


def _decode_name(raw: bytes) -> str:
    try:
        return raw.decode("utf-16-le")
    except UnicodeDecodeError:
        # NTFS names are UTF-16 code units and may hold a lone surrogate; show it as \uXXXX
        # rather than fail, since such a str could not be encoded anywhere downstream.
        text = raw.decode("utf-16-le", "surrogatepass")
        return "".join(f"\\u{ord(c):04x}" if 0xD800 <= ord(c) <= 0xDFFF else c for c in text)


def decode_record(
    data: bytes | memoryview, offset: int = 0, end: int | None = None, *, base: int = 0
) -> UsnRecord:
    """Decode the record at `offset` of `data` (up to `end`); raises UsnDecodeError.

    `base` is the stream offset of `data[0]`: the record's `offset` is `base + offset`.
    """
    end = len(data) if end is None else min(end, len(data))
    available = end - offset
    if available < COMMON_HEADER.size:
        raise UsnDecodeError(
            offset, f"only {max(available, 0)} bytes left; a record header needs 8", truncated=True
        )
    length, major, minor = COMMON_HEADER.unpack_from(data, offset)
    if length == 0:
        raise UsnDecodeError(offset, f"zero-length record (version {major}.{minor})")
    header = HEADERS.get(major)
    if header is None:
        raise UsnDecodeError(offset, f"unsupported record version {major}.{minor} (known: 2, 3, 4)")
    if length % ALIGNMENT:
        raise UsnDecodeError(offset, f"record length {length} is not a multiple of 8")
    if length < header.size:
        raise UsnDecodeError(
            offset, f"record length {length} is shorter than the V{major} header ({header.size})"
        )
    if length > MAX_RECORD_LENGTH:
        raise UsnDecodeError(
            offset, f"record length {length} is over the {MAX_RECORD_LENGTH}-byte maximum"
        )
    if length > available:
        raise UsnDecodeError(
            offset,
            f"record of {length} bytes runs past the end of the data ({available} bytes left)",
            truncated=True,
        )
    if major == 4:
        return _decode_v4(data, offset, length, base)
    return _decode_named(data, offset, length, header, base)


def _decode_named(
    data: bytes | memoryview, offset: int, length: int, header: struct.Struct, base: int
) -> UsnRecord:
    fields = header.unpack_from(data, offset)
    (
        _,
        major,
        minor,
        frn,
        parent,
        usn,
        stamp,
        reason,
        source,
        security,
        attrs,
        name_len,
        name_at,
    ) = fields
    if name_at < header.size:
        raise UsnDecodeError(offset, f"file name offset {name_at} points into the header")
    if name_at + name_len > length:
        raise UsnDecodeError(
            offset,
            f"file name ({name_len} bytes at {name_at}) runs past the record's {length} bytes",
        )
    if name_len % 2:
        raise UsnDecodeError(offset, f"file name length {name_len} is odd; UTF-16 needs pairs")
    raw = bytes(data[offset + name_at : offset + name_at + name_len])
    if isinstance(frn, bytes):
        frn, parent = int.from_bytes(frn, "little"), int.from_bytes(parent, "little")
    return UsnRecord(
        offset=base + offset,
        length=length,
        major_version=major,
        minor_version=minor,
        file_reference=frn,
        parent_reference=parent,
        usn=usn,
        reason=reason,
        source_info=source,
        timestamp=stamp,
        security_id=security,
        attributes=attrs,
        name=_decode_name(raw),
    )


def _decode_v4(data: bytes | memoryview, offset: int, length: int, base: int) -> UsnRecord:
    (_, major, minor, frn, parent, usn, reason, source, remaining, count, size) = (
        V4_HEADER.unpack_from(data, offset)
    )
    if count and size < EXTENT.size:
        raise UsnDecodeError(offset, f"extent size {size} is below the 16 bytes of an extent")
    if V4_HEADER.size + count * size > length:
        raise UsnDecodeError(
            offset,
            f"{count} extents of {size} bytes run past the record's {length} bytes",
        )
    first = offset + V4_HEADER.size
    extents = tuple(EXTENT.unpack_from(data, first + i * size) for i in range(count))
    return UsnRecord(
        offset=base + offset,
        length=length,
        major_version=major,
        minor_version=minor,
        file_reference=int.from_bytes(frn, "little"),
        parent_reference=int.from_bytes(parent, "little"),
        usn=usn,
        reason=reason,
        source_info=source,
        remaining_extents=remaining,
        extents=extents,
    )


def next_nonzero(data: bytes | memoryview, start: int) -> int | None:
    """The index of the first byte at or after `start` that is not zero, or None."""
    found = _NONZERO.search(data, start)
    return found.start() if found is not None else None
