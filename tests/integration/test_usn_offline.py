"""The `usn` source in offline mode on real journal files: replay, follow, sparse files,
damaged records; and live mode's refusal off Windows."""

from __future__ import annotations

import asyncio
import os
import shutil
import time
from pathlib import Path
from typing import Any

import pytest
from structlog.testing import capture_logs

from pipeline import SourceError
from pipeline.sources.usn import UsnSource
from pipeline.windows.usn_offline import JournalReader, first_data
from tests.conftest import Running, make_component
from tests.unit.test_usn_events import PLASO_HISTORY
from tests.unit.test_usn_records import named_record

pytestmark = pytest.mark.integration

DATA = Path(__file__).resolve().parents[3] / "shared" / "data" / "usn"
PLASO = DATA / "plaso_UsnJrnl.raw"


def seen(running: Running) -> list[tuple[str, str, str | None]]:
    return [(e.kind.value, e.path, e.src_path) for e in running.events]


def offline(tmp_path: Path, journal: Path, **options: Any) -> UsnSource:
    source: UsnSource = make_component(
        UsnSource, tmp_path, mode="offline", journal=str(journal), **options
    )
    return source


def test_replays_a_real_journal(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with Running(offline(tmp_path, PLASO)) as running:
            await running.wait_for(lambda events: len(events) >= len(PLASO_HISTORY))
            await running.settle(0.2)
            assert seen(running) == PLASO_HISTORY
            assert {e.source for e in running.events} == {"t/usn"}
            assert running.events[0].meta["root"] == "C:\\"

    asyncio.run(scenario())


def test_paths_and_events_narrow_the_replay(tmp_path: Path) -> None:
    async def scenario() -> None:
        source = offline(
            tmp_path,
            PLASO,
            root="/mnt/img",
            paths=["/mnt/img/FIRST.txt"],
            events=["closed_write", "moved"],
        )
        async with Running(source) as running:
            await running.wait_for(lambda events: len(events) >= 2)
            await running.settle(0.2)
            assert seen(running) == [
                ("moved", "/mnt/img/first.txt", None),  # came from outside the paths
                ("closed_write", "/mnt/img/first.txt", None),
            ]

    asyncio.run(scenario())


def test_follow_reads_what_is_appended_even_a_record_cut_in_two(tmp_path: Path) -> None:
    data = PLASO.read_bytes()
    journal = tmp_path / "J"
    journal.write_bytes(data[:224])  # the first open: create and close

    async def scenario() -> None:
        source = offline(tmp_path, journal, follow=True, poll_interval="20ms")
        async with Running(source) as running:
            await running.wait_for(lambda events: len(events) == 2)
            with open(journal, "ab") as handle:
                handle.write(data[224:380])  # the old name, and half of the new one
            await asyncio.sleep(0.3)
            assert len(running.events) == 2  # the rename waits for its second half
            with open(journal, "ab") as handle:
                handle.write(data[380:])
            await running.wait_for(lambda events: len(events) == len(PLASO_HISTORY))
            assert seen(running) == PLASO_HISTORY

    asyncio.run(scenario())


def test_follow_starts_again_when_the_file_is_replaced(tmp_path: Path) -> None:
    journal = tmp_path / "J"
    shutil.copy(PLASO, journal)

    async def scenario() -> None:
        source = offline(tmp_path, journal, follow=True, poll_interval="20ms")
        with capture_logs() as logs:
            async with Running(source) as running:
                await running.wait_for(lambda events: len(events) == len(PLASO_HISTORY))
                fresh = tmp_path / "J.new"
                fresh.write_bytes(named_record(2, "new.txt", frn=40, parent=5, reason=0x100))
                os.replace(fresh, journal)
                await running.wait_for(lambda events: events[-1].path == "C:\\new.txt")
        assert any("replaced or shrank" in entry["event"] for entry in logs)

    asyncio.run(scenario())


def test_a_sparse_journal_is_replayed_without_reading_its_holes(tmp_path: Path) -> None:
    journal = tmp_path / "J"
    hole = 512 << 20
    with open(journal, "wb") as handle:
        handle.truncate(hole)  # sparse: 512 MiB of zeros that use no disk
        handle.seek(hole)
        handle.write(named_record(2, "late.txt", frn=40, parent=5, usn=hole, reason=0x80000100))
    with open(journal, "rb") as reading:
        start = first_data(reading)
    assert start in (0, hole)  # hole when the file system reports holes (ext4, tmpfs, xfs)

    async def scenario() -> None:
        began = time.monotonic()
        async with Running(offline(tmp_path, journal)) as running:
            await running.wait_for(lambda events: len(events) == 2, timeout=30)
        assert [e.kind.value for e in running.events] == ["created", "closed_write"]
        assert running.events[0].meta["usn"] == hole
        assert time.monotonic() - began < (5 if start == hole else 30)

    asyncio.run(scenario())


def test_damaged_records_are_logged_and_skipped(tmp_path: Path) -> None:
    data = bytearray(PLASO.read_bytes())
    data[224:232] = b"\xff" * 8  # the rename's old-name record
    data[1504 + 4 : 1504 + 6] = b"\x09\x00"  # the second rename's new name: version 9
    journal = tmp_path / "J"
    journal.write_bytes(bytes(data))

    async def scenario() -> None:
        with capture_logs() as logs:
            async with Running(offline(tmp_path, journal)) as running:
                await running.wait_for(lambda events: len(events) >= 9)
                await running.settle(0.3)
        warnings = [e for e in logs if e["event"] == "damaged journal record skipped"]
        assert [w["error"].split(":")[0] for w in warnings] == [
            "USN record at offset 224",
            "USN record at offset 1504",
        ]
        kinds = [k for k, _, _ in seen(running)]
        assert kinds.count("closed_write") == 3  # every close is still there
        # Without its first half, a rename takes its old path from the earlier records;
        # without its second, from the close record that repeats the new name.
        assert ("moved", "C:\\first.txt", "C:\\Nieuw - Tekstdocument.txt") in seen(running)
        assert seen(running)[-1] == ("moved", "C:\\second.txt", "C:\\Kopie van first.txt")

    asyncio.run(scenario())


def test_a_missing_journal_file_is_a_clear_error(tmp_path: Path) -> None:
    source = offline(tmp_path, tmp_path / "nope")
    with pytest.raises(SourceError, match="nope does not exist; give `journal:`"):
        asyncio.run(source.open())


def test_live_mode_off_windows_says_it_needs_windows(tmp_path: Path) -> None:
    source: UsnSource = make_component(UsnSource, tmp_path, paths=["C:\\data"])
    with pytest.raises(SourceError, match="live mode needs Windows") as caught:
        asyncio.run(source.open())
    assert "\n" not in str(caught.value)
    asyncio.run(source.close())


def test_reader_reads_a_journal_in_small_chunks(tmp_path: Path) -> None:
    with JournalReader(PLASO, chunk_size=100) as reader:
        items = list(reader.read_all())
    assert len(items) == 19


def test_reopened_in_place_it_does_not_replay_again(tmp_path: Path) -> None:
    source = offline(tmp_path, PLASO)

    async def scenario() -> None:
        async with Running(source) as running:
            await running.wait_for(lambda events: len(events) == len(PLASO_HISTORY))
        async with Running(source) as running:
            await running.settle(0.3)
        assert running.events == []

    asyncio.run(scenario())
