"""The poll source on real files, scanning every 50ms."""

from __future__ import annotations

import asyncio
import contextlib
import os
import pwd
import shutil
import tempfile
import threading
import time
from collections.abc import Iterator, MutableMapping
from pathlib import Path
from typing import Any

import pydantic
import pytest
import structlog
from structlog.testing import capture_logs

from pipeline import ComponentContext, ComponentKind, EventKind, FakeClock
from pipeline.registry import build_registry
from pipeline.sources.poll import PollSource
from pipeline.sources.snapscan import DirEntryLike
from tests.conftest import Running, make_component

pytestmark = pytest.mark.integration


def run(coro: Any) -> None:
    asyncio.run(coro)


def poller(tmp_path: Path, **options: Any) -> PollSource:
    options.setdefault("paths", [str(tmp_path)])
    options.setdefault("interval", "50ms")
    source: PollSource = make_component(PollSource, tmp_path, **options)
    return source


def warnings(logs: list[MutableMapping[str, Any]], event: str) -> list[MutableMapping[str, Any]]:
    return [entry for entry in logs if entry["event"] == event]


def scan_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "fspipeline-poll"]


def test_each_change_is_reported_once_with_its_meta(tmp_path: Path) -> None:
    (tmp_path / "existing.csv").write_text("here before the start")

    async def scenario() -> None:
        async with Running(poller(tmp_path)) as watch:
            target = tmp_path / "a.csv"
            target.write_text("a,b\n")
            await watch.wait_for(lambda ev: len(ev) == 1)
            with open(target, "a") as handle:
                handle.write("1,2\n")
            await watch.wait_for(lambda ev: len(ev) == 2)
            os.rename(target, tmp_path / "b.csv")
            await watch.wait_for(lambda ev: len(ev) == 3)
            (tmp_path / "b.csv").unlink()
            await watch.wait_for(lambda ev: len(ev) == 4)
            await watch.settle()
            assert [(e.kind, e.path, e.src_path) for e in watch.events] == [
                (EventKind.CREATED, str(target), None),
                (EventKind.MODIFIED, str(target), None),
                (EventKind.MOVED, str(tmp_path / "b.csv"), str(target)),
                (EventKind.DELETED, str(tmp_path / "b.csv"), None),
            ]
            created, modified, moved, deleted = watch.events
            assert created.source == "t/poll"
            assert not created.is_dir
            assert created.meta["root"] == str(tmp_path)
            assert created.meta["size"] == 4
            assert modified.meta["size"] == 8
            assert moved.meta["inode"] == created.meta["inode"]
            assert modified.meta["mtime"] == pytest.approx(time.time(), abs=60)
            assert dict(deleted.meta) == {"root": str(tmp_path)}

    run(scenario())


def test_folders_and_their_contents(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with Running(poller(tmp_path)) as watch:
            (tmp_path / "in" / "deep").mkdir(parents=True)
            (tmp_path / "in" / "deep" / "x.csv").write_text("x")
            await watch.wait_for(lambda ev: len(ev) == 3)
            (tmp_path / "in" / "late.csv").write_text("y")  # the folders are not "modified"
            await watch.wait_for(lambda ev: len(ev) == 4)
            shutil.rmtree(tmp_path / "in")
            await watch.wait_for(lambda ev: len(ev) == 8)
            await watch.settle()
            rel = [
                (e.kind.value, os.path.relpath(e.path, tmp_path), e.is_dir) for e in watch.events
            ]
            assert rel == [
                ("created", "in", True),
                ("created", "in/deep", True),
                ("created", "in/deep/x.csv", False),
                ("created", "in/late.csv", False),
                ("deleted", "in/late.csv", False),
                ("deleted", "in/deep/x.csv", False),
                ("deleted", "in/deep", True),
                ("deleted", "in", True),
            ]
            assert "size" not in watch.events[0].meta

    run(scenario())


def test_attrib_and_only_the_requested_kinds(tmp_path: Path) -> None:
    target = tmp_path / "a.csv"
    target.write_text("x")

    async def scenario() -> None:
        async with Running(poller(tmp_path, events=["attrib", "deleted"])) as watch:
            (tmp_path / "ignored.csv").write_text("created, not asked for")
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


def test_not_recursive_sees_the_top_level_only(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()

    async def scenario() -> None:
        async with Running(poller(tmp_path, recursive=False)) as watch:
            (tmp_path / "sub" / "hidden.csv").write_text("x")
            (tmp_path / "top.csv").write_text("x")
            await watch.wait_for(lambda ev: len(ev) >= 1)
            await watch.settle()
            assert [e.path for e in watch.events] == [str(tmp_path / "top.csv")]

    run(scenario())


def test_non_utf8_names_survive(tmp_path: Path) -> None:
    raw = os.fsencode(tmp_path) + b"/caf\xe9.csv"

    async def scenario() -> None:
        async with Running(poller(tmp_path)) as watch:
            os.close(os.open(raw, os.O_CREAT | os.O_WRONLY, 0o644))
            await watch.wait_for(lambda ev: len(ev) == 1)
            assert os.fsencode(watch.events[0].path) == raw

    run(scenario())


@contextlib.contextmanager
def unprivileged(tree: Path) -> Iterator[None]:
    """Act as an ordinary user, for whom mode 000 really denies: as root, drop the
    effective uid to `nobody` (and own `tree` as nobody) until the block ends."""
    if os.geteuid() != 0:
        yield
        return
    nobody = pwd.getpwnam("nobody")
    for folder, dirs, files in os.walk(tree):
        for name in [folder, *(os.path.join(folder, n) for n in dirs + files)]:
            os.chown(name, nobody.pw_uid, nobody.pw_gid)
    os.seteuid(nobody.pw_uid)
    try:
        yield
    finally:
        os.seteuid(0)


def place(path: Path) -> None:
    """Make a file appear whole (written beside the tree, renamed in): a scan that comes
    between the creation and the write cannot see it empty."""
    handle, temp = tempfile.mkstemp(dir=path.parent.parent.parent)
    os.write(handle, b"x")
    os.close(handle)
    os.rename(temp, path)


def test_a_denied_folder_is_skipped_with_one_warning_and_the_rest_is_reported() -> None:
    # pytest's tmp_path lies below a 0700 folder of root's: use a tree nobody can reach.
    tree = Path(tempfile.mkdtemp(prefix="fspipeline-poll-"))
    os.chmod(tree, 0o755)
    locked = tree / "locked"
    locked.mkdir()
    (locked / "secret.csv").write_text("x")
    (tree / "open").mkdir()

    async def scenario() -> None:
        with capture_logs() as logs:
            async with Running(poller(tree)) as watch:
                os.chmod(locked, 0)
                place(tree / "open" / "a.csv")
                await watch.wait_for(lambda ev: len(ev) == 2)  # locked: attrib; a.csv: created
                await asyncio.sleep(0.3)  # several more scans
                place(tree / "open" / "b.csv")
                await watch.wait_for(lambda ev: len(ev) == 3)
                assert sorted((e.kind.value, e.path) for e in watch.events) == [
                    ("attrib", str(locked)),
                    ("created", str(tree / "open" / "a.csv")),
                    ("created", str(tree / "open" / "b.csv")),
                ]  # and secret.csv, unseen, is not reported deleted
                denied = warnings(logs, "folder not readable; keeping what was last seen in it")
                assert [(w["folder"], w["log_level"]) for w in denied] == [(str(locked), "warning")]
                os.chmod(locked, 0o755)
                (locked / "secret.csv").unlink()
                await watch.wait_for(lambda ev: len(ev) == 5)
                assert sorted((e.kind.value, e.path) for e in watch.events[3:]) == [
                    ("attrib", str(locked)),
                    ("deleted", str(locked / "secret.csv")),
                ]
                assert warnings(logs, "folder readable again")

    try:
        with unprivileged(tree):
            run(scenario())
    finally:
        os.chmod(locked, 0o755)
        shutil.rmtree(tree)


def test_a_folder_that_vanishes_mid_scan_does_not_stop_the_scan(tmp_path: Path) -> None:
    doomed = tmp_path / "doomed"
    doomed.mkdir()
    (doomed / "x.csv").write_text("x")
    armed = threading.Event()

    def scandir(path: str) -> contextlib.AbstractContextManager[Iterator[DirEntryLike]]:
        if path == str(doomed) and armed.is_set():
            armed.clear()
            shutil.rmtree(path)  # deleted after its parent listed it, before it is read
        return os.scandir(path)

    async def scenario() -> None:
        source = poller(tmp_path)
        source.scandir = scandir
        with capture_logs() as logs:
            async with Running(source) as watch:
                (tmp_path / "other.csv").write_text("x")
                (doomed / "y.csv").write_text("x")  # doomed changed: the next scan lists it
                armed.set()
                await watch.wait_for(lambda ev: len(ev) == 3)
                await watch.settle()
                assert sorted((e.kind.value, e.path) for e in watch.events) == [
                    ("created", str(tmp_path / "other.csv")),
                    ("deleted", str(doomed)),
                    ("deleted", str(doomed / "x.csv")),
                ]
                assert not [entry for entry in logs if entry["log_level"] == "warning"]

    run(scenario())


def test_a_hung_folder_is_skipped_until_it_answers(tmp_path: Path) -> None:
    hung = tmp_path / "nfs"
    hung.mkdir()
    armed, released = threading.Event(), threading.Event()

    def scandir(path: str) -> contextlib.AbstractContextManager[Iterator[DirEntryLike]]:
        if path == str(hung) and armed.is_set():
            released.wait(10)  # like a call to a dead NFS server
        return os.scandir(path)

    async def scenario() -> None:
        source = poller(tmp_path, stall_timeout="300ms")
        source.scandir = scandir
        with capture_logs() as logs:
            async with Running(source) as watch:
                armed.set()
                (hung / "stuck.csv").write_text("x")
                (tmp_path / "fine.csv").write_text("x")
                await watch.wait_for(lambda ev: len(ev) == 1)
                assert watch.events[0].path == str(tmp_path / "fine.csv")
                assert len(warnings(logs, "folder not answering; skipped until it does")) == 1
                armed.clear()
                released.set()
                await watch.wait_for(lambda ev: len(ev) == 2)
                assert watch.events[1].path == str(hung / "stuck.csv")
                assert warnings(logs, "folder answers again")
        for thread in scan_threads():
            thread.join(5)
        assert not scan_threads()

    run(scenario())


def test_a_dead_share_is_skipped_whole_without_piling_up_threads(tmp_path: Path) -> None:
    share = tmp_path / "share"
    folders = [share / f"d{i}" for i in range(6)]
    for folder in folders:
        folder.mkdir(parents=True)
    armed, released = threading.Event(), threading.Event()

    def scandir(path: str) -> contextlib.AbstractContextManager[Iterator[DirEntryLike]]:
        if path != str(share) and path.startswith(str(share)) and armed.is_set():
            released.wait(10)  # every folder of the share hangs
        return os.scandir(path)

    async def scenario() -> None:
        source = poller(tmp_path, paths=[str(share)], stall_timeout="200ms")
        source.scandir = scandir
        with capture_logs() as logs:
            async with Running(source) as watch:
                armed.set()
                for folder in folders:  # changed: the next scan lists them, and hangs
                    (folder / "new.csv").write_text("x")
                crowded = "too many folders not answering; skipping the whole path"
                for _ in range(100):  # 4 stalls of 200ms, then the share is skipped
                    if warnings(logs, crowded):
                        break
                    await asyncio.sleep(0.1)
                await asyncio.sleep(0.5)  # several more scans
                assert len(warnings(logs, "folder not answering; skipped until it does")) == 4
                assert len(warnings(logs, crowded)) == 1
                assert 4 <= len(scan_threads()) <= 5  # the hung ones, and maybe a fresh scan
                (share / "late.csv").write_text("x")
                await asyncio.sleep(0.3)
                assert watch.events == []  # the share is not read while it is dead
                armed.clear()
                released.set()
                await watch.wait_for(lambda ev: len(ev) == 1 + len(folders))
                assert {e.path for e in watch.events} == {str(share / "late.csv")} | {
                    str(folder / "new.csv") for folder in folders
                }

    run(scenario())


def test_a_watched_path_that_vanishes_is_polled_until_it_returns(tmp_path: Path) -> None:
    root = tmp_path / "share"
    root.mkdir()
    (root / "a.csv").write_text("x")

    async def scenario() -> None:
        with capture_logs() as logs:
            async with Running(poller(tmp_path, paths=[str(root)])) as watch:
                shutil.rmtree(root)
                await watch.wait_for(lambda ev: len(ev) == 2)
                assert warnings(logs, "watched path is gone; polling until it comes back")
                root.mkdir()
                (root / "b.csv").write_text("x")
                await watch.wait_for(lambda ev: len(ev) == 4)
                await watch.settle()
                assert [(e.kind.value, e.path, e.is_dir) for e in watch.events] == [
                    ("deleted", str(root / "a.csv"), False),
                    ("deleted", str(root), True),
                    ("created", str(root), True),
                    ("created", str(root / "b.csv"), False),
                ]
                assert warnings(logs, "watched path is back")

    run(scenario())


def test_scans_wait_for_the_injected_clock(tmp_path: Path) -> None:
    async def scenario() -> None:
        clock = FakeClock()
        options = PollSource.Options.model_validate(
            {"paths": [str(tmp_path)], "interval": "1h"}, context={"config_dir": tmp_path}
        )
        context = ComponentContext(
            pipeline="t",
            label="t.sources[0]",
            config_dir=tmp_path,
            state_dir=None,
            log=structlog.get_logger(),
            clock=clock,
        )
        async with Running(PollSource(options, context)) as watch:
            (tmp_path / "a.csv").write_text("x")
            await asyncio.sleep(0.2)
            assert watch.events == []
            await clock.advance(3600)
            await watch.wait_for(lambda ev: len(ev) == 1)

    run(scenario())


def test_close_leaves_no_scan_thread_behind(tmp_path: Path) -> None:
    for i in range(200):
        (tmp_path / f"f{i}").write_text("x")

    async def scenario() -> None:
        async with Running(poller(tmp_path, interval="10ms")):
            await asyncio.sleep(0.1)

    run(scenario())
    assert not scan_threads()


def test_options_are_validated_with_clear_messages(tmp_path: Path) -> None:
    assert poller(tmp_path, interval="250ms").options.interval == 0.25
    with pytest.raises(pydantic.ValidationError, match="at least 10ms"):
        poller(tmp_path, interval="5ms")
    with pytest.raises(pydantic.ValidationError, match="cannot see closed_write"):
        poller(tmp_path, events=["closed_write"])


def test_poll_is_a_builtin_source() -> None:
    spec = build_registry(autoload=False).get(ComponentKind.SOURCE, "poll")
    assert spec is not None
    assert spec.cls is PollSource
    assert spec.summary.startswith("Polls folders with stat()")


def test_a_path_that_does_not_exist_yet_is_polled_for_with_wait_missing(tmp_path: Path) -> None:
    later = tmp_path / "share" / "inbox"

    async def scenario() -> None:
        async with Running(poller(tmp_path, paths=[str(later)], wait_missing=True)) as watch:
            await asyncio.sleep(0.2)
            later.mkdir(parents=True)
            (later / "a.csv").write_text("x")
            await watch.wait_for(lambda ev: len(ev) == 2)
            await watch.settle()
            assert [(e.kind.value, e.path) for e in watch.events] == [
                ("created", str(later)),
                ("created", str(later / "a.csv")),
            ]

    run(scenario())


def test_with_trust_folder_times_off_every_folder_is_listed_at_every_scan(tmp_path: Path) -> None:
    for name in ("a", "b/c"):
        (tmp_path / name).mkdir(parents=True)
    listed: list[str] = []

    def scandir(path: str) -> contextlib.AbstractContextManager[Iterator[DirEntryLike]]:
        listed.append(path)
        return os.scandir(path)

    async def scenario() -> None:
        source = poller(tmp_path, trust_folder_times=False)
        source.scandir = scandir
        async with Running(source) as watch:
            await asyncio.sleep(0.5)  # about ten scans
            (tmp_path / "b" / "c" / "x.csv").write_text("x")
            await watch.wait_for(lambda ev: len(ev) == 1)
        folders = [str(tmp_path / n) for n in ("", "a", "b", "b/c")]
        counts = [listed.count(path) for path in folders]
        assert min(counts) >= 5, counts  # a scan may have been cut short by the stop
        assert max(counts) - min(counts) <= 1, counts

    run(scenario())
