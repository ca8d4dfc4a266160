"""The inotify source against the real kernel."""

from __future__ import annotations

import asyncio
import os
import shutil
from pathlib import Path

import pytest

from pipeline import EventKind
from pipeline.errors import SourceError
from pipeline.sources.inotify import InotifySource
from tests.conftest import Running, make_component

pytestmark = pytest.mark.integration


def run(coro: object) -> None:
    asyncio.run(coro)  # type: ignore[arg-type]


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
