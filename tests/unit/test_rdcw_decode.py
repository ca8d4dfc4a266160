"""FILE_NOTIFY_(EXTENDED_)INFORMATION buffers (pipeline/windows/rdcw_decode.py).

The buffers are built here byte by byte from the documented layouts (winnt.h), not with
the decoder's own formats: offsets 0/4/8/12 for the basic record, 0..84 for the
extended one, NextEntryOffset chains padded to DWORD boundaries as Windows pads them.
"""

from __future__ import annotations

import struct

from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.windows.rdcw_decode import (
    FILE_ACTION_ADDED,
    FILE_ACTION_MODIFIED,
    FILE_ACTION_REMOVED,
    FILE_ACTION_RENAMED_NEW_NAME,
    FILE_ACTION_RENAMED_OLD_NAME,
    decode,
    filetime_to_unix,
)

# 2024-01-02T03:04:05Z as a FILETIME: (1704164645 s + 11644473600 s) * 10**7.
FILETIME_2024 = (1_704_164_645 + 11_644_473_600) * 10_000_000


def _u32(value: int) -> bytes:
    return value.to_bytes(4, "little")


def _i64(value: int) -> bytes:
    return value.to_bytes(8, "little", signed=True)


def basic_record(action: int, name: str) -> bytes:
    """FILE_NOTIFY_INFORMATION without its NextEntryOffset (filled in by `chain`)."""
    encoded = name.encode("utf-16-le", "surrogatepass")
    return _u32(action) + _u32(len(encoded)) + encoded


def extended_record(
    action: int,
    name: str,
    *,
    size: int = 0,
    attributes: int = 0x20,
    file_id: int = 0,
    parent_id: int = 5,
    times: int = FILETIME_2024,
) -> bytes:
    """FILE_NOTIFY_EXTENDED_INFORMATION without its NextEntryOffset."""
    encoded = name.encode("utf-16-le", "surrogatepass")
    return (
        _u32(action)
        + _i64(times)  # CreationTime
        + _i64(times + 10_000_000)  # LastModificationTime: one second later
        + _i64(times + 20_000_000)  # LastChangeTime
        + _i64(times + 30_000_000)  # LastAccessTime
        + _i64(-(-size // 4096) * 4096)  # AllocatedLength
        + _i64(size)  # FileSize
        + _u32(attributes)
        + _u32(0)  # ReparsePointTag / EaSize
        + _i64(file_id)
        + _i64(parent_id)
        + _u32(len(encoded))
        + encoded
    )


def chain(*bodies: bytes, align: int = 4) -> bytes:
    """Records chained as Windows writes them: each padded to `align`, NextEntryOffset
    pointing at the next, 0 in the last."""
    out = b""
    for index, body in enumerate(bodies):
        record = _u32(0) + body
        if index < len(bodies) - 1:
            record += b"\0" * (-len(record) % align)
            record = _u32(len(record)) + record[4:]
        out += record
    return out


def test_basic_records_in_order_with_names_relative_to_the_folder() -> None:
    buffer = chain(
        basic_record(FILE_ACTION_ADDED, "a.csv"),
        basic_record(FILE_ACTION_MODIFIED, "sub\\b.txt"),
        basic_record(FILE_ACTION_RENAMED_OLD_NAME, "a.csv"),
        basic_record(FILE_ACTION_RENAMED_NEW_NAME, "caf\u00e9 \u65e5\u672c.csv"),
        basic_record(FILE_ACTION_REMOVED, "sub"),
    )
    decoded = decode(buffer, extended=False)
    assert decoded.error is None
    assert [(r.action, r.name, r.info) for r in decoded.records] == [
        (1, "a.csv", None),
        (3, "sub\\b.txt", None),
        (4, "a.csv", None),
        (5, "caf\u00e9 \u65e5\u672c.csv", None),
        (2, "sub", None),
    ]


def test_names_outside_the_basic_plane_and_lone_surrogates_survive() -> None:
    names = ["\U0001f600.txt", "bad\udc80name"]  # an emoji; an unpaired surrogate (valid NTFS)
    buffer = chain(*(basic_record(FILE_ACTION_ADDED, n) for n in names))
    assert [r.name for r in decode(buffer, extended=False).records] == names


def test_extended_records_carry_file_id_size_times_and_attributes() -> None:
    buffer = chain(
        extended_record(FILE_ACTION_ADDED, "d", attributes=0x10, file_id=0x1_0000_0000_002A),
        extended_record(FILE_ACTION_MODIFIED, "d\\x.bin", size=123_456, file_id=77),
        align=8,
    )
    decoded = decode(buffer, extended=True)
    assert decoded.error is None
    folder, data = decoded.records
    assert folder.info is not None and data.info is not None
    assert (folder.name, folder.info.is_dir, folder.info.file_id) == ("d", True, 0x1_0000_0000_002A)
    assert (data.name, data.info.is_dir, data.info.file_size) == ("d\\x.bin", False, 123_456)
    assert data.info.allocated_length == 126_976 and data.info.parent_file_id == 5
    assert filetime_to_unix(data.info.creation_time) == 1_704_164_645
    assert filetime_to_unix(data.info.last_modification_time) == 1_704_164_646
    assert filetime_to_unix(0) is None


def test_a_lone_record_and_an_unpadded_last_record_decode() -> None:
    # The last record is not padded: the buffer ends right after its name.
    buffer = chain(basic_record(FILE_ACTION_ADDED, "abc"))  # 12 + 6 = 18 bytes
    assert len(buffer) == 18
    assert [r.name for r in decode(buffer, extended=False).records] == ["abc"]


def test_an_empty_buffer_is_an_error_not_a_crash() -> None:
    decoded = decode(b"", extended=False)
    assert decoded.records == []
    assert decoded.error is not None and "cut short" in decoded.error


def test_truncated_header_keeps_the_records_before_it() -> None:
    whole = chain(basic_record(1, "a"), basic_record(1, "b"))
    decoded = decode(whole[: 16 + 6], extended=False)  # second header cut after 6 bytes
    assert [r.name for r in decoded.records] == ["a"]
    assert decoded.error is not None
    assert "record 1 at byte 16" in decoded.error and "cut short" in decoded.error


def test_a_name_running_past_the_end_is_reported_and_not_read() -> None:
    buffer = _u32(0) + _u32(FILE_ACTION_ADDED) + _u32(400) + "ab".encode("utf-16-le")
    decoded = decode(buffer, extended=False)
    assert decoded.records == []
    assert decoded.error is not None and "runs past the end" in decoded.error


def test_next_offset_past_the_end_keeps_the_record_and_says_so() -> None:
    record = _u32(64) + basic_record(FILE_ACTION_ADDED, "abcd")  # 20 bytes, claims 64
    decoded = decode(record, extended=False)
    assert [r.name for r in decoded.records] == ["abcd"]
    assert decoded.error is not None and "points past the end" in decoded.error


def test_malformed_records_stop_the_decoding_with_a_clear_reason() -> None:
    good = chain(basic_record(FILE_ACTION_ADDED, "ok"), basic_record(FILE_ACTION_ADDED, "x"))
    cases = {
        "unknown action 9": _u32(0) + _u32(9) + _u32(2) + b"x\0",
        "empty file name": _u32(0) + _u32(1) + _u32(0),
        "is odd": _u32(0) + _u32(1) + _u32(3) + b"x\0y\0",
        "not DWORD-aligned": _u32(18) + _u32(1) + _u32(2) + b"x\0" + b"\0" * 12,
        "overlaps this record's name": _u32(8) + _u32(1) + _u32(2) + b"x\0" + b"\0" * 12,
    }
    for reason, bad in cases.items():
        decoded = decode(good[:16] + bad, extended=False)  # after one good, padded record
        assert [r.name for r in decoded.records] == ["ok"], reason
        assert decoded.error is not None and reason in decoded.error, (reason, decoded.error)


def test_a_basic_buffer_read_as_extended_does_not_crash() -> None:
    buffer = chain(basic_record(FILE_ACTION_ADDED, "name.txt"), basic_record(2, "b"))
    decoded = decode(buffer, extended=True)
    assert decoded.error is not None


@settings(max_examples=300, deadline=None)
@given(data=st.binary(max_size=600), extended=st.booleans())
def test_any_bytes_decode_without_raising_or_reading_past_the_end(
    data: bytes, extended: bool
) -> None:
    decoded = decode(data, extended=extended)
    total = sum(len(r.name.encode("utf-16-le", "surrogatepass")) for r in decoded.records)
    assert total <= len(data)
    assert decoded.error is not None or decoded.records


@settings(max_examples=100, deadline=None)
@given(
    names=st.lists(st.text(min_size=1, max_size=40), min_size=1, max_size=12),
    extended=st.booleans(),
)
def test_well_formed_chains_round_trip(names: list[str], extended: bool) -> None:
    if extended:
        bodies = [extended_record(1 + i % 5, n, file_id=i + 1) for i, n in enumerate(names)]
    else:
        bodies = [basic_record(1 + i % 5, n) for i, n in enumerate(names)]
    decoded = decode(chain(*bodies, align=8 if extended else 4), extended=extended)
    assert decoded.error is None
    assert [r.name for r in decoded.records] == names
    assert [r.action for r in decoded.records] == [1 + i % 5 for i in range(len(names))]


def test_layout_offsets_match_the_documentation() -> None:
    # FileNameLength sits at byte 8 of a basic record and byte 80 of an extended one.
    basic = chain(basic_record(1, "q"))
    assert struct.unpack_from("<I", basic, 8)[0] == 2
    extended = chain(extended_record(1, "q", file_id=9))
    assert struct.unpack_from("<I", extended, 80)[0] == 2
    assert struct.unpack_from("<q", extended, 64)[0] == 9  # FileId
    assert decode(extended, extended=True).records[0].info.file_id == 9  # type: ignore[union-attr]
