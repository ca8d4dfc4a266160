"""Catch-up: with a state_dir, the qt source reports at start what changed while stopped."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest
from structlog.testing import capture_logs
from tests.conftest import Running

from qt_testkit import place, qt_source, run, summary

pytestmark = pytest.mark.integration


def test_what_changed_while_stopped_is_reported_once_at_start(tmp_path: Path, inbox: Path) -> None:
    state = tmp_path / "state"
    (inbox / "sub").mkdir()
    for name in ("a.csv", "b.csv", "keep.csv", "sub/old.csv"):
        (inbox / name).write_text("x")

    def source() -> Running:
        return Running(qt_source(tmp_path, state, checkpoint_interval="100ms"))

    async def scenario() -> None:
        async with source() as watch:
            place(inbox / "live.csv")
            await watch.wait_for(lambda ev: "created" in watch.kinds(inbox / "live.csv"))
            await asyncio.sleep(0.3)
        assert (state / "snapshot.bin").is_file()
        # While stopped:
        (inbox / "c.csv").write_text("new")
        with open(inbox / "a.csv", "a") as handle:
            handle.write("more")
        (inbox / "b.csv").unlink()
        os.rename(inbox / "keep.csv", inbox / "kept.csv")
        (inbox / "new").mkdir()
        (inbox / "new" / "n.csv").write_text("x")

        async with source() as watch:
            expected = [
                ("created", "c.csv", None),
                ("created", "new", None),
                ("created", "new/n.csv", None),
                ("deleted", "b.csv", None),
                ("modified", "a.csv", None),
                ("moved", "kept.csv", "keep.csv"),
            ]
            await watch.wait_for(lambda ev: len(ev) >= len(expected))
            await watch.settle(0.3)
            assert sorted(summary(watch.events, inbox)) == sorted(expected)
            assert all(e.meta["root"] == str(inbox) for e in watch.events)
            assert all(e.meta["scan"] is True for e in watch.events)
            place(inbox / "after.csv")
            await watch.wait_for(lambda ev: "created" in watch.kinds(inbox / "after.csv"))
            await watch.settle(0.3)
            assert watch.events[len(expected)].path == str(inbox / "after.csv")
            assert "scan" not in watch.events[len(expected)].meta

        async with source() as watch:
            await watch.settle(0.3)
            assert watch.events == []  # nothing changed since

    run(scenario())


def test_a_state_dir_inside_the_watched_folder_is_not_reported(tmp_path: Path, inbox: Path) -> None:
    state = inbox / ".fspipeline"

    async def scenario() -> None:
        source = qt_source(tmp_path, state, checkpoint_interval="50ms")
        async with Running(source) as watch:
            for i in range(3):
                place(inbox / f"f{i}.csv")
                await asyncio.sleep(0.15)  # a checkpoint is written each time
            await watch.settle(0.3)
            assert sorted(e.path for e in watch.events) == [
                str(inbox / f"f{i}.csv") for i in range(3)
            ]
        assert (state / "snapshot.bin").is_file()

    run(scenario())


def test_a_damaged_snapshot_is_logged_and_not_caught_up_from(tmp_path: Path, inbox: Path) -> None:
    state = tmp_path / "state"
    (inbox / "a.csv").write_text("x")
    state.mkdir()
    (state / "snapshot.bin").write_bytes(b"FSPSNAP1 truncated by a full disk")

    async def scenario() -> None:
        with capture_logs() as logs:
            async with Running(qt_source(tmp_path, state)) as watch:
                await watch.settle(0.3)
                assert watch.events == []
        damaged = [e for e in logs if e["event"] == "saved snapshot is damaged; not catching up"]
        assert [e["log_level"] for e in damaged] == ["warning"]

    run(scenario())


def test_a_source_restarted_in_place_reports_what_changed_meanwhile(
    tmp_path: Path, inbox: Path
) -> None:
    # The engine restarts a failed source by opening the same object again.
    (inbox / "a.csv").write_text("x")

    async def scenario() -> None:
        source = qt_source(tmp_path)
        async with Running(source) as watch:
            await watch.settle(0.2)
        (inbox / "a.csv").unlink()
        place(inbox / "b.csv")
        async with Running(source) as watch:
            await watch.wait_for(lambda ev: len(ev) == 2)
            await watch.settle(0.3)
            assert sorted(summary(watch.events, inbox)) == [
                ("created", "b.csv", None),
                ("deleted", "a.csv", None),
            ]

    run(scenario())
