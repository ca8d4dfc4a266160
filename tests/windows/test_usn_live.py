"""The `usn` source in live mode on a real NTFS volume (the GitHub windows-latest job, which
runs as administrator): a file's life as events, and resuming after a restart."""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path
from typing import Any

from pipeline.sources.usn import UsnSource
from pipeline.windows.usn_live import VolumeJournal, volume_of
from pipeline.windows.usn_state import Position, PositionFile
from tests.conftest import Running, make_component

TIMEOUT = 30.0  # the journal is read every 50 ms; CI machines can be slow


def live(tmp_path: Path, folder: Path, state: Path | None = None, **options: Any) -> UsnSource:
    source: UsnSource = make_component(
        UsnSource,
        tmp_path,
        state_dir=state,
        paths=[str(folder)],
        poll_interval="50ms",
        checkpoint_interval="100ms",
        **options,
    )
    return source


def real(path: Path) -> str:
    return os.path.realpath(path)  # long names: the runner's TEMP is an 8.3 short path


def kinds_of(running: Running, path: str) -> list[str]:
    return [e.kind.value for e in running.events if e.path.lower() == path.lower()]


def test_a_files_life_is_reported(tmp_path: Path) -> None:
    folder = tmp_path / "watched"
    folder.mkdir()
    first, second = real(folder / "a.txt"), real(folder / "b.txt")

    async def scenario() -> None:
        async with Running(live(tmp_path, folder)) as running:
            with open(first, "w") as handle:
                handle.write("hello")
            await running.wait_for(lambda _: "closed_write" in kinds_of(running, first), TIMEOUT)
            os.rename(first, second)
            await running.wait_for(lambda _: "moved" in kinds_of(running, second), TIMEOUT)
            os.remove(second)
            await running.wait_for(lambda _: "deleted" in kinds_of(running, second), TIMEOUT)
            (tmp_path / "outside.txt").write_text("not watched")
            await running.settle(0.5)
        kinds = kinds_of(running, first)  # other services may add `attrib` between them
        assert kinds[0] == "created" and "modified" in kinds and kinds.count("closed_write") == 1
        [moved] = [e for e in running.events if e.kind.value == "moved"]
        assert moved.src_path is not None and moved.src_path.lower() == first.lower()
        assert all(e.path.lower().startswith(real(folder).lower()) for e in running.events)
        meta = running.events[0].meta
        assert {"usn", "reasons", "file_reference", "parent_reference", "timestamp"} <= set(meta)

    asyncio.run(scenario())


def test_only_on_close_reports_a_write_once(tmp_path: Path) -> None:
    folder = tmp_path / "watched"
    folder.mkdir()
    path = real(folder / "c.bin")

    async def scenario() -> None:
        async with Running(live(tmp_path, folder, only_on_close=True)) as running:
            with open(path, "wb") as handle:
                for _ in range(20):
                    handle.write(b"x" * 4096)
                    handle.flush()
            await running.wait_for(lambda _: "closed_write" in kinds_of(running, path), TIMEOUT)
            await running.settle(0.5)
        assert kinds_of(running, path) == ["created", "modified", "closed_write"]

    asyncio.run(scenario())


def test_a_restart_resumes_where_it_stopped(tmp_path: Path) -> None:
    folder = tmp_path / "watched"
    folder.mkdir()
    state = tmp_path / "state"
    before, during = real(folder / "before.txt"), real(folder / "during.txt")

    async def scenario() -> None:
        async with Running(live(tmp_path, folder, state)) as running:
            Path(before).write_text("1")
            await running.wait_for(lambda _: "closed_write" in kinds_of(running, before), TIMEOUT)
        assert (state / "usn-position.json").exists()
        Path(during).write_text("written while the source was stopped")
        async with Running(live(tmp_path, folder, state)) as running:
            await running.wait_for(lambda _: "closed_write" in kinds_of(running, during), TIMEOUT)
            await running.settle(0.5)
        assert "closed_write" not in kinds_of(running, before)  # the first run reported it
        assert kinds_of(running, during)[0] == "created"

    asyncio.run(scenario())


def test_another_journal_id_is_an_overflow_and_a_rescan(tmp_path: Path) -> None:
    folder = tmp_path / "watched"
    folder.mkdir()
    state = tmp_path / "state"
    volume = volume_of(real(folder))
    journal = VolumeJournal(volume)
    journal.open()
    try:
        info = journal.query()
    finally:
        journal.close()
    stale = Position(volume, info.journal_id ^ 1, info.next_usn, time.time() - 60)
    PositionFile(state).save(stale)
    changed = real(folder / "changed.txt")
    Path(changed).write_text("changed in the gap")

    async def scenario() -> None:
        async with Running(live(tmp_path, folder, state)) as running:
            await running.wait_for(lambda _: "closed_write" in kinds_of(running, changed), TIMEOUT)
        overflow = [e for e in running.events if e.kind.value == "overflow"]
        assert [e.path.lower() for e in overflow] == [real(folder).lower()]
        scanned = [e for e in running.events if e.path.lower() == changed.lower()]
        assert scanned[0].meta["scan"] is True

    asyncio.run(scenario())
