"""atheris harness: the inotify event decoder (pipeline/linux/inotify.py) on any bytes.

Checks: never raises; `decode` and `decode_all` agree; every record lies inside the
buffer (a header plus its `len` bytes), so nothing is read past it; names hold no NUL.
"""

from __future__ import annotations

import struct

import atheris

with atheris.instrument_imports():
    from pipeline.linux import inotify

from _harness import run

HEADER = struct.Struct("iIII")


def record(wd: int, mask: int, cookie: int, name: bytes, pad: int) -> bytes:
    body = name + b"\0" * pad if name or pad else b""
    return HEADER.pack(wd, mask, cookie, len(body)) + body


SEEDS = [
    record(1, inotify.IN_CREATE, 0, b"a.csv", 11)
    + record(1, inotify.IN_MOVED_FROM, 7, b"old", 13)
    + record(2, inotify.IN_MOVED_TO, 7, b"caf\xe9", 12)
    + record(1, inotify.IN_Q_OVERFLOW, 0, b"", 0),
    record(-1, inotify.IN_Q_OVERFLOW, 0, b"", 0),
    record(3, inotify.IN_IGNORED, 0, b"", 0)[:10],
]


def test_one_input(data: bytes) -> None:
    records = list(inotify.decode(data))
    assert records == inotify.decode_all(data), "decode and decode_all disagree"
    offset = 0  # walk the buffer by the documented layout, independently of the decoder
    for wd, mask, cookie, name in records:
        assert offset + HEADER.size <= len(data)
        *fields, length = HEADER.unpack_from(data, offset)
        start = offset + HEADER.size
        assert start + length <= len(data), "a record was read past the end of the buffer"
        assert fields == [wd, mask, cookie]
        assert name == data[start : start + length].split(b"\0", 1)[0]
        offset = start + length
    assert len(data) - offset < HEADER.size or offset + HEADER.size + int.from_bytes(
        data[offset + 12 : offset + 16], "little"
    ) > len(data), "decoding stopped before a whole record"


if __name__ == "__main__":
    run("inotify", test_one_input, SEEDS)
