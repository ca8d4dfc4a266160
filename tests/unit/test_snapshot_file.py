"""The saved snapshot file: round trip, damage detection, atomic replacement."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from pipeline.sources.snapfile import (
    MAGIC,
    SnapshotFileError,
    decode,
    encode,
    write_atomically,
)
from pipeline.sources.snapshot import Entry

ENTRIES: dict[str, Entry] = {
    "/in": (0o40755, 2049, 11, 0, 1_700_000_000_000_000_000, 0, 0, 0),
    "/in/a.csv": (0o100644, 2049, 2**63 + 5, 123, 1_700_000_000_123_456_789, 7, 1000, 1000),
    "/in/caf\udce9.csv": (0o100600, 2049, 13, -1, -5, -1, 0, 0),  # not UTF-8; a stand-in
}


def test_entries_and_header_survive_a_round_trip() -> None:
    header, entries = decode(encode(ENTRIES, {"roots": ["/in"], "scope": {"x": 1}}))
    assert entries == ENTRIES
    assert header == {"roots": ["/in"], "scope": {"x": 1}, "count": 3}
    assert os.fsencode(next(p for p in entries if "caf" in p)) == b"/in/caf\xe9.csv"


def test_an_empty_snapshot_is_a_snapshot() -> None:
    assert decode(encode({}, {})) == ({"count": 0}, {})


def test_it_is_compact() -> None:
    many = {
        f"/landing/day-{i // 1000}/file-{i:06d}.csv": ENTRIES["/in/a.csv"] for i in range(20_000)
    }
    assert len(encode(many, {})) < 20_000 * 20  # under 20 bytes an entry


@pytest.mark.parametrize(
    "damage",
    [
        lambda data: data[:-1],
        lambda data: data[: len(data) // 2],
        lambda data: data[:40] + bytes([data[40] ^ 1]) + data[41:],
        lambda data: b"NOTSNAP!" + data[8:],
        lambda data: b"",
    ],
    ids=["last-byte", "half", "flipped-bit", "magic", "empty"],
)
def test_damage_is_detected(damage: object) -> None:
    data = encode(ENTRIES, {"roots": ["/in"]})
    with pytest.raises(SnapshotFileError):
        decode(damage(data))  # type: ignore[operator]


def test_a_file_is_replaced_whole_and_no_temporary_is_left(tmp_path: Path) -> None:
    target = tmp_path / "state" / "snapshot.bin"
    write_atomically(target, encode(ENTRIES, {}))
    write_atomically(target, encode({}, {}))
    assert target.read_bytes().startswith(MAGIC)
    assert decode(target.read_bytes())[1] == {}
    assert os.listdir(target.parent) == ["snapshot.bin"]
