"""The live tail's own logic on any OS: where it starts, resuming from its state_dir, and
gaps in the journal. The volume is stood in for by a journal served from the real plaso
$J records with FSCTL_READ_USN_JOURNAL's documented semantics; the Win32 side itself is
tested on Windows (tests/windows/test_usn_live.py)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
import structlog
from structlog.testing import capture_logs

from pipeline import SystemClock
from pipeline.event import EventKind
from pipeline.windows.usn_events import USN_KINDS
from pipeline.windows.usn_live import ERROR_JOURNAL_ENTRY_DELETED, WindowsApiError
from pipeline.windows.usn_reasons import CLOSE
from pipeline.windows.usn_records import UsnRecord
from pipeline.windows.usn_scan import scan_buffer
from pipeline.windows.usn_state import JournalInfo
from pipeline.windows.usn_tail import JournalTail
from tests.conftest import Running

pytestmark = pytest.mark.integration

PLASO = Path(__file__).resolve().parents[3] / "shared" / "data" / "usn" / "plaso_UsnJrnl.raw"
DATA = PLASO.read_bytes()
RECORDS = [r for r in scan_buffer(DATA) if isinstance(r, UsnRecord)]


class ServedJournal:
    """A volume's journal holding the first `count` plaso records (their USN is their offset)."""

    def __init__(self, count: int, journal_id: int = 0x1D12C42) -> None:
        self.count = count
        self.journal_id = journal_id
        self.first_usn = 0
        self.reads = 0

    @property
    def next_usn(self) -> int:
        return RECORDS[self.count].usn if self.count < len(RECORDS) else len(DATA)

    def open(self) -> None:
        pass

    def close(self) -> None:
        pass

    def query(self) -> JournalInfo:
        return JournalInfo(self.journal_id, self.first_usn, self.next_usn, self.first_usn, 2**62)

    def read(
        self, start_usn: int, journal_id: int, *, only_on_close: bool, buffer_size: int
    ) -> tuple[int, bytes]:
        self.reads += 1
        if start_usn and start_usn < self.first_usn:
            raise WindowsApiError(ERROR_JOURNAL_ENTRY_DELETED, "cannot read the journal")
        out = b""
        for record in RECORDS[: self.count]:
            if record.usn < start_usn or (only_on_close and not record.reason & CLOSE):
                continue
            if 8 + len(out) + record.length > buffer_size:
                return record.usn, out
            out += DATA[record.offset : record.offset + record.length]
        return self.next_usn, out

    def path_of(self, ref: int) -> str | None:
        return None


def tail(journal: ServedJournal, state: Path | None = None, **options: Any) -> JournalTail:
    settings: dict[str, Any] = {
        "only_on_close": False,
        "poll_interval": 0.01,
        "buffer_size": 4096,
        "checkpoint_interval": 0.01,
        **options,
    }
    return JournalTail(
        ["C:\\"],
        state_dir=state,
        source="t/usn",
        wanted=USN_KINDS,
        log=structlog.get_logger("test"),
        clock=SystemClock(),
        journal=journal,
        **settings,
    )


def usns(running: Running) -> list[int]:
    return [e.meta["usn"] for e in running.events if "usn" in e.meta]


def test_a_first_start_reports_only_what_happens_from_then_on() -> None:
    journal = ServedJournal(count=2)  # the first file was created and closed before

    async def scenario() -> None:
        async with Running(tail(journal)) as running:  # type: ignore[arg-type]
            await asyncio.sleep(0.1)
            assert running.events == []
            journal.count = len(RECORDS)
            await running.wait_for(lambda events: len(events) == 10)
            await running.settle(0.1)
        assert usns(running) == [336, 496, 656, 720, 800, 880, 984, 1088, 1296, 1504]

    asyncio.run(scenario())


def test_a_small_buffer_reads_the_journal_in_several_calls() -> None:
    journal = ServedJournal(count=0)

    async def scenario() -> None:
        async with Running(tail(journal, buffer_size=300)) as running:  # type: ignore[arg-type]
            journal.count = len(RECORDS)
            await running.wait_for(lambda events: len(events) == 12)
        assert journal.reads > 7  # at most two records a read

    asyncio.run(scenario())


def test_only_on_close_asks_for_close_records(tmp_path: Path) -> None:
    journal = ServedJournal(count=0)

    async def scenario() -> None:
        async with Running(tail(journal, only_on_close=True)) as running:  # type: ignore[arg-type]
            journal.count = len(RECORDS)
            await running.wait_for(lambda events: len(events) >= 9)
            await running.settle(0.1)
        kinds = [e.kind.value for e in running.events]
        assert kinds.count("closed_write") == 3 and kinds.count("created") == 2
        moves = [(e.src_path, e.path) for e in running.events if e.kind is EventKind.MOVED]
        assert moves == [
            ("C:\\Nieuw - Tekstdocument.txt", "C:\\first.txt"),
            ("C:\\Kopie van first.txt", "C:\\second.txt"),
        ]

    asyncio.run(scenario())


def test_a_restart_resumes_exactly_where_it_stopped(tmp_path: Path) -> None:
    journal = ServedJournal(count=0)
    state = tmp_path / "state"

    async def scenario() -> None:
        async with Running(tail(journal, state)) as running:  # type: ignore[arg-type]
            journal.count = 5
            await running.wait_for(lambda events: len(events) == 3)
            await running.settle(0.1)
        assert usns(running) == [0, 112, 336]
        saved = json.loads((state / "usn-position.json").read_text())
        assert (saved["journal_id"], saved["next_usn"]) == (journal.journal_id, 496)
        journal.count = len(RECORDS)  # changes while it was stopped
        async with Running(tail(journal, state)) as running:  # type: ignore[arg-type]
            await running.wait_for(lambda events: len(events) == 9)
            await running.settle(0.1)
        assert usns(running) == [496, 656, 720, 800, 880, 984, 1088, 1296, 1504]

    asyncio.run(scenario())


def test_a_rename_half_read_last_is_read_again_after_a_restart(tmp_path: Path) -> None:
    journal = ServedJournal(count=0)
    state = tmp_path / "state"

    async def scenario() -> None:
        async with Running(tail(journal, state)) as running:  # type: ignore[arg-type]
            journal.count = 3  # ends with the rename's old-name record (USN 224)
            await running.wait_for(lambda events: len(events) == 2)
            await running.settle(0.1)
        saved = json.loads((state / "usn-position.json").read_text())
        assert saved["next_usn"] == 224
        journal.count = 5
        async with Running(tail(journal, state)) as running:  # type: ignore[arg-type]
            await running.wait_for(lambda events: len(events) == 1)
        [moved] = running.events
        assert (moved.src_path, moved.path) == ("C:\\Nieuw - Tekstdocument.txt", "C:\\first.txt")

    asyncio.run(scenario())


def test_a_recreated_journal_is_a_warning_and_an_overflow(tmp_path: Path) -> None:
    journal = ServedJournal(count=5)
    state = tmp_path / "state"

    async def scenario() -> None:
        async with Running(tail(journal, state)) as running:  # type: ignore[arg-type]
            await asyncio.sleep(0.1)
        recreated = ServedJournal(count=len(RECORDS), journal_id=0x77)
        with capture_logs() as logs:
            async with Running(tail(recreated, state)) as running:  # type: ignore[arg-type]
                await running.wait_for(lambda events: len(events) == 1)
                await running.settle(0.1)
        [overflow] = running.events
        assert (overflow.kind, overflow.path, overflow.is_dir) == (EventKind.OVERFLOW, "C:\\", True)
        assert "deleted and recreated" in overflow.meta["reason"]
        assert any(entry["event"].startswith("change journal gap") for entry in logs)
        saved = json.loads((state / "usn-position.json").read_text())
        assert (saved["journal_id"], saved["next_usn"]) == (0x77, len(DATA))

    asyncio.run(scenario())


def test_records_purged_while_reading_are_a_gap_then_reading_goes_on() -> None:
    journal = ServedJournal(count=2)

    async def scenario() -> None:
        async with Running(tail(journal)) as running:  # type: ignore[arg-type]
            await asyncio.sleep(0.1)
            journal.count = 9
            journal.first_usn = 720  # the journal wrapped past the position (224)
            await running.wait_for(lambda events: len(events) == 1)
            assert running.events[0].kind is EventKind.OVERFLOW
            assert "lost the records from USN 224" in running.events[0].meta["reason"]
            journal.count = len(RECORDS)
            await running.wait_for(lambda events: len(events) == 9)
        # From the journal's end at the gap (800) on; the rescan finds nothing: C:\ is
        # not a folder here.
        assert usns(running) == [800, 800, 880, 984, 1088, 1296, 1504, 1664]
        assert [e.kind.value for e in running.events][1:3] == ["modified", "closed_write"]

    asyncio.run(scenario())


def test_reopened_in_place_it_goes_on_where_it_was() -> None:
    journal = ServedJournal(count=0)
    source = tail(journal)  # no state_dir: the engine restarts a failed source in place

    async def scenario() -> None:
        async with Running(source) as running:  # type: ignore[arg-type]
            journal.count = 5
            await running.wait_for(lambda events: len(events) == 3)
        journal.count = len(RECORDS)
        async with Running(source) as running:  # type: ignore[arg-type]
            await running.wait_for(lambda events: len(events) == 9)
            await running.settle(0.1)
        assert usns(running)[0] == 496

    asyncio.run(scenario())
