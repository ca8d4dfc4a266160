"""Catch-up: with a state_dir, a source reports at start what changed while it was stopped."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Any

import pytest
from structlog.testing import capture_logs

from pipeline import Event, stop_tasks
from pipeline.errors import SourceError
from pipeline.sources.fanotify import FanotifySource
from pipeline.sources.inotify import InotifySource
from pipeline.sources.poll import PollSource
from tests.conftest import Running, make_component

pytestmark = pytest.mark.integration

SOURCES = {
    "fanotify": (FanotifySource, {"checkpoint_interval": "100ms"}),
    "inotify": (InotifySource, {"checkpoint_interval": "100ms"}),
    "poll": (PollSource, {"interval": "50ms", "checkpoint_interval": "100ms"}),
}


def with_state(kind: str, tmp_path: Path, state: Path | None, **options: Any) -> Any:
    cls, defaults = SOURCES[kind]
    return make_component(cls, tmp_path, state_dir=state, **{**defaults, **options})


def summary(events: list[Event], root: Path) -> list[tuple[str, str, str | None]]:
    def rel(path: str | None) -> str | None:
        return None if path is None else os.path.relpath(path, root)

    return sorted((e.kind.value, rel(e.path) or "", rel(e.src_path)) for e in events)


@pytest.mark.parametrize("kind", sorted(SOURCES))
def test_what_changed_while_stopped_is_reported_once_at_start(tmp_path: Path, kind: str) -> None:
    inbox, state = tmp_path / "inbox", tmp_path / "state"
    (inbox / "sub").mkdir(parents=True)
    for name in ("a.csv", "b.csv", "keep.csv", "sub/old.csv"):
        (inbox / name).write_text("x")
    closed = ["closed_write"] if kind != "poll" else []
    kinds = ["created", "modified", "deleted", "moved", *closed]

    async def scenario() -> None:
        source = with_state(kind, tmp_path, state, paths=[str(inbox)], events=kinds)
        async with Running(source) as watch:
            (inbox / "live.csv").write_text("x")
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

        source = with_state(kind, tmp_path, state, paths=[str(inbox)], events=kinds)
        async with Running(source) as watch:
            expected = [
                ("created", "c.csv", None),
                ("created", "new", None),
                ("created", "new/n.csv", None),
                ("deleted", "b.csv", None),
                ("modified", "a.csv", None),
                ("moved", "kept.csv", "keep.csv"),
            ]
            if closed:
                expected += [
                    ("closed_write", "a.csv", None),
                    ("closed_write", "c.csv", None),
                    ("closed_write", "new/n.csv", None),
                ]
            await watch.wait_for(lambda ev: len(ev) >= len(expected))
            await watch.settle(0.3)
            assert summary(watch.events, inbox) == sorted(expected)
            assert all(e.meta["root"] == str(inbox) for e in watch.events)
            (inbox / "after.csv").write_text("x")
            await watch.wait_for(lambda ev: "created" in watch.kinds(inbox / "after.csv"))
            await watch.settle(0.3)
            assert watch.kinds(inbox / "after.csv")[0] == "created"
            assert watch.events[len(expected)].path == str(inbox / "after.csv")

        source = with_state(kind, tmp_path, state, paths=[str(inbox)], events=kinds)
        async with Running(source) as watch:
            await watch.settle(0.3)
            assert watch.events == []  # nothing changed since

    asyncio.run(scenario())


@pytest.mark.parametrize("kind", sorted(SOURCES))
def test_a_damaged_snapshot_is_logged_and_not_caught_up_from(tmp_path: Path, kind: str) -> None:
    inbox, state = tmp_path / "inbox", tmp_path / "state"
    inbox.mkdir()
    (inbox / "a.csv").write_text("x")
    state.mkdir()
    (state / "snapshot.bin").write_bytes(b"FSPSNAP1 truncated by a full disk")

    async def scenario() -> None:
        source = with_state(kind, tmp_path, state, paths=[str(inbox)])
        with capture_logs() as logs:
            async with Running(source) as watch:
                await watch.settle(0.3)
                assert watch.events == []
        damaged = [e for e in logs if e["event"] == "saved snapshot is damaged; not catching up"]
        assert [e["log_level"] for e in damaged] == ["warning"]

    asyncio.run(scenario())


@pytest.mark.parametrize("kind", sorted(SOURCES))
def test_a_snapshot_of_other_paths_or_options_is_not_caught_up_from(
    tmp_path: Path, kind: str
) -> None:
    one, two, state = tmp_path / "one", tmp_path / "two", tmp_path / "state"
    (one / "sub").mkdir(parents=True)
    two.mkdir()

    async def scenario() -> None:
        async with Running(with_state(kind, tmp_path, state, paths=[str(one)])):
            await asyncio.sleep(0.2)
        (two / "t.csv").write_text("x")
        (one / "sub" / "deep.csv").write_text("x")
        (one / "top.csv").write_text("x")
        # A new path has no past: its content is not news. Other options: no catch-up.
        source = with_state(kind, tmp_path, state, paths=[str(one), str(two)], recursive=False)
        async with Running(source) as watch:
            await watch.settle(0.3)
            assert watch.events == []

    asyncio.run(scenario())


@pytest.mark.parametrize("kind", ["fanotify", "inotify"])
def test_a_source_restarted_in_place_catches_up_without_a_state_dir(
    tmp_path: Path, kind: str
) -> None:
    # The engine restarts a source that failed by closing and opening it again.
    async def scenario() -> None:
        source = with_state(kind, tmp_path, None, paths=[str(tmp_path)])
        events: list[Event] = []

        async def emit(event: Event) -> None:
            events.append(event)

        for name in ("before.csv", "between.csv"):
            await source.open()
            task = asyncio.create_task(source.run(emit))
            await asyncio.sleep(0.1)
            await stop_tasks(task)
            await source.close()
            (tmp_path / name).write_text("x")
        await source.open()
        task = asyncio.create_task(source.run(emit))
        await asyncio.sleep(0.3)
        await stop_tasks(task)
        await source.close()
        assert summary(events, tmp_path) == [
            ("closed_write", "before.csv", None),
            ("closed_write", "between.csv", None),
            ("created", "before.csv", None),
            ("created", "between.csv", None),
        ]

    asyncio.run(scenario())


@pytest.mark.parametrize("kind", ["fanotify", "inotify"])
def test_a_state_dir_inside_the_watched_folder_is_left_alone(tmp_path: Path, kind: str) -> None:
    state = tmp_path / ".fspipeline" / "t.sources[0]"

    async def scenario() -> None:
        source = with_state(kind, tmp_path, state, paths=[str(tmp_path)])
        async with Running(source) as watch:
            (tmp_path / "a.csv").write_text("x")
            await asyncio.sleep(0.6)  # a checkpoint is taken, then written
            snapshot = state / "snapshot.bin"
            assert snapshot.is_file()
            saved = snapshot.stat().st_mtime_ns
            await asyncio.sleep(0.6)
            assert snapshot.stat().st_mtime_ns == saved  # writing it changed nothing watched
            inside = [e for e in watch.events if e.path.startswith(f"{state}/")]
            assert inside == []  # (its own creation may be reported: it is made like any folder)

    asyncio.run(scenario())


@pytest.mark.parametrize("kind", sorted(SOURCES))
def test_a_catch_up_cut_short_by_a_stop_is_reported_at_the_next_start(
    tmp_path: Path, kind: str
) -> None:
    inbox, state = tmp_path / "inbox", tmp_path / "state"
    inbox.mkdir()

    async def scenario() -> None:
        async with Running(with_state(kind, tmp_path, state, paths=[str(inbox)])):
            await asyncio.sleep(0.2)
        (inbox / "while-down.csv").write_text("x")
        stopped = with_state(kind, tmp_path, state, paths=[str(inbox)])
        await stopped.open()  # stopped before its catch-up was emitted
        await stopped.close()
        async with Running(with_state(kind, tmp_path, state, paths=[str(inbox)])) as watch:
            await watch.wait_for(lambda ev: "created" in watch.kinds(inbox / "while-down.csv"))

    asyncio.run(scenario())


def test_a_source_that_failed_to_start_saves_nothing(tmp_path: Path) -> None:
    inbox, state = tmp_path / "inbox", tmp_path / "state"
    inbox.mkdir()

    async def scenario() -> None:
        source = with_state("inotify", tmp_path, state, paths=[str(inbox / "missing")])
        with pytest.raises(SourceError):
            await source.open()
        await source.close()
        assert not (state / "snapshot.bin").exists()

    asyncio.run(scenario())
