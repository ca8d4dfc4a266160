"""The qt source on real files: the same behaviour as the other sources, through Qt."""

from __future__ import annotations

import asyncio
import functools
import os
import shutil
import time
from pathlib import Path

import pydantic
import pytest
from pipeline import ComponentKind, Event, EventKind, SourceError
from pipeline.registry import build_registry
from structlog.testing import capture_logs
from tests.conftest import Running

from fspipeline_qt import plugin
from fspipeline_qt.source import QtSource
from qt_testkit import place, qt_source, run, summary

pytestmark = pytest.mark.integration


def test_each_change_is_reported_once_with_its_meta(tmp_path: Path, inbox: Path) -> None:
    (inbox / "existing.csv").write_text("here before the start")

    async def scenario() -> None:
        async with Running(qt_source(tmp_path)) as watch:
            target = inbox / "a.csv"
            place(target, b"a,b\n")
            await watch.wait_for(lambda ev: len(ev) == 1)
            with open(target, "a") as handle:
                handle.write("1,2\n")
            await watch.wait_for(lambda ev: len(ev) == 2)
            os.rename(target, inbox / "b.csv")
            await watch.wait_for(lambda ev: len(ev) == 3)
            (inbox / "b.csv").unlink()
            await watch.wait_for(lambda ev: len(ev) == 4)
            await watch.settle()
            assert [(e.kind, e.path, e.src_path) for e in watch.events] == [
                (EventKind.CREATED, str(target), None),
                (EventKind.MODIFIED, str(target), None),
                (EventKind.MOVED, str(inbox / "b.csv"), str(target)),
                (EventKind.DELETED, str(inbox / "b.csv"), None),
            ]
            created, modified, moved, deleted = watch.events
            assert created.source == "t/qt"
            assert not created.is_dir
            assert created.meta["root"] == str(inbox)
            assert created.meta["size"] == 4
            assert modified.meta["size"] == 8
            assert moved.meta["inode"] == created.meta["inode"]
            assert modified.meta["mtime"] == pytest.approx(time.time(), abs=60)
            assert dict(deleted.meta) == {"root": str(inbox)}

    run(scenario())


def test_a_file_written_in_place_ends_with_its_final_size(tmp_path: Path, inbox: Path) -> None:
    async def scenario() -> None:
        async with Running(qt_source(tmp_path)) as watch:
            target = inbox / "a.csv"
            target.write_text("a,b\n")
            await watch.wait_for(lambda ev: bool(ev) and ev[-1].meta.get("size") == 4)
            await watch.settle()
            kinds = watch.kinds(target)
            assert kinds[0] == "created"
            assert set(kinds[1:]) <= {"modified"}  # a read may land between open and write

    run(scenario())


def test_folders_and_their_contents(tmp_path: Path, inbox: Path) -> None:
    async def scenario() -> None:
        async with Running(qt_source(tmp_path)) as watch:
            (inbox / "in" / "deep").mkdir(parents=True)
            place(inbox / "in" / "deep" / "x.csv")
            await watch.wait_for(lambda ev: len(ev) == 3)
            place(inbox / "in" / "late.csv")  # the folders are not "modified"
            await watch.wait_for(lambda ev: len(ev) == 4)
            shutil.rmtree(inbox / "in")
            await watch.wait_for(lambda ev: len(ev) == 8)
            await watch.settle()
            rel = summary(watch.events, inbox)
            assert rel[:4] == [
                ("created", "in", None),
                ("created", "in/deep", None),
                ("created", "in/deep/x.csv", None),
                ("created", "in/late.csv", None),
            ]
            deleted = [path for kind, path, _ in rel[4:] if kind == "deleted"]
            assert sorted(deleted) == ["in", "in/deep", "in/deep/x.csv", "in/late.csv"]
            assert deleted.index("in/deep/x.csv") < deleted.index("in/deep") < deleted.index("in")
            assert [e.is_dir for e in watch.events[:4]] == [True, True, False, False]
            assert "size" not in watch.events[0].meta

    run(scenario())


def test_a_rename_from_one_folder_to_another_is_one_moved(tmp_path: Path, inbox: Path) -> None:
    (inbox / "a").mkdir()
    (inbox / "b").mkdir()
    (inbox / "a" / "x.csv").write_text("x")
    (inbox / "a" / "sub").mkdir()
    (inbox / "a" / "sub" / "y.csv").write_text("y")

    async def scenario() -> None:
        async with Running(qt_source(tmp_path)) as watch:
            os.rename(inbox / "a" / "x.csv", inbox / "b" / "x.csv")
            os.rename(inbox / "a" / "sub", inbox / "b" / "sub")
            await watch.wait_for(lambda ev: len(ev) == 2)
            await watch.settle()
            assert sorted(summary(watch.events, inbox)) == [
                ("moved", "b/sub", "a/sub"),  # its contents moved with it, unreported
                ("moved", "b/x.csv", "a/x.csv"),
            ]
            # The moved folder is watched under its new name, and only there.
            place(inbox / "b" / "sub" / "z.csv")
            with open(inbox / "b" / "sub" / "y.csv", "a") as handle:
                handle.write("more")
            await watch.wait_for(lambda ev: len(ev) == 4)
            await watch.settle()
            assert sorted(summary(watch.events[2:], inbox)) == [
                ("created", "b/sub/z.csv", None),
                ("modified", "b/sub/y.csv", None),
            ]

    run(scenario())


def test_a_file_replaced_by_a_rename_stays_watched(tmp_path: Path, inbox: Path) -> None:
    target = inbox / "report.csv"
    target.write_text("v1")

    async def scenario() -> None:
        async with Running(qt_source(tmp_path)) as watch:
            (inbox / "report.csv.tmp").write_text("version 2")
            os.rename(inbox / "report.csv.tmp", target)  # how editors save
            # `created` (another file is there now), or `moved` if the .tmp was seen first
            await watch.wait_for(lambda ev: bool(watch.kinds(target)))
            await watch.settle()
            assert watch.kinds(target)[-1] in ("created", "moved")
            with open(target, "a") as handle:  # Qt's watch was on the old file
                handle.write(", and more")
            await watch.wait_for(lambda ev: "modified" in watch.kinds(target))
            assert watch.events[-1].meta["size"] == len("version 2, and more")

    run(scenario())


def has_name(name: str, events: list[Event]) -> bool:
    return name in {Path(e.path).name for e in events}


def test_a_folder_deleted_and_made_again_is_watched_again(tmp_path: Path, inbox: Path) -> None:
    (inbox / "d").mkdir()

    async def scenario() -> None:
        async with Running(qt_source(tmp_path)) as watch:
            for round_ in range(3):  # the new folder may get the old one's inode number
                shutil.rmtree(inbox / "d")
                (inbox / "d").mkdir()
                place(inbox / "d" / f"f{round_}.csv")
                await watch.wait_for(functools.partial(has_name, f"f{round_}.csv"))

    run(scenario())


def test_attrib_and_only_the_requested_kinds(tmp_path: Path, inbox: Path) -> None:
    target = inbox / "a.csv"
    target.write_text("x")

    async def scenario() -> None:
        async with Running(qt_source(tmp_path, events=["attrib", "deleted"])) as watch:
            place(inbox / "ignored.csv")
            os.chmod(target, 0o600)
            await watch.wait_for(lambda ev: len(ev) == 1)
            target.unlink()
            await watch.wait_for(lambda ev: len(ev) == 2)
            await watch.settle()
            assert [(e.kind, e.path) for e in watch.events] == [
                (EventKind.ATTRIB, str(target)),
                (EventKind.DELETED, str(target)),
            ]

    run(scenario())


def test_not_recursive_sees_the_top_level_only(tmp_path: Path, inbox: Path) -> None:
    (inbox / "sub").mkdir()

    async def scenario() -> None:
        async with Running(qt_source(tmp_path, recursive=False)) as watch:
            place(inbox / "sub" / "hidden.csv")
            place(inbox / "top.csv")
            await watch.wait_for(lambda ev: len(ev) >= 1)
            await watch.settle()
            assert [e.path for e in watch.events] == [str(inbox / "top.csv")]

    run(scenario())


def test_non_utf8_names_survive_and_are_read_at_each_poll(tmp_path: Path, inbox: Path) -> None:
    raw = os.fsencode(inbox) + b"/caf\xe9.csv"

    async def scenario() -> None:
        source = qt_source(tmp_path, poll_interval="100ms")
        with capture_logs() as logs:
            async with Running(source) as watch:
                os.close(os.open(raw, os.O_CREAT | os.O_WRONLY, 0o644))
                await watch.wait_for(lambda ev: len(ev) == 1)
                assert os.fsencode(watch.events[0].path) == raw
                with open(raw, "ab") as handle:  # Qt cannot watch it: found by a poll
                    handle.write(b"x")
                await watch.wait_for(lambda ev: len(ev) == 2)
                assert watch.events[1].kind is EventKind.MODIFIED
                assert os.fsencode(watch.events[1].path) == raw
        warned = [e for e in logs if e["event"].startswith("Qt cannot watch paths whose names")]
        assert [(e["log_level"], e["paths"]) for e in warned] == [
            ("warning", [f"{inbox}/caf\\xe9.csv"])
        ]

    run(scenario())


def test_a_watched_path_that_vanishes_is_looked_for_until_it_returns(
    tmp_path: Path, inbox: Path
) -> None:
    (inbox / "a.csv").write_text("x")

    async def scenario() -> None:
        with capture_logs() as logs:
            async with Running(qt_source(tmp_path, poll_interval="100ms")) as watch:
                shutil.rmtree(inbox)
                await watch.wait_for(lambda ev: len(ev) == 2)
                assert any(e["event"].startswith("watched path is gone") for e in logs)
                inbox.mkdir()
                place(inbox / "b.csv")
                await watch.wait_for(lambda ev: len(ev) == 4)
                await watch.settle()
                assert [(e.kind.value, e.path, e.is_dir) for e in watch.events] == [
                    ("deleted", str(inbox / "a.csv"), False),
                    ("deleted", str(inbox), True),
                    ("created", str(inbox), True),
                    ("created", str(inbox / "b.csv"), False),
                ]
                assert any(e["event"] == "watched path is back" for e in logs)
                place(inbox / "c.csv")  # watched again, as it changes
                await watch.wait_for(lambda ev: len(ev) == 5)

    run(scenario())


def test_without_watch_files_a_rescan_finds_changed_content(tmp_path: Path, inbox: Path) -> None:
    target = inbox / "a.csv"
    target.write_text("x")

    async def scenario() -> None:
        source = qt_source(tmp_path, watch_files=False, rescan_interval="200ms")
        async with Running(source) as watch:
            assert source.watcher is not None
            assert await source.watcher.count() == 1  # the folder only
            with open(target, "a") as handle:
                handle.write("y")
            # A rescan can stat between the kernel's mtime and size updates of the append
            # and report size 1 first; the content reached is what must be reported.
            await watch.wait_for(lambda ev: any(e.meta["size"] == 2 for e in ev))
            assert {(e.kind, e.path) for e in watch.events} == {(EventKind.MODIFIED, str(target))}
            seen = len(watch.events)
            await asyncio.sleep(0.7)  # more rescans, with nothing new to find
            assert len(watch.events) == seen

    run(scenario())


def test_a_burst_is_reported_whole_each_file_once(tmp_path: Path, inbox: Path) -> None:
    count = 2000

    async def scenario() -> None:
        async with Running(qt_source(tmp_path)) as watch:
            (inbox / "burst").mkdir()
            for i in range(count):
                (inbox / "burst" / f"f{i:04d}.csv").write_text("x")
            await watch.wait_for(lambda ev: len(ev) >= count + 1, timeout=30)
            await watch.settle(0.5)
            created = sorted(e.path for e in watch.events if e.kind is EventKind.CREATED)
            assert created == [str(inbox / "burst")] + [
                str(inbox / "burst" / f"f{i:04d}.csv") for i in range(count)
            ]
            # A file written after its creation was read is `modified`, never created twice.
            assert {e.kind for e in watch.events} <= {EventKind.CREATED, EventKind.MODIFIED}

    run(scenario())


def test_two_sources_share_one_qt_thread_that_stops_with_the_last(
    tmp_path: Path, inbox: Path
) -> None:
    other = tmp_path / "other"
    other.mkdir()

    async def scenario() -> None:
        first = qt_source(tmp_path)
        second = qt_source(tmp_path, paths=[str(other)])
        async with Running(first) as one, Running(second) as two:
            assert first.runtime is second.runtime
            place(inbox / "a.csv")
            place(other / "b.csv")
            await one.wait_for(lambda ev: len(ev) == 1)
            await two.wait_for(lambda ev: len(ev) == 1)
            assert (one.events[0].path, two.events[0].path) == (
                str(inbox / "a.csv"),
                str(other / "b.csv"),
            )
        # Stopped; a new source starts Qt again (a new application in a new thread).
        async with Running(qt_source(tmp_path)) as again:
            place(inbox / "c.csv")
            await again.wait_for(lambda ev: len(ev) == 1)

    run(scenario())


def test_options_are_validated_with_clear_messages(tmp_path: Path) -> None:
    assert qt_source(tmp_path, poll_interval="250ms").options.poll_interval == 0.25
    assert qt_source(tmp_path, rescan_interval=None).options.rescan_interval is None
    with pytest.raises(pydantic.ValidationError, match="qt source cannot see closed_write"):
        qt_source(tmp_path, events=["closed_write"])
    with pytest.raises(pydantic.ValidationError, match="at least 10ms"):
        qt_source(tmp_path, poll_interval="1ms")


def test_a_missing_path_is_a_clear_error(tmp_path: Path) -> None:
    async def scenario() -> None:
        source = qt_source(tmp_path, paths=[str(tmp_path / "nowhere")])
        with pytest.raises(SourceError, match="does not exist; create it"):
            await source.open()
        await source.close()

    run(scenario())


def test_qt_is_a_source_of_the_qt_plugin() -> None:
    spec = build_registry(extra_plugins=[("qt", plugin)], autoload=False).get(
        ComponentKind.SOURCE, "qt"
    )
    assert spec is not None
    assert spec.cls is QtSource
    assert spec.summary.startswith("Watches folders with Qt's QFileSystemWatcher")


def test_close_during_a_burst_leaves_nothing_running(tmp_path: Path, inbox: Path) -> None:
    async def scenario() -> None:
        source = qt_source(tmp_path, coalesce=0)
        async with Running(source):
            for i in range(300):
                (inbox / f"f{i}.csv").write_text("x")
            await asyncio.sleep(0.05)
            assert source.runtime is not None

    run(scenario())
