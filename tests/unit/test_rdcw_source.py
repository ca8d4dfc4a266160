"""The `windows` source's own logic on real files, with the Win32 reader scripted.

Only the reader (a thread on a ReadDirectoryChangesW handle) is replaced: the test hands
the source the buffers Windows would fill, built from the documented layout, while the
files change for real in a temporary folder. Overflows, damaged buffers, a lost folder
and a restart are then recovered by the real rescans. The live API itself is tested by
tests/windows/ on the GitHub Actions windows-latest job.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from pipeline.event import EventKind
from pipeline.sources.windows import WindowsSource
from pipeline.windows.rdcw_reader import Chunk, DirectoryReader, Outcome
from tests.conftest import Running, make_component
from tests.unit.test_rdcw_decode import basic_record, chain

ADDED, REMOVED, MODIFIED, OLD, NEW = 1, 2, 3, 4, 5
READERS: dict[str, ScriptedReader] = {}


class ScriptedReader(DirectoryReader):
    """Stands in for the handle and its thread: `feed` hands over what Windows would."""

    def start(self) -> None:
        if not os.path.isdir(self.api_path):
            raise FileNotFoundError(2, "The system cannot find the file specified")
        READERS[self.root] = self

    def stop(self) -> None:
        if READERS.get(self.root) is self:
            del READERS[self.root]

    def feed(self, *pairs: tuple[int, str]) -> None:
        self.put(Chunk(self.root, Outcome.DATA, chain(*(basic_record(a, n) for a, n in pairs))))

    def put(self, chunk: Chunk) -> None:
        self.queue.queue.put_nowait(chunk)


def source_for(tmp_path: Path, state_dir: Path | None = None, **options: Any) -> WindowsSource:
    source: WindowsSource = make_component(
        WindowsSource, tmp_path, state_dir, **{"paths": ["watched"], **options}
    )
    source.reader_type = ScriptedReader
    return source


def run(test: Callable[[], Coroutine[Any, Any, None]]) -> None:
    READERS.clear()
    asyncio.run(test())


def relative(path: str, root: Path) -> str:
    return os.path.relpath(path, root).replace(os.sep, "/")


def seen(running: Running, root: Path) -> list[tuple[str, str, str | None, bool]]:
    """(kind, path, src_path, found by a scan) of each event, paths relative to `root`."""
    return [
        (
            e.kind.value,
            relative(e.path, root),
            relative(e.src_path, root) if e.src_path else None,
            bool(e.meta.get("scan")),
        )
        for e in running.events
    ]


def test_records_become_events_under_the_watched_folder(tmp_path: Path) -> None:
    root = tmp_path / "watched"
    root.mkdir()

    async def scenario() -> None:
        async with Running(source_for(tmp_path)) as running:
            reader = READERS[str(root)]
            (root / "sub").mkdir()
            (root / "sub" / "a.tmp").write_text("data")
            reader.feed((ADDED, "sub"), (ADDED, "sub\\a.tmp"), (MODIFIED, "sub\\a.tmp"),
                        (MODIFIED, "sub\\a.tmp"), (MODIFIED, "sub"))  # fmt: skip
            await running.wait_for(lambda events: len(events) >= 3)
            (root / "sub" / "a.tmp").rename(root / "sub" / "a.csv")
            reader.feed((OLD, "sub\\a.tmp"), (NEW, "sub\\a.csv"))
            await running.wait_for(lambda events: len(events) >= 4)
            await running.settle(0.1)
            assert seen(running, root) == [
                ("created", "sub", None, False),
                ("created", "sub/a.tmp", None, False),
                ("modified", "sub/a.tmp", None, False),
                ("moved", "sub/a.csv", "sub/a.tmp", False),
            ]
            assert [e.is_dir for e in running.events] == [True, False, False, False]
            assert running.events[0].meta == {"root": str(root)}
            assert running.events[0].source == "t/windows"

    run(scenario)


def test_a_folder_moved_in_from_outside_is_listed_without_repeats(tmp_path: Path) -> None:
    root = tmp_path / "watched"
    root.mkdir()
    outside = tmp_path / "outside"
    (outside / "deep").mkdir(parents=True)
    (outside / "one.csv").write_text("1")
    (outside / "deep" / "two.csv").write_text("2")

    async def scenario() -> None:
        async with Running(source_for(tmp_path)) as running:
            reader = READERS[str(root)]
            outside.rename(root / "arrived")
            reader.feed((NEW, "arrived"))  # all Windows says of a folder moved in
            await running.wait_for(lambda events: len(events) >= 4)
            # A file made in it right after: its record comes after the scan found it.
            (root / "arrived" / "three.csv").write_text("3")
            reader.feed((ADDED, "arrived\\deep\\two.csv"), (ADDED, "arrived\\three.csv"))
            await running.settle(0.2)
            assert seen(running, root) == [
                ("moved", "arrived", None, False),
                ("created", "arrived/deep", None, True),
                ("created", "arrived/deep/two.csv", None, True),
                ("created", "arrived/one.csv", None, True),
                ("created", "arrived/three.csv", None, False),
            ]

    run(scenario)


def test_an_old_name_left_alone_becomes_deleted_after_move_wait(tmp_path: Path) -> None:
    root = tmp_path / "watched"
    root.mkdir()
    (root / "leaving.csv").write_text("x")

    async def scenario() -> None:
        async with Running(source_for(tmp_path, move_wait="500ms")) as running:
            (root / "leaving.csv").unlink()  # renamed out of the watched folder
            READERS[str(root)].feed((OLD, "leaving.csv"))
            await asyncio.sleep(0.05)
            assert running.events == []  # still waiting for a new name
            await running.wait_for(lambda events: len(events) == 1, timeout=5)
            assert seen(running, root) == [("deleted", "leaving.csv", None, False)]

    run(scenario)


def test_an_overflow_is_reported_then_the_rescan_tells_what_was_dropped(tmp_path: Path) -> None:
    root = tmp_path / "watched"
    root.mkdir()
    for name in ("same", "changed", "removed", "renamed"):
        (root / name).write_text(name)

    async def scenario() -> None:
        async with Running(source_for(tmp_path)) as running:
            reader = READERS[str(root)]
            (root / "told").write_text("reported live")
            await asyncio.sleep(0.1)  # the records come a moment after the write
            reader.feed((ADDED, "told"), (MODIFIED, "told"))
            await running.wait_for(lambda events: len(events) == 2)
            # A burst the buffer could not hold: none of it is told.
            (root / "changed").write_text("a longer content than before")
            (root / "removed").unlink()
            (root / "renamed").rename(root / "now-here")
            for index in range(50):
                (root / f"burst-{index:02}").write_text(str(index))
            reader.put(Chunk(str(root), Outcome.OVERFLOW))
            await running.wait_for(lambda events: len(events) >= 2 + 1 + 53)
            await running.settle(0.1)
            got = seen(running, root)[2:]
            assert got[0] == ("overflow", ".", None, False)
            assert running.events[2].is_dir and running.events[2].path == str(root)
            assert sorted(got[1:]) == sorted(
                [("moved", "now-here", "renamed", True), ("deleted", "removed", None, True),
                 ("modified", "changed", None, True)]
                + [("created", f"burst-{index:02}", None, True) for index in range(50)]
            )  # fmt: skip
            scanned = next(e for e in running.events if e.path.endswith("burst-07"))
            assert scanned.meta["size"] == 1 and scanned.meta["inode"] > 0

    run(scenario)


def test_a_damaged_buffer_keeps_its_good_records_and_rescans_the_rest(tmp_path: Path) -> None:
    root = tmp_path / "watched"
    root.mkdir()

    async def scenario() -> None:
        async with Running(source_for(tmp_path)) as running:
            (root / "good.csv").write_text("1")
            (root / "lost.csv").write_text("2")
            await asyncio.sleep(0.1)
            whole = chain(basic_record(ADDED, "good.csv"), basic_record(ADDED, "lost.csv"))
            READERS[str(root)].put(Chunk(str(root), Outcome.DATA, whole[:30]))  # cut short
            await running.wait_for(lambda events: len(events) >= 3)
            await running.settle(0.1)
            assert seen(running, root) == [
                ("created", "good.csv", None, False),
                ("overflow", ".", None, False),
                ("created", "lost.csv", None, True),
            ]

    run(scenario)


def test_a_folder_whose_handle_fails_is_rescanned_and_watched_again(tmp_path: Path) -> None:
    root = tmp_path / "watched"
    root.mkdir()
    (root / "a.txt").write_text("a")

    async def scenario() -> None:
        async with Running(source_for(tmp_path)) as running:
            reader = READERS[str(root)]
            (root / "a.txt").unlink()
            root.rmdir()
            reader.put(Chunk(str(root), Outcome.FAILED, error="Access is denied"))
            await running.wait_for(lambda events: len(events) == 2)
            assert seen(running, root) == [
                ("deleted", "a.txt", None, True),
                ("deleted", ".", None, True),
            ]
            assert str(root) not in READERS  # stopped; tried again every second
            root.mkdir()
            (root / "b.txt").write_text("b")
            await running.wait_for(lambda events: len(events) == 4, timeout=10)
            assert seen(running, root)[2:] == [
                ("created", ".", None, True),
                ("created", "b.txt", None, True),
            ]
            assert str(root) in READERS

    run(scenario)


def test_changes_made_while_stopped_are_reported_at_the_next_start(tmp_path: Path) -> None:
    root = tmp_path / "watched"
    root.mkdir()
    (root / "kept").write_text("1")
    (root / "edited").write_text("1")
    state = tmp_path / "state"

    async def first_run() -> None:
        async with Running(source_for(tmp_path, state)) as running:
            await running.settle(0.05)
        assert (state / "snapshot.bin").exists()

    async def second_run() -> None:
        async with Running(source_for(tmp_path, state)) as running:
            await running.wait_for(lambda events: len(events) >= 3)
            await running.settle(0.1)
            assert sorted(seen(running, root)) == [
                ("created", "new", None, True),
                ("deleted", "kept", None, True),
                ("modified", "edited", None, True),
            ]

    run(first_run)
    (root / "kept").unlink()
    (root / "edited").write_text("longer now")
    (root / "new").write_text("")
    run(second_run)


def test_a_state_dir_inside_the_watched_folder_is_never_reported(tmp_path: Path) -> None:
    root = tmp_path / "watched"
    root.mkdir()

    async def scenario() -> None:
        source = source_for(tmp_path, root / ".state", checkpoint_interval="50ms")
        async with Running(source) as running:
            (root / "x").write_text("x")
            READERS[str(root)].feed((ADDED, ".state\\snapshot.bin"), (ADDED, "x"))
            await running.wait_for(lambda events: len(events) == 1)
            await asyncio.sleep(0.3)  # checkpoints are written meanwhile
            READERS[str(root)].put(Chunk(str(root), Outcome.OVERFLOW))
            await running.wait_for(lambda events: len(events) == 2)
            await running.settle(0.1)
            assert seen(running, root) == [
                ("created", "x", None, False),
                ("overflow", ".", None, False),
            ]
        assert (root / ".state" / "snapshot.bin").exists()

    run(scenario)


def test_kinds_windows_cannot_see_are_refused_with_the_way_out(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="add the `ready` stage"):
        make_component(WindowsSource, tmp_path, paths=["x"], events=["closed_write"])
    with pytest.raises(ValidationError, match="between 64 bytes and 16MiB"):
        make_component(WindowsSource, tmp_path, paths=["x"], buffer_size="32MiB")
    source = make_component(WindowsSource, tmp_path, paths=["x"], events=["moved", "deleted"])
    assert source.wanted == {EventKind.MOVED, EventKind.DELETED}
