"""Catch-up state (pipeline/sources/catchup.py): what is saved when, and what is reported."""

from __future__ import annotations

import asyncio
from pathlib import Path

import structlog

from pipeline.event import EventKind
from pipeline.sources.catchup import Checkpoints, changes_since, within
from pipeline.sources.snapfile import decode
from pipeline.sources.snapshot import Entry
from pipeline.sources.treeindex import pseudo_entry

FILE = 0o100644


def entry(ino: int, size: int = 1, mtime: int = 10**18) -> Entry:
    return (FILE, 1, ino, size, mtime, mtime, 0, 0)


def test_within_keeps_the_paths_under_the_given_roots() -> None:
    entries = {"/a": entry(1), "/a/x": entry(2), "/ab": entry(3), "/b/y": entry(4)}
    assert sorted(within(entries, ["/a"])) == ["/a", "/a/x"]


def test_changes_since_compares_only_the_covered_roots() -> None:
    saved = {"/a/x": entry(1), "/a/gone": entry(2), "/b/old": entry(3)}
    current = {"/a/x": entry(1, size=5), "/a/new": entry(4), "/b/other": entry(5)}
    changes = changes_since(saved, current, ["/a"])
    assert sorted((c.kind, c.path) for c in changes) == [
        (EventKind.CREATED, "/a/new"),
        (EventKind.DELETED, "/a/gone"),
        (EventKind.MODIFIED, "/a/x"),
    ]


def test_a_file_saved_as_unknown_is_reported_changed() -> None:
    saved = {"/a/x": pseudo_entry(0, folder=False)}
    assert [c.kind for c in changes_since(saved, {"/a/x": entry(1)}, ["/a"])] == [
        EventKind.MODIFIED
    ]


def checkpoints(tmp_path: Path, interval: float = 1.0) -> Checkpoints:
    return Checkpoints(tmp_path, {"source": "t"}, interval, structlog.get_logger())


def test_a_snapshot_is_written_one_interval_after_it_was_taken(tmp_path: Path) -> None:
    async def scenario() -> None:
        saves = checkpoints(tmp_path)
        assert saves.load(["/a"]) is None  # first start: nothing to catch up from
        taken: list[int] = []

        def take(n: int) -> dict[str, Entry]:
            taken.append(n)
            return {"/a": entry(n)}

        assert saves.due(dirty=False) is None  # nothing to do: no timer
        assert saves.tick(100.0, True, lambda: take(1))
        assert saves.due(dirty=True) == 101.0
        assert not saves.tick(100.5, True, lambda: take(2))  # too soon for both
        assert not saves.path.exists()
        assert saves.tick(101.0, True, lambda: take(3))  # writes 1, takes 3
        for _ in range(500):
            if saves.path.exists():
                break
            await asyncio.sleep(0.01)
        assert decode(saves.path.read_bytes())[1] == {"/a": entry(1)}
        assert taken == [1, 3]
        # Stopped while not certain of the state reached: the last snapshot taken is saved.
        await saves.close(None)
        assert decode(saves.path.read_bytes())[1] == {"/a": entry(3)}

    asyncio.run(scenario())


def test_what_is_saved_at_close_is_loaded_for_the_same_roots_and_scope(tmp_path: Path) -> None:
    async def scenario() -> None:
        saves = checkpoints(tmp_path)
        saves.load(["/a", "/b"])
        await saves.close({"/a/x": entry(1), "/b/y": entry(2)})
        loaded = checkpoints(tmp_path).load(["/b", "/c"])
        assert loaded == ({"/b/y": entry(2)}, ["/b"])
        other = Checkpoints(
            tmp_path, {"source": "t", "recursive": False}, 1.0, structlog.get_logger()
        )
        assert other.load(["/a"]) is None

    asyncio.run(scenario())
