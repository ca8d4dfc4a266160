"""The `windows` source on the real ReadDirectoryChangesW (run by the windows-latest job).

Every test drives real files in a temporary folder and waits for the events a user would
see; timing bounds are generous (a shared CI runner), nothing is mocked.
"""

from __future__ import annotations

import asyncio
import ctypes
import os
import shutil
import subprocess
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

import pytest

from pipeline.event import Event, EventKind
from pipeline.sources.windows import WindowsSource
from pipeline.windows import win32
from pipeline.windows.rdcw_paths import from_extended, to_extended
from tests.conftest import Running, make_component

TIMEOUT = 15.0


def long_form(path: Path | str) -> str:
    """`path` with every 8.3 alias expanded (the runner's TEMP is C:\\Users\\RUNNER~1\\...)."""
    resolved = win32.long_path_name(to_extended(str(path)))
    assert resolved is not None, f"GetLongPathNameW failed for {path}"
    return from_extended(resolved)


def short_form(path: Path | str) -> str:
    """GetShortPathNameW: `path` with the 8.3 alias of every part that has one."""
    out = ctypes.create_unicode_buffer(32_768)
    length = win32.kernel32().GetShortPathNameW(to_extended(str(path)), out, 32_768)
    assert length, f"GetShortPathNameW failed for {path}: error {win32.last_error()}"
    return from_extended(out.value)


def set_short_name(path: Path | str, alias: str) -> None:
    """Give `path` the 8.3 alias `alias` (needs an administrator, as on the CI runner)."""
    done = subprocess.run(
        ["fsutil", "file", "setshortname", str(path), alias],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, f"fsutil setshortname failed: {done.stdout}{done.stderr}"


@pytest.fixture
def watched(tmp_path: Path) -> Path:
    folder = tmp_path / "watched"
    folder.mkdir()
    return Path(long_form(folder))


def source_for(
    config_dir: Path, root: Path | str, state_dir: Path | None = None, **options: Any
) -> WindowsSource:
    source: WindowsSource = make_component(
        WindowsSource, config_dir, state_dir, paths=[str(root)], **options
    )
    return source


def run(scenario: Callable[[], Coroutine[Any, Any, None]]) -> None:
    asyncio.run(scenario())


def has(
    kind: EventKind, path: Path | str, src: Path | str | None = None
) -> Callable[[list[Event]], bool]:
    def check(events: list[Event]) -> bool:
        return any(
            e.kind is kind and e.path == str(path) and (src is None or e.src_path == str(src))
            for e in events
        )

    return check


def first(events: list[Event], kind: EventKind, path: Path | str) -> Event:
    return next(e for e in events if e.kind is kind and e.path == str(path))


@pytest.mark.parametrize("extended", [True, False], ids=["extended", "basic"])
def test_create_write_rename_delete(tmp_path: Path, watched: Path, extended: bool) -> None:
    async def scenario() -> None:
        async with Running(source_for(tmp_path, watched, extended=extended)) as running:
            draft, final = watched / "a.tmp", watched / "a.csv"
            draft.write_bytes(b"x" * 100)
            await running.wait_for(has(EventKind.CREATED, draft), TIMEOUT)
            os.rename(draft, final)
            await running.wait_for(has(EventKind.MOVED, final, draft), TIMEOUT)
            with open(final, "ab") as handle:
                handle.write(b"more")
            await running.wait_for(has(EventKind.MODIFIED, final), TIMEOUT)
            inode = os.stat(final).st_ino
            os.remove(final)
            await running.wait_for(has(EventKind.DELETED, final), TIMEOUT)

            events = running.events
            assert all(not e.is_dir for e in events)
            assert all(e.meta["root"] == str(watched) for e in events)
            assert first(events, EventKind.CREATED, draft).source == "t/windows"
            kinds = [e.kind for e in events if e.path == str(final)]
            assert kinds[0] is EventKind.MOVED and kinds[-1] is EventKind.DELETED
            if extended:  # file id, size and times come with the records
                modified = [
                    e for e in events if e.kind is EventKind.MODIFIED and e.path == str(final)
                ]
                assert all(e.meta["inode"] == inode for e in modified)
                assert any(e.meta["size"] == 104 for e in modified)
                assert all(e.meta["mtime"] > 1_600_000_000 for e in modified)
            else:
                assert all(set(e.meta) == {"root"} for e in events)

    run(scenario)


def test_folders_and_a_move_between_them(tmp_path: Path, watched: Path) -> None:
    async def scenario() -> None:
        async with Running(source_for(tmp_path, watched)) as running:
            (watched / "one").mkdir()
            (watched / "two").mkdir()
            (watched / "one" / "f.csv").write_text("data")
            await running.wait_for(has(EventKind.CREATED, watched / "one" / "f.csv"), TIMEOUT)
            os.rename(watched / "one" / "f.csv", watched / "two" / "f.csv")
            # NTFS reports it as a removal and an addition; their file id pairs them.
            moved = has(EventKind.MOVED, watched / "two" / "f.csv", watched / "one" / "f.csv")
            await running.wait_for(moved, TIMEOUT)
            assert first(running.events, EventKind.CREATED, watched / "one").is_dir
            assert not any(e.kind is EventKind.MODIFIED and e.is_dir for e in running.events)
            assert not any(e.kind is EventKind.DELETED for e in running.events)

    run(scenario)


def test_a_folder_moved_in_from_outside_is_reported_with_what_it_holds(
    tmp_path: Path, watched: Path
) -> None:
    outside = tmp_path / "outside"
    (outside / "deep").mkdir(parents=True)
    (outside / "deep" / "x.csv").write_text("x")

    async def scenario() -> None:
        async with Running(source_for(tmp_path, watched)) as running:
            os.rename(outside, watched / "arrived")
            inner = watched / "arrived" / "deep" / "x.csv"
            await running.wait_for(has(EventKind.CREATED, inner), TIMEOUT)
            # Windows reports an arrival from outside as an addition: nothing tells it
            # from a new folder, and nothing at all is said of what it holds.
            assert first(running.events, EventKind.CREATED, watched / "arrived").is_dir
            assert first(running.events, EventKind.CREATED, inner).meta["scan"] is True
            assert first(running.events, EventKind.CREATED, inner.parent).is_dir

    run(scenario)


def test_a_tiny_buffer_overflows_in_a_burst_and_nothing_is_lost(
    tmp_path: Path, watched: Path
) -> None:
    names = [watched / f"burst-{index:04}.csv" for index in range(400)]

    async def scenario() -> None:
        source = source_for(tmp_path, watched, buffer_size=256, extended=False)
        async with Running(source) as running:
            # Written without yielding to the loop: nothing is read meanwhile, so the
            # 256-byte buffer cannot keep up.
            for path in names:
                path.write_text(path.name)
            await running.wait_for(has(EventKind.OVERFLOW, watched), TIMEOUT)

            def all_reported(events: list[Event]) -> bool:
                created = {e.path for e in events if e.kind is EventKind.CREATED}
                return created >= {str(p) for p in names}

            await running.wait_for(all_reported, TIMEOUT * 2)
            overflow = first(running.events, EventKind.OVERFLOW, watched)
            assert overflow.is_dir
            assert any(e.meta.get("scan") for e in running.events)

    run(scenario)


def test_paths_longer_than_max_path(tmp_path: Path, watched: Path) -> None:
    deep = watched.joinpath(*[f"level-{index:02}-{'d' * 40}" for index in range(6)])
    target = deep / "beyond-max-path.csv"
    assert len(str(target)) > 300

    async def scenario() -> None:
        async with Running(source_for(tmp_path, watched)) as running:
            os.makedirs(to_extended(str(deep)))
            with open(to_extended(str(target)), "w", encoding="utf-8") as handle:
                handle.write("far down")
            await running.wait_for(has(EventKind.CREATED, target), TIMEOUT)
            os.remove(to_extended(str(target)))
            await running.wait_for(has(EventKind.DELETED, target), TIMEOUT)
            assert first(running.events, EventKind.CREATED, deep).is_dir

    run(scenario)


def test_short_names_are_reported_as_long_names(tmp_path: Path) -> None:
    folder = tmp_path / "watched folder"
    folder.mkdir()
    set_short_name(folder, "WATCHF~9")
    long_file = folder / "Quarterly Report Final.csv"
    long_file.write_text("q1")
    set_short_name(long_file, "QRF~9.CSV")
    root = Path(long_form(folder))
    short_root = short_form(folder)
    assert short_root.endswith("\\WATCHF~9"), short_root

    async def scenario() -> None:
        # Configured by its short name: events still carry the long one.
        async with Running(source_for(tmp_path, short_root)) as running:
            with open(os.path.join(short_root, "QRF~9.CSV"), "a", encoding="utf-8") as handle:
                handle.write("q2")  # written through the short name
            await running.wait_for(has(EventKind.MODIFIED, root / long_file.name), TIMEOUT)
            os.rename(os.path.join(short_root, "QRF~9.CSV"), os.path.join(short_root, "done.csv"))
            moved = has(EventKind.MOVED, root / "done.csv", root / long_file.name)
            await running.wait_for(moved, TIMEOUT)
            assert all("~9" not in e.path for e in running.events)
            assert all(e.meta["root"] == str(root) for e in running.events)

    run(scenario)


def test_changes_while_stopped_are_caught_up_at_the_next_start(
    tmp_path: Path, watched: Path
) -> None:
    state = tmp_path / "state"
    (watched / "kept.csv").write_text("1")
    (watched / "edited.csv").write_text("1")

    async def first_run() -> None:
        async with Running(source_for(tmp_path, watched, state)) as running:
            await running.settle(0.2)

    async def second_run() -> None:
        async with Running(source_for(tmp_path, watched, state)) as running:
            await running.wait_for(lambda events: len(events) >= 3, TIMEOUT)
            await running.settle(0.3)
            got = {(e.kind, e.path) for e in running.events}
            assert got == {
                (EventKind.DELETED, str(watched / "kept.csv")),
                (EventKind.MODIFIED, str(watched / "edited.csv")),
                (EventKind.CREATED, str(watched / "new.csv")),
            }

    run(first_run)
    (watched / "kept.csv").unlink()
    (watched / "edited.csv").write_text("a longer content")
    (watched / "new.csv").write_text("")
    run(second_run)


def test_a_deleted_watched_folder_is_reported_and_watched_again_when_back(
    tmp_path: Path, watched: Path
) -> None:
    (watched / "inside.csv").write_text("x")

    async def scenario() -> None:
        async with Running(source_for(tmp_path, watched)) as running:
            shutil.rmtree(watched)
            await running.wait_for(has(EventKind.DELETED, watched), TIMEOUT)
            assert has(EventKind.DELETED, watched / "inside.csv")(running.events)
            for _ in range(50):  # the name is free once the source let go of its handle
                try:
                    watched.mkdir()
                    break
                except PermissionError:
                    await asyncio.sleep(0.1)
            (watched / "again.csv").write_text("y")
            await running.wait_for(has(EventKind.CREATED, watched / "again.csv"), TIMEOUT)
            (watched / "live.csv").write_text("z")  # watched live again, not only scanned
            await running.wait_for(has(EventKind.CREATED, watched / "live.csv"), TIMEOUT)

    run(scenario)
