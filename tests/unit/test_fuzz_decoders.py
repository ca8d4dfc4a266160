"""Fuzzing the binary decoders that read kernel buffers: inotify (pipeline/linux/inotify.py),
which had no test of its own, and FILE_NOTIFY chains damaged byte by byte (random bytes
alone almost never form a record header, so they never reach the decoder's deeper checks).

The fanotify and USN decoders already have these properties in test_fanotify_decode.py and
test_usn_records.py (random bytes, damaged real buffers, truncation, chunking).
"""

from __future__ import annotations

import struct

from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.linux import inotify
from pipeline.windows.rdcw_decode import decode as decode_notify
from tests.unit.test_rdcw_decode import basic_record, chain, extended_record

FUZZ = settings(max_examples=300, deadline=None, derandomize=True)
HEADER = struct.Struct("iIII")  # struct inotify_event: wd, mask, cookie, len; then the name

names = st.binary(min_size=1, max_size=40).filter(lambda b: b"\0" not in b and b"/" not in b)
records = st.tuples(
    st.integers(-(2**31), 2**31 - 1),
    st.integers(0, 2**32 - 1),
    st.integers(0, 2**32 - 1),
    st.just(b"") | names,
    st.integers(0, 16),
)


def layout(wd: int, mask: int, cookie: int, name: bytes, padding: int) -> bytes:
    """One record as the kernel writes it: a name is NUL-terminated and padded."""
    body = name + b"\0" * (1 + padding) if name else b""
    return HEADER.pack(wd, mask, cookie, len(body)) + body


# -- inotify ---------------------------------------------------------------------------


@FUZZ
@given(st.lists(records, max_size=8))
def test_kernel_layout_records_decode_to_what_was_written(
    written: list[tuple[int, int, int, bytes, int]],
) -> None:
    buffer = b"".join(layout(*record) for record in written)
    expected = [(wd, mask, cookie, name) for wd, mask, cookie, name, _ in written]
    assert list(inotify.decode(buffer)) == expected
    assert inotify.decode_all(buffer) == expected


@FUZZ
@given(st.lists(records, min_size=1, max_size=6), st.data())
def test_a_truncated_buffer_gives_exactly_the_whole_records_before_the_cut(
    written: list[tuple[int, int, int, bytes, int]], data: st.DataObject
) -> None:
    parts = [layout(*record) for record in written]
    buffer = b"".join(parts)
    cut = data.draw(st.integers(0, len(buffer)))
    whole, end = 0, 0
    for part in parts:
        if end + len(part) > cut:
            break
        end += len(part)
        whole += 1
    expected = [(wd, mask, cookie, name) for wd, mask, cookie, name, _ in written[:whole]]
    assert inotify.decode_all(buffer[:cut]) == expected


@FUZZ
@given(st.binary(max_size=600))
def test_any_bytes_decode_without_raising_or_reading_past_the_end(data: bytes) -> None:
    decoded = inotify.decode_all(data)
    assert list(inotify.decode(data)) == decoded
    offset = 0  # walk the buffer by the layout: each record lies inside it, in order
    for wd, mask, cookie, name in decoded:
        *fields, length = HEADER.unpack_from(data, offset)
        start = offset + HEADER.size
        assert start + length <= len(data)
        assert fields == [wd, mask, cookie]
        assert name == data[start : start + length].split(b"\0", 1)[0]
        offset = start + length


def test_a_huge_length_ends_decoding_instead_of_reading_on() -> None:
    good = layout(1, inotify.IN_CREATE, 0, b"a", 2)
    liar = HEADER.pack(1, inotify.IN_CREATE, 0, 2**32 - 1) + b"b\0\0\0"
    assert inotify.decode_all(good + liar + good) == [(1, inotify.IN_CREATE, 0, b"a")]


# -- FILE_NOTIFY chains, damaged -------------------------------------------------------


@FUZZ
@given(
    st.lists(
        st.sampled_from(["a.txt", "caf\u00e9.csv", "x" * 60, "\ud800", "sub\\b"]),
        min_size=1,
        max_size=5,
    ),
    st.booleans(),
    st.lists(st.tuples(st.integers(0, 10_000), st.integers(0, 255)), min_size=1, max_size=6),
    st.integers(0, 10_000),
)
def test_damaged_notify_chains_decode_or_say_why_never_raise(
    names: list[str], extended: bool, damage: list[tuple[int, int]], cut: int
) -> None:
    build = extended_record if extended else basic_record
    buffer = bytearray(chain(*(build(1 + i % 5, name) for i, name in enumerate(names))))
    for at, value in damage:
        buffer[at % len(buffer)] = value
    damaged = bytes(buffer[: max(1, cut % (len(buffer) + 1))])
    decoded = decode_notify(damaged, extended=extended)
    assert decoded.records or decoded.error
    for record in decoded.records:
        assert 1 <= record.action <= 5
        assert len(record.name.encode("utf-16-le", "surrogatepass")) <= len(damaged)
