"""Resume decisions, the saved position, the Win32 structures packed for the live reader,
and the `usn` source's options."""

from __future__ import annotations

import struct
from pathlib import Path
from typing import Any

import pydantic
import pytest

from pipeline.sources.usn import UsnOptions
from pipeline.windows.usn_live import (
    dos_path,
    file_id_descriptor,
    read_request,
    split_read_output,
    volume_of,
)
from pipeline.windows.usn_state import JournalInfo, Position, PositionFile, plan_resume

JOURNAL = JournalInfo(
    journal_id=0x01D12C42BA17A812,
    first_usn=4096,
    next_usn=90000,
    lowest_valid_usn=4096,
    max_usn=2**62,
)


def saved(usn: int, journal_id: int = JOURNAL.journal_id, volume: str = "C:") -> Position:
    return Position(volume, journal_id, usn, since=1_700_000_000.0)


# -- resume ---------------------------------------------------------------------------------


def test_first_start_reads_from_the_journals_end() -> None:
    plan = plan_resume(None, JOURNAL, "C:")
    assert (plan.start_usn, plan.gap) == (90000, None)


def test_a_saved_position_still_in_the_journal_resumes_exactly_there() -> None:
    for usn in (4096, 50000, 90000):
        assert plan_resume(saved(usn), JOURNAL, "C:").start_usn == usn
        assert plan_resume(saved(usn), JOURNAL, "c:").gap is None


def test_another_journal_id_is_a_gap() -> None:
    plan = plan_resume(saved(50000, journal_id=7), JOURNAL, "C:")
    assert plan.start_usn == 90000
    assert plan.gap is not None and "deleted and recreated" in plan.gap and "0x7" in plan.gap
    assert plan.since == 1_700_000_000.0


def test_a_position_purged_from_the_journal_is_a_gap() -> None:
    plan = plan_resume(saved(100), JOURNAL, "C:")
    assert plan.gap is not None and "wrapped" in plan.gap and "USN 100" in plan.gap
    lowest = JournalInfo(1, 0, 90000, 8192, 2**62)
    assert plan_resume(saved(4096, journal_id=1), lowest, "C:").gap is not None


def test_a_position_past_the_end_is_a_gap() -> None:
    plan = plan_resume(saved(10**9), JOURNAL, "C:")
    assert plan.gap is not None and "past the end" in plan.gap


def test_a_position_of_another_volume_is_ignored() -> None:
    assert plan_resume(saved(50000, volume="D:"), JOURNAL, "C:").start_usn == 90000


def test_position_file_round_trip_and_damage(tmp_path: Path) -> None:
    positions = PositionFile(tmp_path / "state")
    assert positions.load() == (None, None)
    positions.save(saved(12345))
    assert positions.load() == (saved(12345), None)
    positions.path.write_text('{"format": 1, "volume": "C:"')
    position, problem = positions.load()
    assert position is None and problem is not None and "damaged" in problem
    positions.path.write_text('{"format": 99}')
    assert positions.load()[0] is None
    assert not list((tmp_path / "state").glob(".*.tmp"))


# -- Win32 structures ---------------------------------------------------------------------------


def test_journal_data_is_decoded_from_its_documented_layout() -> None:
    data = struct.pack("<QqqqqQQHH", 0xABC, 4096, 90000, 4096, 2**62, 32 << 20, 8 << 20, 2, 4)
    info = JournalInfo.decode(data + bytes(80 - len(data)))
    assert (info.journal_id, info.first_usn, info.next_usn, info.lowest_valid_usn) == (
        0xABC,
        4096,
        90000,
        4096,
    )
    assert (info.maximum_size, info.allocation_delta) == (32 << 20, 8 << 20)
    with pytest.raises(ValueError, match="needs 56 bytes"):
        JournalInfo.decode(b"\0" * 10)


def test_read_request_is_read_usn_journal_data_v1() -> None:
    data = read_request(90000, 0xABC, only_on_close=True)
    assert len(data) == 48
    start, mask, on_close, timeout, wait, journal, low, high = struct.unpack_from("<qIIQQQHH", data)
    assert (start, mask, on_close, timeout, wait, journal, low, high) == (
        90000,
        0xFFFFFFFF,
        1,
        0,
        0,
        0xABC,
        2,
        3,
    )


def test_read_output_starts_with_the_next_usn() -> None:
    assert split_read_output(struct.pack("<q", 777) + b"records") == (777, b"records")
    with pytest.raises(ValueError, match="starts with 8"):
        split_read_output(b"\1\2")


def test_file_id_descriptor_holds_64_or_128_bit_ids() -> None:
    short = file_id_descriptor(0x0005000000000005)
    assert struct.unpack("<II", short[:8]) == (24, 0)
    assert short[8:16] == (0x0005000000000005).to_bytes(8, "little")
    long = file_id_descriptor(1 << 100)
    assert struct.unpack("<II", long[:8]) == (24, 2)
    assert long[8:] == (1 << 100).to_bytes(16, "little")


def test_final_paths_lose_their_prefix() -> None:
    assert dos_path("\\\\?\\C:\\Users\\ann") == "C:\\Users\\ann"
    assert dos_path("\\\\?\\UNC\\srv\\share\\x") == "\\\\srv\\share\\x"
    assert volume_of("c:\\data\\in") == "C:"


# -- options ----------------------------------------------------------------------------------


def options(tmp_path: Path, **values: Any) -> UsnOptions:
    return UsnOptions.model_validate(values, context={"config_dir": tmp_path})


def test_live_options(tmp_path: Path) -> None:
    opts = options(tmp_path, paths=["C:\\data\\in\\", "c:\\data\\out"])
    assert opts.mode == "live"
    assert opts.paths == ["C:\\data\\in", "c:\\data\\out"]


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({}, "live mode needs `paths`"),
        ({"paths": ["/data/in"]}, "not an absolute Windows path"),
        ({"paths": ["data\\in"]}, "not an absolute Windows path"),
        ({"paths": ["C:\\a", "D:\\b"]}, "one usn source per volume"),
        ({"paths": ["C:\\a"], "journal": "j.bin"}, "`journal` is for `mode: offline`"),
        ({"mode": "offline"}, "offline mode needs `journal`"),
        ({"mode": "offline", "journal": "j", "events": ["opened"]}, "cannot see opened"),
        ({"paths": ["C:\\a"], "buffer_size": "1KB"}, "greater than or equal to 4096"),
        ({"paths": ["C:\\a"], "poll_interval": "0s"}, "must be more than 0"),
    ],
)
def test_bad_options_say_what_to_write(
    tmp_path: Path, values: dict[str, Any], message: str
) -> None:
    with pytest.raises(pydantic.ValidationError, match=message):
        options(tmp_path, **values)


def test_offline_options_resolve_the_journal_against_the_config(tmp_path: Path) -> None:
    opts = options(tmp_path, mode="offline", journal="evidence/$J", root="/mnt/img")
    assert opts.journal == tmp_path / "evidence" / "$J"
    assert opts.paths == []
