"""The USN record decoder on real journals and on V2/V3/V4 records built from the documented
layouts, field by field against dissect.ntfs; and on damaged bytes of every kind."""

from __future__ import annotations

import io
import struct
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from dissect.ntfs.c_ntfs import c_ntfs
from dissect.ntfs.usnjrnl import UsnJrnl
from dissect.ntfs.usnjrnl import UsnRecord as TheirRecord
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.windows.usn_records import UsnDecodeError, UsnRecord, decode_record
from pipeline.windows.usn_scan import RecordScanner, scan_buffer

DATA = Path(__file__).resolve().parents[3] / "shared" / "data" / "usn"
PLASO = DATA / "plaso_UsnJrnl.raw"
POOR = DATA / "PoorBillionaire_usnjrnl.bin"
STAMP = 130934529272031250  # 2015-11-30T21:15:27.203125Z as FILETIME


# -- records built with dissect's own structure definitions ------------------------------


def _align(size: int) -> int:
    return (size + 7) // 8 * 8


def _segment_reference(ref: int) -> Any:
    return c_ntfs.MFT_SEGMENT_REFERENCE(
        SegmentNumberLowPart=ref & 0xFFFFFFFF,
        SegmentNumberHighPart=(ref >> 32) & 0xFFFF,
        SequenceNumber=ref >> 48,
    )


def _file_id(ref: int) -> Any:
    return c_ntfs.FILE_ID_128(Identifier=ref.to_bytes(16, "little"))


def named_record(
    version: int,
    name: str,
    *,
    frn: int,
    parent: int,
    usn: int = 0,
    reason: int = 0x100,
    attributes: int = 0x20,
    stamp: int = STAMP,
    slack: bytes = b"",
) -> bytes:
    """A V2 or V3 record; the padding after the name holds `slack` (garbage) if given."""
    raw_name = name.encode("utf-16-le")
    header = c_ntfs.USN_RECORD_V2 if version == 2 else c_ntfs.USN_RECORD_V3
    ref = _segment_reference if version == 2 else _file_id
    size = len(header)
    length = _align(size + len(raw_name) + len(slack))
    fixed = header(
        RecordLength=length,
        MajorVersion=version,
        MinorVersion=0,
        FileReferenceNumber=ref(frn),
        ParentFileReferenceNumber=ref(parent),
        Usn=usn,
        TimeStamp=stamp,
        Reason=c_ntfs.USN_REASON(reason),
        SourceInfo=c_ntfs.USN_SOURCE(0),
        SecurityId=260,
        FileAttributes=c_ntfs.FILE_ATTRIBUTE(attributes),
        FileNameLength=len(raw_name),
        FileNameOffset=size,
    ).dumps()
    body = fixed + raw_name + slack
    return bytes(body + bytes(length - len(body)))


def v4_record(
    *, frn: int, parent: int, usn: int, reason: int, extents: list[tuple[int, int]]
) -> bytes:
    """A V4 (range tracking) record with its extents."""
    size = len(c_ntfs.USN_RECORD_V4) + 16 * len(extents)
    fixed = c_ntfs.USN_RECORD_V4(
        RecordLength=_align(size),
        MajorVersion=4,
        MinorVersion=0,
        FileReferenceNumber=_file_id(frn),
        ParentFileReferenceNumber=_file_id(parent),
        Usn=usn,
        Reason=c_ntfs.USN_REASON(reason),
        SourceInfo=c_ntfs.USN_SOURCE(0),
        RemainingExtents=0,
        NumberOfExtents=len(extents),
        ExtentSize=16,
    ).dumps()
    body = fixed + b"".join(
        c_ntfs.USN_RECORD_EXTENT(Offset=o, Length=n).dumps() for o, n in extents
    )
    return bytes(body + bytes(_align(size) - len(body)))


# -- comparing with dissect ---------------------------------------------------------------


def _their_reference(value: Any, version: int) -> int:
    if version == 2:
        return int(
            value.SegmentNumberLowPart
            | value.SegmentNumberHighPart << 32
            | value.SequenceNumber << 48
        )
    return int.from_bytes(bytes(value.Identifier), "little")


def assert_same(mine: UsnRecord, data: bytes) -> None:
    """Every field of `mine` equals what dissect.ntfs reads at the same offset of `data`."""
    theirs = TheirRecord(UsnJrnl(io.BytesIO(data)), io.BytesIO(data), mine.offset)
    raw = theirs.record
    version = theirs.header.MajorVersion
    assert (mine.length, mine.major_version, mine.minor_version) == (
        raw.RecordLength,
        version,
        theirs.header.MinorVersion,
    )
    assert mine.file_reference == _their_reference(raw.FileReferenceNumber, version)
    assert mine.parent_reference == _their_reference(raw.ParentFileReferenceNumber, version)
    assert (mine.usn, mine.reason, mine.source_info) == (
        raw.Usn,
        int(raw.Reason),
        int(raw.SourceInfo),
    )
    if version == 4:
        assert (mine.timestamp, mine.name, mine.attributes, mine.security_id) == (None,) * 4
        assert mine.remaining_extents == raw.RemainingExtents
        assert mine.extents == tuple((e.Offset, e.Length) for e in theirs.extents)
    else:
        assert (mine.timestamp, mine.security_id, mine.attributes, mine.name) == (
            raw.TimeStamp,
            raw.SecurityId,
            int(raw.FileAttributes),
            theirs.filename,
        )
        # dissect's datetime goes through a float (off by microseconds); its ns are exact.
        assert mine.time == datetime.fromtimestamp(0, UTC) + timedelta(
            microseconds=theirs.timestamp_ns // 1000
        )


def records_of(data: bytes) -> list[UsnRecord]:
    items = list(scan_buffer(data))
    errors = [item for item in items if isinstance(item, UsnDecodeError)]
    assert not errors, errors
    return [item for item in items if isinstance(item, UsnRecord)]


# -- real journals ----------------------------------------------------------------------


def test_plaso_journal_matches_dissect_field_by_field() -> None:
    data = PLASO.read_bytes()
    mine = records_of(data)
    theirs = list(UsnJrnl(io.BytesIO(data)).records())
    assert len(mine) == len(theirs) == 19
    assert [r.offset for r in mine] == [t.offset for t in theirs]
    for record in mine:
        assert_same(record, data)
    assert mine[0].name == "Nieuw - Tekstdocument.txt"
    assert mine[0].reasons == ["FILE_CREATE"]
    assert mine[0].attribute_names == ["ARCHIVE"]
    assert mine[7].is_dir and mine[7].name == "."


def test_poorbillionaire_slice_with_slack_garbage_matches_dissect() -> None:
    data = POOR.read_bytes()
    mine = records_of(data)
    assert len(mine) == 6
    assert [r.usn for r in mine][:2] == [8388608, 8388808]
    for record in mine:
        assert_same(record, data)
    # Garbage lies between a name's end and the next record: it is ignored.
    name_end = [r.offset + 60 + 2 * len(r.name or "") for r in mine]
    slack = [data[end : r.offset + r.length] for end, r in zip(name_end, mine, strict=True)]
    assert any(part.strip(b"\0") for part in slack)


def test_scanning_in_small_chunks_gives_the_same_records() -> None:
    data = PLASO.read_bytes()
    scanner = RecordScanner()
    chunked: list[Any] = []
    for at in range(0, len(data), 37):
        chunked += scanner.feed(data[at : at + 37], final=at + 37 >= len(data))
    assert chunked == records_of(data)


# -- V3 and V4 built from the documented layouts ----------------------------------------------


def test_v3_records_with_128_bit_ids_match_dissect() -> None:
    frn = 0x0123456789ABCDEF_FEDCBA9876543210
    parent = 0x00000000000000000005000000000005
    data = named_record(3, "rapport été.docx", frn=frn, parent=parent, usn=4096, slack=b"\xaa\xbb")
    data += named_record(3, "b", frn=frn + 1, parent=frn, usn=4096 + 96, reason=0x80000002)
    mine = records_of(data)
    assert [r.major_version for r in mine] == [3, 3]
    assert mine[0].file_reference == frn and mine[0].parent_reference == parent
    assert mine[0].name == "rapport été.docx"
    for record in mine:
        assert_same(record, data)


def test_v4_range_records_match_dissect() -> None:
    extents = [(0, 4096), (65536, 8192), (1 << 40, 1)]
    data = v4_record(frn=77, parent=5, usn=8192, reason=0x1, extents=extents)
    data += v4_record(frn=78, parent=5, usn=8192 + 112, reason=0x2, extents=[])
    mine = records_of(data)
    assert mine[0].extents == tuple(extents) and mine[1].extents == ()
    for record in mine:
        assert_same(record, data)


def test_mixed_versions_in_one_page_with_a_zeroed_tail_then_the_next_page() -> None:
    page1 = named_record(2, "a.txt", frn=40, parent=5, usn=0)
    page1 += named_record(3, "b.txt", frn=41, parent=5, usn=len(page1))
    page1 += bytes(4096 - len(page1))  # zeroed tail of the page
    page2 = v4_record(frn=40, parent=5, usn=4096, reason=1, extents=[(0, 10)])
    data = page1 + page2
    assert [(r.major_version, r.usn, r.offset) for r in records_of(data)] == [
        (2, 0, 0),
        (3, 72, 72),
        (4, 4096, 4096),
    ]


def test_sparse_leading_zeros_are_skipped() -> None:
    data = bytes(3 * 4096) + named_record(2, "late.txt", frn=9, parent=5, usn=3 * 4096)
    (record,) = records_of(data)
    assert (record.offset, record.usn, record.name) == (12288, 12288, "late.txt")


# -- damaged data ---------------------------------------------------------------------------


def _errors(data: bytes) -> list[UsnDecodeError]:
    return [item for item in scan_buffer(data) if isinstance(item, UsnDecodeError)]


def test_a_truncated_record_is_an_error_naming_its_offset() -> None:
    good = named_record(2, "ok.txt", frn=1, parent=5)
    cut = named_record(2, "cut.txt", frn=2, parent=5, usn=len(good))[:50]
    items = list(scan_buffer(good + cut))
    assert isinstance(items[0], UsnRecord)
    assert isinstance(items[1], UsnDecodeError)
    assert items[1].offset == len(good)
    assert "runs past the end" in str(items[1])


@pytest.mark.parametrize(
    ("patch", "problem"),
    [
        (struct.pack("<IHH", 0, 2, 0), "zero-length record"),
        (struct.pack("<IHH", 8192, 2, 0), "over the 4096-byte maximum"),
        (struct.pack("<IHH", 88, 7, 1), "unsupported record version 7.1"),
        (struct.pack("<IHH", 81, 2, 0), "not a multiple of 8"),
        (struct.pack("<IHH", 40, 2, 0), "shorter than the V2 header"),
    ],
)
def test_malformed_headers_are_reported_and_the_next_record_is_found(
    patch: bytes, problem: str
) -> None:
    bad = bytearray(named_record(2, "bad.txt", frn=3, parent=5, usn=0))
    bad[:8] = patch
    good = named_record(2, "after.txt", frn=4, parent=5, usn=len(bad))
    items = list(scan_buffer(bytes(bad) + good))
    errors = [i for i in items if isinstance(i, UsnDecodeError)]
    records = [i for i in items if isinstance(i, UsnRecord)]
    assert len(errors) == 1 and problem in str(errors[0]) and errors[0].offset == 0
    assert [r.name for r in records] == ["after.txt"]


def test_a_name_running_past_its_record_is_an_error() -> None:
    data = bytearray(named_record(2, "name.txt", frn=3, parent=5))
    struct.pack_into("<H", data, 56, 200)  # FileNameLength
    with pytest.raises(UsnDecodeError, match="runs past the record"):
        decode_record(bytes(data))


def test_v4_extents_running_past_the_record_are_an_error() -> None:
    data = bytearray(v4_record(frn=1, parent=5, usn=0, reason=1, extents=[(0, 1)]))
    struct.pack_into("<H", data, 60, 9)  # NumberOfExtents
    with pytest.raises(UsnDecodeError, match="9 extents of 16 bytes"):
        decode_record(bytes(data))


def test_a_lone_surrogate_in_a_name_is_kept_visible() -> None:
    data = bytearray(named_record(2, "ab", frn=3, parent=5))
    data[60:62] = b"\x00\xd8"  # a high surrogate with no low one
    assert decode_record(bytes(data)).name == "\\ud800b"


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=3000))
def test_any_bytes_give_records_or_decode_errors_never_an_exception(data: bytes) -> None:
    for item in scan_buffer(data):
        assert isinstance(item, UsnRecord | UsnDecodeError)
        if isinstance(item, UsnRecord):
            assert item.offset + item.length <= len(data)
            item.time  # noqa: B018  (converting any timestamp must not raise)


@settings(max_examples=300, deadline=None)
@given(st.binary(min_size=0, max_size=700), st.integers(min_value=0, max_value=700))
def test_decode_record_reads_only_the_bytes_it_is_given(data: bytes, offset: int) -> None:
    view = memoryview(data)  # reading past it raises IndexError/struct.error, not ours
    try:
        record = decode_record(view, min(offset, len(data)))
    except UsnDecodeError:
        return
    assert record.offset + record.length <= len(data)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.sampled_from(["a.txt", "longer name.csv", "ü", "x" * 120]), min_size=3, max_size=8),
    st.data(),
)
def test_one_damaged_record_costs_only_itself(names: list[str], draw: st.DataObject) -> None:
    records: list[bytes] = []
    for i, name in enumerate(names):
        version = 2 + i % 2
        records.append(named_record(version, name, frn=100 + i, parent=5, usn=i))
    victim = draw.draw(st.integers(min_value=0, max_value=len(records) - 1))
    length = draw.draw(st.integers(min_value=1, max_value=0xFFFFFFFF))
    major = draw.draw(
        st.integers(min_value=0, max_value=0xFFFF).filter(lambda v: v not in (2, 3, 4))
    )
    junk = struct.pack("<IHH", length, major, 0)
    damaged = bytearray(records[victim])
    damaged[:8] = junk
    data = b"".join(records[:victim]) + bytes(damaged) + b"".join(records[victim + 1 :])
    decoded = [i.usn for i in scan_buffer(data) if isinstance(i, UsnRecord)]
    expected = [i for i in range(len(names)) if i != victim]
    # The damaged record is skipped; any record found inside it is a chance decode of
    # its own bytes, never at the cost of a neighbour.
    assert [u for u in decoded if u != victim] == expected


@settings(max_examples=150, deadline=None)
@given(
    st.lists(
        st.tuples(st.sampled_from(["a", "bb.txt", "x" * 40]), st.integers(0, 3), st.booleans()),
        min_size=1,
        max_size=12,
    ),
    st.lists(st.integers(min_value=1, max_value=600), min_size=1, max_size=40),
)
def test_chunks_of_any_size_give_the_records_of_one_pass(
    layout: list[tuple[str, int, bool]], cuts: list[int]
) -> None:
    data = b""
    for i, (name, pad_words, new_page) in enumerate(layout):
        if new_page:
            data += bytes(-len(data) % 4096)  # the zeroed tail of a page
        data += bytes(8 * pad_words)
        data += named_record(2 + i % 2, name, frn=i + 10, parent=5, usn=len(data))
    whole = records_of(data)
    assert len(whole) == len(layout)
    scanner = RecordScanner()
    chunked: list[Any] = []
    at = 0
    for size in [*cuts, len(data)]:
        piece = data[at : at + size]
        at += len(piece)
        chunked += scanner.feed(piece, final=at >= len(data))
        if at >= len(data):
            break
    assert chunked == whole
