"""The inotify source against the real kernel."""

from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from pipeline import Event, EventKind, stop_tasks
from pipeline.errors import SourceError
from pipeline.sources.inotify import InotifySource
from tests.conftest import Running, make_component
from tests.integration.test_poll_source import unprivileged

pytestmark = pytest.mark.integration


def run(coro: object) -> None:
    asyncio.run(coro)  # type: ignore[arg-type]


class AlreadyOpen(Running):
    """`Running` for a source opened beforehand (under another uid, say)."""

    async def __aenter__(self) -> Running:
        async def emit(event: Event) -> None:
            self.events.append(event)

        self._task = asyncio.create_task(self.source.run(emit))
        return self


def test_write_and_close_reports_each_kind_in_order(tmp_path: Path) -> None:
    async def scenario() -> None:
        source = make_component(InotifySource, tmp_path, paths=[str(tmp_path)])
        async with Running(source) as watch:
            target = tmp_path / "a.csv"
            with open(target, "w") as handle:
                handle.write("a,b\n")
                handle.flush()
            with open(target) as handle:
                handle.read()
            await watch.wait_for(lambda ev: watch.kinds(target)[-1:] == ["closed_nowrite"])
            assert watch.kinds(target) == [
                "created",
                "opened",
                "modified",
                "closed_write",
                "opened",
                "closed_nowrite",
            ]
            event = watch.events[0]
            assert event.source == "t/inotify"
            assert event.meta["root"] == str(tmp_path)
            assert not event.is_dir

    run(scenario())


def test_only_the_requested_kinds_are_reported(tmp_path: Path) -> None:
    async def scenario() -> None:
        source = make_component(
            InotifySource, tmp_path, paths=[str(tmp_path)], events=["closed_write", "deleted"]
        )
        async with Running(source) as watch:
            target = tmp_path / "a.txt"
            target.write_text("x")
            target.unlink()
            await watch.wait_for(lambda ev: len(ev) >= 2)
            await watch.settle()
            assert [(e.kind.value, e.path) for e in watch.events] == [
                ("closed_write", str(target)),
                ("deleted", str(target)),
            ]

    run(scenario())


def test_new_folders_are_watched_and_their_early_files_reported(tmp_path: Path) -> None:
    async def scenario() -> None:
        source = make_component(
            InotifySource, tmp_path, paths=[str(tmp_path)], events=["created", "closed_write"]
        )
        async with Running(source) as watch:
            # Files written inside a new folder before its watch can exist (the mkdir race).
            deep = tmp_path / "a" / "b" / "c"
            deep.mkdir(parents=True)
            for i in range(20):
                (deep / f"f{i}.csv").write_text("x")
            await watch.wait_for(
                lambda ev: all("closed_write" in watch.kinds(deep / f"f{i}.csv") for i in range(20))
            )
            # Later files in the new folder come from its own watch.
            late = deep / "late.csv"
            late.write_text("y")
            await watch.wait_for(lambda ev: "closed_write" in watch.kinds(late))
            folder_events = [e for e in watch.events if e.is_dir]
            assert {e.path for e in folder_events} == {
                str(tmp_path / "a"),
                str(tmp_path / "a" / "b"),
                str(deep),
            }

    run(scenario())


def test_renames_are_paired_into_one_moved_event(tmp_path: Path) -> None:
    async def scenario() -> None:
        inbox = tmp_path / "inbox"
        outside = tmp_path / "outside"
        inbox.mkdir()
        outside.mkdir()
        (outside / "incoming.csv").write_text("x")
        source = make_component(
            InotifySource, tmp_path, paths=[str(inbox)], events=["moved", "deleted"]
        )
        async with Running(source) as watch:
            (inbox / "a.tmp").write_text("x")
            os.rename(inbox / "a.tmp", inbox / "a.csv")  # inside → inside
            os.rename(inbox / "a.csv", outside / "a.csv")  # inside → outside
            os.rename(outside / "incoming.csv", inbox / "incoming.csv")  # outside → inside
            await watch.wait_for(lambda ev: len(ev) >= 3)
            await watch.settle()
            assert [(e.kind.value, e.path, e.src_path) for e in watch.events] == [
                ("moved", str(inbox / "a.csv"), str(inbox / "a.tmp")),
                ("deleted", str(inbox / "a.csv"), None),
                ("moved", str(inbox / "incoming.csv"), None),
            ]

    run(scenario())


def test_a_renamed_folder_keeps_being_watched_under_its_new_name(tmp_path: Path) -> None:
    async def scenario() -> None:
        (tmp_path / "old" / "sub").mkdir(parents=True)
        source = make_component(
            InotifySource, tmp_path, paths=[str(tmp_path)], events=["moved", "closed_write"]
        )
        async with Running(source) as watch:
            os.rename(tmp_path / "old", tmp_path / "new")
            await watch.wait_for(lambda ev: len(ev) >= 1)
            (tmp_path / "new" / "sub" / "f.csv").write_text("x")
            await watch.wait_for(lambda ev: len(ev) >= 2)
            assert [(e.kind.value, e.path, e.src_path, e.is_dir) for e in watch.events] == [
                ("moved", str(tmp_path / "new"), str(tmp_path / "old"), True),
                ("closed_write", str(tmp_path / "new" / "sub" / "f.csv"), None, False),
            ]

    run(scenario())


def test_a_folder_moved_in_from_outside_is_watched_and_its_files_reported(tmp_path: Path) -> None:
    async def scenario() -> None:
        inbox = tmp_path / "inbox"
        inbox.mkdir()
        batch = tmp_path / "batch"
        (batch / "day1").mkdir(parents=True)
        (batch / "day1" / "a.csv").write_text("x")
        source = make_component(InotifySource, tmp_path, paths=[str(inbox)])
        async with Running(source) as watch:
            os.rename(batch, inbox / "batch")
            target = inbox / "batch" / "day1" / "a.csv"
            await watch.wait_for(lambda ev: "closed_write" in watch.kinds(target))
            (inbox / "batch" / "day1" / "b.csv").write_text("y")
            await watch.wait_for(
                lambda ev: "closed_write" in watch.kinds(target.with_name("b.csv"))
            )
            assert watch.events[0].kind is EventKind.MOVED
            assert watch.events[0].src_path is None

    run(scenario())


def test_a_folder_moved_out_is_reported_deleted_and_no_longer_watched(tmp_path: Path) -> None:
    async def scenario() -> None:
        inbox = tmp_path / "inbox"
        (inbox / "sub").mkdir(parents=True)
        source = make_component(
            InotifySource, tmp_path, paths=[str(inbox)], events=["deleted", "created"]
        )
        async with Running(source) as watch:
            os.rename(inbox / "sub", tmp_path / "sub")
            await watch.wait_for(lambda ev: len(ev) >= 1)
            (tmp_path / "sub" / "after.csv").write_text("x")
            await watch.settle()
            assert [(e.kind.value, e.path) for e in watch.events] == [
                ("deleted", str(inbox / "sub"))
            ]
            assert str(inbox / "sub") not in source.wds

    run(scenario())


def test_non_utf8_and_hostile_names_arrive_byte_for_byte(tmp_path: Path) -> None:
    async def scenario() -> None:
        names = [b"caf\xe9.csv", b"a b;$(rm -rf x)\n.csv", b"\xff\xfe", b"-rf"]
        source = make_component(
            InotifySource, tmp_path, paths=[str(tmp_path)], events=["closed_write"]
        )
        async with Running(source) as watch:
            for name in names:
                with open(os.path.join(os.fsencode(tmp_path), name), "wb") as handle:
                    handle.write(b"x")
            await watch.wait_for(lambda ev: len(ev) == len(names))
            got = [os.fsencode(e.path) for e in watch.events]
            assert got == [os.path.join(os.fsencode(tmp_path), n) for n in names]

    run(scenario())


def test_non_recursive_reports_only_the_top_level(tmp_path: Path) -> None:
    async def scenario() -> None:
        (tmp_path / "sub").mkdir()
        source = make_component(
            InotifySource, tmp_path, paths=[str(tmp_path)], recursive=False, events=["closed_write"]
        )
        async with Running(source) as watch:
            (tmp_path / "sub" / "deep.csv").write_text("x")
            (tmp_path / "top.csv").write_text("x")
            await watch.wait_for(lambda ev: len(ev) >= 1)
            await watch.settle()
            assert [e.path for e in watch.events] == [str(tmp_path / "top.csv")]

    run(scenario())


def test_a_single_file_can_be_watched(tmp_path: Path) -> None:
    async def scenario() -> None:
        target = tmp_path / "settings.ini"
        target.write_text("a=1")
        source = make_component(
            InotifySource, tmp_path, paths=[str(target)], events=["closed_write"]
        )
        async with Running(source) as watch:
            target.write_text("a=2")
            await watch.wait_for(lambda ev: len(ev) >= 1)
            assert watch.events[0].path == str(target)
            assert not watch.events[0].is_dir

    run(scenario())


def test_a_missing_path_is_a_clear_error_unless_create_missing(tmp_path: Path) -> None:
    async def scenario() -> None:
        missing = tmp_path / "nope"
        source = make_component(InotifySource, tmp_path, paths=["nope"])
        with pytest.raises(
            SourceError, match="nope does not exist; create it, or set `create_missing"
        ):
            await source.open()
        await source.close()
        source = make_component(InotifySource, tmp_path, paths=["nope"], create_missing=True)
        async with Running(source):
            assert missing.is_dir()

    run(scenario())


def test_deleting_a_tree_reports_every_file(tmp_path: Path) -> None:
    async def scenario() -> None:
        tree = tmp_path / "tree"
        (tree / "x" / "y").mkdir(parents=True)
        for name in ("a", "x/b", "x/y/c"):
            (tree / name).write_text("z")
        source = make_component(InotifySource, tmp_path, paths=[str(tmp_path)], events=["deleted"])
        async with Running(source) as watch:
            shutil.rmtree(tree)
            await watch.wait_for(lambda ev: any(e.path == str(tree) for e in ev))
            deleted = {e.path for e in watch.events}
            assert deleted == {str(tree / n) for n in ("a", "x/b", "x/y/c", "x/y", "x", "")} - {
                str(tree / "")
            } | {str(tree)}

    run(scenario())


def test_a_burst_of_new_folders_reports_every_file_created_once(tmp_path: Path) -> None:
    # The mkdir race, many times over: files appear in each new folder while its watch is
    # being added and it is being read. Each must be reported, and `created` only once.
    def write_tree() -> None:
        for d in range(30):
            folder = tmp_path / f"d{d}" / "sub"
            folder.mkdir(parents=True)
            for f in range(60):
                (folder / f"f{f}.csv").write_text("x")

    async def scenario() -> None:
        source = make_component(
            InotifySource, tmp_path, paths=[str(tmp_path)], events=["created", "closed_write"]
        )
        async with Running(source) as watch:
            await asyncio.to_thread(write_tree)
            files = [tmp_path / f"d{d}" / "sub" / f"f{f}.csv" for d in range(30) for f in range(60)]
            await watch.wait_for(
                lambda ev: all("closed_write" in watch.kinds(p) for p in files), timeout=30
            )
            await watch.settle()
            created = [e.path for e in watch.events if e.kind is EventKind.CREATED]
            assert sorted(created) == sorted(set(created))  # no path reported created twice
            folders = {str(tmp_path / f"d{d}") for d in range(30)}
            folders |= {str(tmp_path / f"d{d}" / "sub") for d in range(30)}
            assert set(created) == {str(p) for p in files} | folders
            closed = [e.path for e in watch.events if e.kind is EventKind.CLOSED_WRITE]
            # A scan may see a file before its writer closed it: its own close follows.
            assert len(closed) - len(set(closed)) <= len(files) // 10

    run(scenario())


def test_a_renamed_tree_keeps_every_folder_watched_under_its_new_path(tmp_path: Path) -> None:
    async def scenario() -> None:
        deep = tmp_path / "a" / "b" / "c"
        deep.mkdir(parents=True)
        (tmp_path / "other").mkdir()
        source = make_component(
            InotifySource, tmp_path, paths=[str(tmp_path)], events=["moved", "closed_write"]
        )
        async with Running(source) as watch:
            os.rename(tmp_path / "a", tmp_path / "other" / "z")
            await watch.wait_for(lambda ev: len(ev) >= 1)
            moved = tmp_path / "other" / "z"
            for folder in (moved, moved / "b", moved / "b" / "c"):
                (folder / "f.csv").write_text("x")
            await watch.wait_for(lambda ev: len(ev) >= 4)
            await watch.settle()
            assert [(e.kind.value, e.path) for e in watch.events] == [
                ("moved", str(moved)),
                ("closed_write", str(moved / "f.csv")),
                ("closed_write", str(moved / "b" / "f.csv")),
                ("closed_write", str(moved / "b" / "c" / "f.csv")),
            ]
            assert watch.events[0].src_path == str(tmp_path / "a")
            assert not any(p.startswith(str(tmp_path / "a")) for p in source.wds)

    run(scenario())


def test_a_watched_folder_deleted_and_made_again_is_watched_again(tmp_path: Path) -> None:
    root = tmp_path / "inbox"
    root.mkdir()
    (root / "old.csv").write_text("x")

    async def scenario() -> None:
        source = make_component(
            InotifySource,
            tmp_path,
            paths=[str(root)],
            events=["created", "deleted", "closed_write"],
        )
        with capture_logs() as logs:
            async with Running(source) as watch:
                shutil.rmtree(root)
                await watch.wait_for(lambda ev: any(e.path == str(root) for e in ev))
                assert [(e.kind.value, e.path) for e in watch.events] == [
                    ("deleted", str(root / "old.csv")),
                    ("deleted", str(root)),
                ]
                root.mkdir()
                (root / "early.csv").write_text("x")  # may be there before it is watched
                await watch.wait_for(lambda ev: "closed_write" in watch.kinds(root / "early.csv"))
                (root / "late.csv").write_text("y")
                await watch.wait_for(lambda ev: "closed_write" in watch.kinds(root / "late.csv"))
                await watch.settle()
                assert watch.kinds(root)[-1] == "created"
                assert watch.kinds(root / "early.csv").count("created") == 1
                assert watch.kinds(root / "late.csv") == ["created", "closed_write"]
        waiting = [e for e in logs if e["event"] == "watched path is not there; waiting for it"]
        assert len(waiting) == 1

    run(scenario())


def test_a_path_that_does_not_exist_yet_is_waited_for(tmp_path: Path) -> None:
    later = tmp_path / "mnt" / "share" / "inbox"

    async def scenario() -> None:
        source = make_component(
            InotifySource,
            tmp_path,
            paths=[str(later)],
            wait_missing=True,
            events=["created", "closed_write"],
        )
        with capture_logs() as logs:
            async with Running(source) as watch:
                await asyncio.sleep(0.2)
                (tmp_path / "mnt").mkdir()
                await asyncio.sleep(0.1)
                (tmp_path / "mnt" / "share").mkdir()
                (tmp_path / "mnt" / "share" / "unrelated.csv").write_text("x")
                await asyncio.sleep(0.1)
                later.mkdir()
                (later / "a.csv").write_text("x")
                await watch.wait_for(lambda ev: "closed_write" in watch.kinds(later / "a.csv"))
                (later / "b.csv").write_text("x")
                await watch.wait_for(lambda ev: "closed_write" in watch.kinds(later / "b.csv"))
                await watch.settle()
                assert watch.kinds(later / "a.csv").count("created") == 1
                assert not watch.kinds(tmp_path / "mnt" / "share" / "unrelated.csv")
        waiting = [e for e in logs if e["event"] == "watched path is not there; waiting for it"]
        assert [(e["path"], e["log_level"]) for e in waiting] == [(str(later), "warning")]

    run(scenario())


def test_a_stale_end_of_watch_does_not_unwatch_the_folder_made_in_its_place(
    tmp_path: Path,
) -> None:
    # A folder deleted and made again while the source is busy: the end of the old watch
    # (IN_IGNORED) is read after the new folder got its own watch, which must stay.
    async def scenario() -> None:
        source = make_component(InotifySource, tmp_path, paths=[str(tmp_path)])
        (tmp_path / "box").mkdir()
        gate = asyncio.Event()
        events: list[Event] = []

        async def slow_emit(event: Event) -> None:
            events.append(event)
            await gate.wait()

        await source.open()
        task = asyncio.create_task(source.run(slow_emit))
        try:
            await asyncio.sleep(0.05)
            for _ in range(3):
                shutil.rmtree(tmp_path / "box")
                (tmp_path / "box").mkdir()
            (tmp_path / "box" / "x.csv").write_text("x")
            gate.set()
            target = str(tmp_path / "box" / "later.csv")
            await asyncio.sleep(0.3)
            (tmp_path / "box" / "later.csv").write_text("y")
            for _ in range(200):
                if any(e.path == target and e.kind is EventKind.CLOSED_WRITE for e in events):
                    break
                await asyncio.sleep(0.02)
            assert any(e.path == target and e.kind is EventKind.CLOSED_WRITE for e in events)
            assert str(tmp_path / "box") in source.wds
        finally:
            await stop_tasks(task)
            await source.close()

    run(scenario())


def test_a_denied_subfolder_is_skipped_with_one_warning_and_the_rest_watched() -> None:
    tree = Path(tempfile.mkdtemp(prefix="fspipeline-inotify-"))
    os.chmod(tree, 0o755)
    (tree / "locked" / "inner").mkdir(parents=True)
    (tree / "open").mkdir()

    async def scenario() -> None:
        source = make_component(
            InotifySource, tree, paths=[str(tree)], events=["created", "closed_write"]
        )
        with capture_logs() as logs, unprivileged(tree):
            os.chmod(tree / "locked", 0)
            await source.open()
        async with AlreadyOpen(source) as watch:
            (tree / "open" / "a.csv").write_text("x")
            (tree / "b.csv").write_text("x")
            await watch.wait_for(lambda ev: len(ev) >= 4)
            await watch.settle()
            assert sorted((e.kind.value, e.path) for e in watch.events) == [
                ("closed_write", str(tree / "b.csv")),
                ("closed_write", str(tree / "open" / "a.csv")),
                ("created", str(tree / "b.csv")),
                ("created", str(tree / "open" / "a.csv")),
            ]
        denied = [e for e in logs if "permission denied" in e["event"]]
        assert [(e["folder"], e["log_level"]) for e in denied] == [
            (str(tree / "locked"), "warning")
        ]

    try:
        run(scenario())
    finally:
        os.chmod(tree / "locked", 0o755)
        shutil.rmtree(tree)


def test_symlinks_are_not_followed_unless_asked(tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    (inbox / "link").symlink_to(elsewhere)

    async def scenario(follow: bool) -> list[tuple[str, str]]:
        source = make_component(
            InotifySource,
            tmp_path,
            paths=[str(inbox)],
            events=["closed_write"],
            follow_symlinks=follow,
        )
        async with Running(source) as watch:
            (elsewhere / f"via-link-{follow}.csv").write_text("x")
            (inbox / f"direct-{follow}.csv").write_text("x")
            await watch.wait_for(lambda ev: len(ev) >= (2 if follow else 1))
            await watch.settle()
            return sorted((e.kind.value, e.path) for e in watch.events)

    assert asyncio.run(scenario(False)) == [("closed_write", str(inbox / "direct-False.csv"))]
    assert asyncio.run(scenario(True)) == [
        ("closed_write", str(inbox / "direct-True.csv")),
        ("closed_write", str(inbox / "link" / "via-link-True.csv")),
    ]


def test_followed_symlink_loops_are_watched_once(tmp_path: Path) -> None:
    inbox = tmp_path / "inbox"
    (inbox / "a" / "b").mkdir(parents=True)
    (inbox / "a" / "b" / "up").symlink_to(inbox)  # a loop back to the top
    (inbox / "a" / "again").symlink_to(inbox / "a")  # a second path to one folder

    async def scenario() -> None:
        source = make_component(
            InotifySource,
            tmp_path,
            paths=[str(inbox)],
            events=["created", "closed_write"],
            follow_symlinks=True,
        )
        async with Running(source) as watch:
            assert sorted(source.wds) == [str(inbox), str(inbox / "a"), str(inbox / "a" / "b")]
            (inbox / "a" / "b" / "f.csv").write_text("x")
            (inbox / "a" / "b" / "new").mkdir()
            (inbox / "a" / "b" / "new" / "g.csv").write_text("x")
            await watch.wait_for(
                lambda ev: "closed_write" in watch.kinds(inbox / "a" / "b" / "new" / "g.csv")
            )
            await watch.settle()
            assert watch.kinds(inbox / "a" / "b" / "f.csv") == ["created", "closed_write"]

    run(scenario())


def test_a_watched_file_replaced_by_an_editor_is_still_watched(tmp_path: Path) -> None:
    target = tmp_path / "settings.ini"
    target.write_text("a=1")

    async def scenario() -> None:
        source = make_component(
            InotifySource, tmp_path, paths=[str(target)], events=["closed_write", "deleted"]
        )
        async with Running(source) as watch:
            (tmp_path / ".settings.ini.swp").write_text("a=2")
            os.rename(tmp_path / ".settings.ini.swp", target)  # how editors save
            await watch.wait_for(lambda ev: len(ev) >= 2)
            target.write_text("a=3")  # the new file is the one watched now
            await watch.wait_for(lambda ev: len(ev) >= 3)
            await watch.settle()
            assert [(e.kind.value, e.path, e.meta.get("scan", False)) for e in watch.events] == [
                ("deleted", str(target), False),
                ("closed_write", str(target), True),
                ("closed_write", str(target), False),
            ]

    run(scenario())
