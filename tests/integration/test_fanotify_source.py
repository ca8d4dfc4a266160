"""The fanotify source against the real kernel, on ext4 (/tmp) and tmpfs (/dev/shm).

The mark covers a whole file system that other test suites write to at the same time,
so these tests wait generously and ignore what a rescan adds (`meta.scan`).
"""

from __future__ import annotations

import asyncio
import collections
import errno
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from pipeline import Event, EventKind
from pipeline.errors import SourceError
from pipeline.linux import fanotify as api
from pipeline.sources.fanotify import FanotifyOptions, FanotifySource
from tests.conftest import Running, make_component

pytestmark = pytest.mark.integration

WAIT = 30.0  # seconds; other suites load the machine at the same time


def run(coro: object) -> None:
    asyncio.run(coro)  # type: ignore[arg-type]


@pytest.fixture(params=["/tmp", "/dev/shm"], ids=["ext4", "tmpfs"])
def base(request: pytest.FixtureRequest) -> Iterator[Path]:
    """A fresh folder on the root file system (ext4 here) or on tmpfs."""
    folder = Path(tempfile.mkdtemp(prefix="fsp-fanotify-", dir=request.param))
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def shm() -> Iterator[Path]:
    folder = Path(tempfile.mkdtemp(prefix="fsp-fanotify-", dir="/dev/shm"))
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


def live(events: list[Event]) -> list[tuple[str, str, str | None]]:
    """(kind, path, src_path) of the events that came from the kernel queue."""
    return [
        (e.kind.value, e.path, e.src_path)
        for e in events
        if e.kind is not EventKind.OVERFLOW and not e.meta.get("scan")
    ]


def live_kinds(events: list[Event], path: Path) -> list[str]:
    return [kind for kind, at, _ in live(events) if at == str(path)]


def first_seen(kinds: list[str]) -> list[str]:
    return list(dict.fromkeys(kinds))


def test_write_and_read_report_each_kind_in_order(base: Path) -> None:
    async def scenario() -> None:
        source = make_component(FanotifySource, base, paths=[str(base)])
        async with Running(source) as watch:
            target = base / "a.csv"
            with open(target, "w") as handle:
                handle.write("a,b\n")
                handle.flush()
            with open(target) as handle:
                handle.read()
            await watch.wait_for(lambda ev: "closed_nowrite" in watch.kinds(target), WAIT)
            # Queued events of one file may be merged by the kernel: compare first sightings.
            assert first_seen(live_kinds(watch.events, target)) == [
                "created",
                "opened",
                "modified",
                "closed_write",
                "closed_nowrite",
            ]
            event = next(e for e in watch.events if e.path == str(target))
            assert event.source == "t/fanotify"
            assert event.meta["root"] == str(base)
            assert not event.is_dir
            metas = {id(e.meta) for e in watch.events if e.kind is not EventKind.OVERFLOW}
            assert len(metas) == 1  # one shared read-only mapping per watched path

    run(scenario())


def test_only_the_requested_kinds_are_reported(base: Path) -> None:
    async def scenario() -> None:
        source = make_component(
            FanotifySource, base, paths=[str(base)], events=["closed_write", "deleted"]
        )
        async with Running(source) as watch:
            target = base / "a.txt"
            target.write_text("x")
            os.chmod(target, 0o600)
            target.unlink()
            await watch.wait_for(lambda ev: "deleted" in watch.kinds(target), WAIT)
            await watch.settle()
            assert live(watch.events) == [
                ("closed_write", str(target), None),
                ("deleted", str(target), None),
            ]

    run(scenario())


def test_renames_in_out_and_across_watched_paths(base: Path) -> None:
    async def scenario() -> None:
        inbox, other, outside = base / "inbox", base / "other", base / "outside"
        for folder in (inbox, other, outside):
            folder.mkdir()
        (outside / "incoming.csv").write_text("x")
        source = make_component(
            FanotifySource, base, paths=[str(inbox), str(other)], events=["moved", "deleted"]
        )
        async with Running(source) as watch:
            (inbox / "a.tmp").write_text("x")
            os.rename(inbox / "a.tmp", inbox / "a.csv")  # inside -> inside
            os.rename(inbox / "a.csv", other / "a.csv")  # across two watched paths
            os.rename(other / "a.csv", outside / "a.csv")  # inside -> outside
            os.rename(outside / "incoming.csv", inbox / "incoming.csv")  # outside -> inside
            os.rename(outside / "a.csv", outside / "b.csv")  # outside -> outside
            await watch.wait_for(lambda ev: len(live(ev)) >= 4, WAIT)
            await watch.settle()
            assert live(watch.events) == [
                ("moved", str(inbox / "a.csv"), str(inbox / "a.tmp")),
                ("moved", str(other / "a.csv"), str(inbox / "a.csv")),
                ("deleted", str(other / "a.csv"), None),
                ("moved", str(inbox / "incoming.csv"), None),
            ]
            across = next(e for e in watch.events if e.src_path == str(inbox / "a.csv"))
            assert across.meta["root"] == str(other)

    run(scenario())


@pytest.mark.parametrize("events", [None, ["moved", "closed_write"]], ids=["all", "some"])
def test_a_renamed_folder_reports_its_files_under_the_new_name(
    base: Path, events: list[str] | None
) -> None:
    async def scenario() -> None:
        (base / "old" / "sub").mkdir(parents=True)
        options = {"events": events} if events else {}
        source = make_component(FanotifySource, base, paths=[str(base)], **options)
        async with Running(source) as watch:
            (base / "old" / "sub" / "before.csv").write_text("x")
            await watch.wait_for(lambda ev: "closed_write" in [k for k, _, _ in live(ev)], WAIT)
            os.rename(base / "old", base / "new")
            (base / "new" / "sub" / "f.csv").write_text("x")
            late = base / "new" / "sub" / "f.csv"
            await watch.wait_for(lambda ev: "closed_write" in watch.kinds(late), WAIT)
            moves = [e for e in watch.events if e.kind is EventKind.MOVED]
            assert [(e.path, e.src_path, e.is_dir) for e in moves] == [
                (str(base / "new"), str(base / "old"), True)
            ]
            assert watch.kinds(base / "old" / "sub" / "f.csv") == []

    run(scenario())


def test_paths_are_matched_by_component_not_by_string_prefix(base: Path) -> None:
    async def scenario() -> None:
        watched, sibling = base / "data" / "in", base / "data" / "inbox"
        watched.mkdir(parents=True)
        sibling.mkdir()
        source = make_component(FanotifySource, base, paths=[str(watched)])
        async with Running(source) as watch:
            (sibling / "no.csv").write_text("x")
            (base / "data" / "in.csv").write_text("x")
            (base / "elsewhere.csv").write_text("x")
            (watched / "yes.csv").write_text("x")
            await watch.wait_for(lambda ev: "closed_write" in watch.kinds(watched / "yes.csv"))
            await watch.settle()
            assert {path for _, path, _ in live(watch.events)} == {str(watched / "yes.csv")}

    run(scenario())


def test_non_utf8_and_hostile_names_arrive_byte_for_byte(base: Path) -> None:
    async def scenario() -> None:
        names = [b"caf\xe9.csv", b"a b;$(rm -rf x)\n.csv", b"\xff\xfe", b"-rf"]
        source = make_component(FanotifySource, base, paths=[str(base)], events=["closed_write"])
        async with Running(source) as watch:
            os.mkdir(os.path.join(os.fsencode(base), b"d\xe9j\xe0"))
            for name in names:
                with open(os.path.join(os.fsencode(base), b"d\xe9j\xe0", name), "wb") as handle:
                    handle.write(b"x")
            await watch.wait_for(lambda ev: len(live(ev)) >= len(names), WAIT)
            got = [os.fsencode(path) for _, path, _ in live(watch.events)]
            assert got == [os.path.join(os.fsencode(base), b"d\xe9j\xe0", n) for n in names]

    run(scenario())


def test_non_recursive_reports_only_the_top_level(base: Path) -> None:
    async def scenario() -> None:
        (base / "sub").mkdir()
        source = make_component(
            FanotifySource, base, paths=[str(base)], recursive=False, events=["closed_write"]
        )
        async with Running(source) as watch:
            (base / "sub" / "deep.csv").write_text("x")
            os.rename(base / "sub", base / "sub2")
            (base / "sub2" / "deep2.csv").write_text("x")
            (base / "top.csv").write_text("x")
            await watch.wait_for(lambda ev: len(live(ev)) >= 1, WAIT)
            await watch.settle()
            assert [path for _, path, _ in live(watch.events)] == [str(base / "top.csv")]

    run(scenario())


def test_a_path_reached_through_a_symlink_is_reported_as_configured(base: Path) -> None:
    async def scenario() -> None:
        (base / "real" / "sub").mkdir(parents=True)
        (base / "link").symlink_to(base / "real")
        source = make_component(
            FanotifySource, base, paths=[str(base / "link")], events=["closed_write"]
        )
        async with Running(source) as watch:
            (base / "real" / "sub" / "a.csv").write_text("x")
            await watch.wait_for(lambda ev: len(live(ev)) >= 1, WAIT)
            assert live(watch.events) == [("closed_write", str(base / "link/sub/a.csv"), None)]
            assert watch.events[-1].meta["root"] == str(base / "link")

    run(scenario())


def test_a_single_file_can_be_watched(base: Path) -> None:
    async def scenario() -> None:
        target = base / "settings.ini"
        target.write_text("a=1")
        source = make_component(FanotifySource, base, paths=[str(target)], events=["closed_write"])
        async with Running(source) as watch:
            (base / "other.ini").write_text("b=1")
            target.write_text("a=2")
            await watch.wait_for(lambda ev: len(live(ev)) >= 1, WAIT)
            await watch.settle()
            assert live(watch.events) == [("closed_write", str(target), None)]
            assert not watch.events[-1].is_dir

    run(scenario())


def test_a_folder_moved_in_is_reported_with_its_files_and_then_watched(base: Path) -> None:
    async def scenario() -> None:
        inbox, batch = base / "inbox", base / "batch"
        inbox.mkdir()
        (batch / "day1").mkdir(parents=True)
        source = make_component(FanotifySource, base, paths=[str(inbox)])
        async with Running(source) as watch:
            # Seen (and judged outside) before it moves in.
            (batch / "day1" / "a.csv").write_text("x")
            await asyncio.sleep(0.3)
            os.rename(batch, inbox / "batch")
            target = inbox / "batch" / "day1" / "a.csv"
            await watch.wait_for(lambda ev: "closed_write" in watch.kinds(target), WAIT)
            later = target.with_name("b.csv")
            later.write_text("y")
            await watch.wait_for(lambda ev: "closed_write" in watch.kinds(later), WAIT)
            moved = [e for e in watch.events if e.kind is EventKind.MOVED]
            assert [(e.path, e.src_path, e.is_dir) for e in moved] == [
                (str(inbox / "batch"), None, True)
            ]
            scanned = [e for e in watch.events if e.meta.get("scan")]
            assert {(e.kind.value, e.path) for e in scanned} == {
                ("created", str(inbox / "batch" / "day1")),
                ("created", str(target)),
                ("closed_write", str(target)),
            }
            assert "created" in watch.kinds(later)  # not a scan: a live event

    run(scenario())


def test_a_folder_moved_out_is_reported_deleted_and_no_longer_watched(base: Path) -> None:
    async def scenario() -> None:
        inbox = base / "inbox"
        (inbox / "sub").mkdir(parents=True)
        (inbox / "sub" / "early.csv").write_text("x")
        source = make_component(
            FanotifySource, base, paths=[str(inbox)], events=["deleted", "created"]
        )
        async with Running(source) as watch:
            os.rename(inbox / "sub", base / "sub")
            await watch.wait_for(lambda ev: len(live(ev)) >= 1, WAIT)
            (base / "sub" / "after.csv").write_text("x")
            await watch.settle()
            assert live(watch.events) == [("deleted", str(inbox / "sub"), None)]

    run(scenario())


def test_renaming_or_deleting_a_watched_path_itself_is_reported(base: Path) -> None:
    async def scenario() -> None:
        inbox = base / "inbox"
        inbox.mkdir()
        source = make_component(FanotifySource, base, paths=[str(inbox)], events=["deleted"])
        async with Running(source) as watch:
            os.rename(inbox, base / "gone")
            await watch.wait_for(lambda ev: len(live(ev)) >= 1, WAIT)
            (base / "gone" / "f.csv").write_text("x")
            inbox.mkdir()  # the mark covers the file system: the path works again
            (inbox / "back.csv").write_text("x")
            (inbox / "back.csv").unlink()
            await watch.wait_for(lambda ev: len(live(ev)) >= 2, WAIT)
            await watch.settle()
            assert live(watch.events) == [
                ("deleted", str(inbox), None),
                ("deleted", str(inbox / "back.csv"), None),
            ]

    run(scenario())


@pytest.mark.parametrize("index", [True, False], ids=["index", "no-index"])
def test_deleting_a_tree_reports_every_entry(base: Path, index: bool) -> None:
    async def scenario() -> None:
        tree = base / "tree"
        (tree / "x" / "y").mkdir(parents=True)
        for name in ("a", "x/b", "x/y/c"):
            (tree / name).write_text("z")
        source = make_component(
            FanotifySource, base, paths=[str(base)], events=["deleted"], index=index
        )
        async with Running(source) as watch:
            shutil.rmtree(tree)
            await watch.wait_for(lambda ev: str(tree) in {p for _, p, _ in live(ev)}, WAIT)
            await watch.settle()
            expected = {str(tree / n) for n in ("a", "x/b", "x/y/c", "x/y", "x")} | {str(tree)}
            assert sorted(p for _, p, _ in live(watch.events)) == sorted(expected)

    run(scenario())


def test_a_new_tree_made_and_removed_before_it_is_read_is_reported(shm: Path) -> None:
    async def scenario() -> None:
        source = make_component(
            FanotifySource, shm, paths=[str(shm)], events=["created", "deleted"]
        )
        async with Running(source) as watch:
            # No await in between: the source reads all of it at once, merged by the kernel.
            (shm / "t" / "u").mkdir(parents=True)
            (shm / "t" / "u" / "f").write_text("x")
            os.mkdir(shm / "d")
            os.rmdir(shm / "d")
            shutil.rmtree(shm / "t")
            await watch.wait_for(lambda ev: len(live(ev)) >= 8, WAIT)
            await watch.settle()
            got = live(watch.events)
            for path in ("t", "t/u", "t/u/f", "d"):
                # A merged CREATE|DELETE is reported as created, then deleted.
                assert [k for k, p, _ in got if p == str(shm / path)] == ["created", "deleted"]

    run(scenario())


@pytest.mark.parametrize("index", [True, False], ids=["index", "no-index"])
def test_an_overflow_is_recovered_by_a_rescan(shm: Path, index: bool) -> None:
    async def scenario() -> None:
        inbox, second = shm / "inbox", shm / "second"
        inbox.mkdir()
        second.mkdir()
        doomed = inbox / "doomed.csv"
        doomed.write_text("x")
        source = make_component(
            FanotifySource,
            shm,
            paths=[str(inbox), str(second)],
            events=["closed_write", "deleted"],
            index=index,
            unlimited_queue=False,
        )
        count = 20_000  # more than the 16,384 events the kernel queues
        async with Running(source) as watch:
            # The source cannot read while this loop runs: the kernel queue overflows.
            for i in range(count):
                fd = os.open(inbox / f"f{i:05d}", os.O_WRONLY | os.O_CREAT, 0o644)
                os.write(fd, b"x")
                os.close(fd)
            doomed.unlink()  # lost in the overflow: only the rescan can tell
            expected = {str(inbox / f"f{i:05d}") for i in range(count)}

            def closed(events: list[Event]) -> set[str]:
                return {e.path for e in events if e.kind is EventKind.CLOSED_WRITE}

            await watch.wait_for(lambda ev: expected <= closed(ev), 120)
            overflows = [e for e in watch.events if e.kind is EventKind.OVERFLOW]
            assert {e.path for e in overflows} == {str(inbox), str(second)}
            assert all(e.is_dir for e in overflows)
            assert any(e.meta.get("scan") for e in watch.events)
            if index:
                await watch.wait_for(lambda ev: "deleted" in watch.kinds(doomed), WAIT)
                scanned = [e for e in watch.events if e.meta.get("scan")]
                # Only what the queue lost is reported again.
                assert len(scanned) < count
            else:
                assert "deleted" not in watch.kinds(doomed)

    run(scenario())


def test_by_default_a_burst_the_source_cannot_read_waits_in_the_queue(shm: Path) -> None:
    async def scenario() -> None:
        inbox = shm / "inbox"
        inbox.mkdir()
        source = make_component(
            FanotifySource, shm, paths=[str(inbox)], events=["closed_write", "deleted"]
        )
        count = 40_000  # more than twice the kernel's usual queue of 16,384 events
        async with Running(source) as watch:
            for i in range(count):  # the source cannot read while this loop runs
                fd = os.open(inbox / f"f{i:05d}", os.O_WRONLY | os.O_CREAT, 0o644)
                os.write(fd, b"x")
                os.close(fd)
            (inbox / "f00000").unlink()
            await watch.wait_for(lambda ev: len(ev) == count + 1, 120)
            kinds = collections.Counter(e.kind for e in watch.events)
            assert kinds == {EventKind.CLOSED_WRITE: count, EventKind.DELETED: 1}
            assert len({e.path for e in watch.events}) == count
            assert not any(e.meta.get("scan") for e in watch.events)  # nothing rescanned

    run(scenario())


def test_a_missing_path_is_a_clear_error_unless_create_missing(base: Path) -> None:
    async def scenario() -> None:
        missing = base / "nope"
        source = make_component(FanotifySource, base, paths=["nope"])
        with pytest.raises(SourceError, match="nope does not exist; create it, or set `create_"):
            await source.open()
        await source.close()
        source = make_component(FanotifySource, base, paths=["nope"], create_missing=True)
        async with Running(source):
            assert missing.is_dir()

    run(scenario())


def test_a_missing_path_is_waited_for_when_asked(base: Path) -> None:
    async def scenario() -> None:
        later, moved_in = base / "later" / "inbox", base / "moved" / "inbox"
        source = make_component(
            FanotifySource,
            base,
            paths=[str(later), str(moved_in)],
            wait_missing=True,
            events=["created", "closed_write"],
        )
        async with Running(source) as watch:
            later.mkdir(parents=True)
            (later / "f.csv").write_text("x")
            ready = base / "ready"
            (ready / "sub").mkdir(parents=True)
            (ready / "sub" / "g.csv").write_text("x")
            (base / "moved").mkdir()
            os.rename(ready, moved_in)
            g = moved_in / "sub" / "g.csv"
            await watch.wait_for(lambda ev: "closed_write" in watch.kinds(g), WAIT)
            await watch.wait_for(lambda ev: "closed_write" in watch.kinds(later / "f.csv"), WAIT)
            assert live_kinds(watch.events, later) == ["created"]
            assert {e.meta["root"] for e in watch.events if e.path.startswith(str(later))} == {
                str(later)
            }

    run(scenario())


def test_nested_paths_report_under_the_innermost(base: Path) -> None:
    async def scenario() -> None:
        inner = base / "a" / "b"
        inner.mkdir(parents=True)
        source = make_component(
            FanotifySource, base, paths=[str(base / "a"), str(inner)], events=["closed_write"]
        )
        async with Running(source) as watch:
            (base / "a" / "x.csv").write_text("x")
            (inner / "y.csv").write_text("y")
            await watch.wait_for(lambda ev: len(live(ev)) >= 2, WAIT)
            await watch.settle()
            reported = [e for e in watch.events if e.kind is EventKind.CLOSED_WRITE]
            assert [(e.path, e.meta["root"]) for e in reported] == [
                (str(base / "a" / "x.csv"), str(base / "a")),
                (str(inner / "y.csv"), str(inner)),
            ]

    run(scenario())


def test_a_mount_mark_reports_file_events(shm: Path) -> None:
    async def scenario() -> None:
        source = make_component(
            FanotifySource, shm, paths=[str(shm)], mark="mount", events=["closed_write"]
        )
        async with Running(source) as watch:
            os.mkdir(shm / "old")
            os.rename(shm / "old", shm / "new")
            (shm / "new" / "a.csv").write_text("x")
            await watch.wait_for(lambda ev: len(live(ev)) >= 1, WAIT)
            assert live(watch.events) == [("closed_write", str(shm / "new" / "a.csv"), None)]

    run(scenario())


def test_a_mount_mark_refuses_the_events_the_kernel_refuses() -> None:
    with pytest.raises(ValueError, match="`mark: mount` cannot report created, deleted"):
        FanotifyOptions.model_validate(
            {"paths": ["/tmp"], "mark": "mount", "events": ["created", "deleted"]}
        )
    with pytest.raises(ValueError, match="set `events` to some of those"):
        FanotifyOptions.model_validate({"paths": ["/tmp"], "mark": "mount"})


CHILD = """
import asyncio, os, sys
from pathlib import Path
from pipeline.errors import SourceError
from pipeline.sources.fanotify import FanotifySource
from tests.conftest import make_component

async def main() -> int:
    # Built (its options validated) as a config load does, before any privilege goes.
    source = make_component(FanotifySource, Path(sys.argv[1]), paths=[sys.argv[1]])
    if sys.argv[2] == "nobody":  # become nobody after the set-up: every capability goes
        os.setgroups([])
        os.setgid(65534)
        os.setuid(65534)
    with open("/proc/self/status") as status:
        caps = next(line for line in status if line.startswith("CapEff:"))
    print("sys_admin" if int(caps.split()[1], 16) & (1 << 21) else "no sys_admin")
    try:
        await source.open()
    except SourceError as exc:
        print(exc)
        return 3
    finally:
        await source.close()
    return 0

sys.exit(asyncio.run(main()))
"""


@pytest.mark.parametrize("how", ["setpriv", "nobody"])
def test_without_cap_sys_admin_the_error_names_it_and_the_alternatives(shm: Path, how: str) -> None:
    root = Path(__file__).resolve().parents[2]
    os.chmod(shm, 0o755)
    command = [sys.executable, "-c", CHILD, str(shm), how]
    if how == "setpriv":  # root, but without CAP_SYS_ADMIN
        setpriv = shutil.which("setpriv")
        assert setpriv, "setpriv (util-linux) is needed to drop a capability"
        command = [setpriv, "--inh-caps=-sys_admin", "--bounding-set=-sys_admin", *command]
    denied = subprocess.run(
        command, cwd=root, capture_output=True, text=True, timeout=60, check=False
    )
    assert denied.returncode == 3, denied.stderr
    first, message = denied.stdout.strip().split("\n")[:2]
    assert first == "no sys_admin"
    assert "CAP_SYS_ADMIN" in message
    assert "`inotify`" in message and "`poll`" in message
    # The control: the same child with the capability watches.
    allowed = subprocess.run(
        [sys.executable, "-c", CHILD, str(shm), "root"],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert allowed.returncode == 0, allowed.stdout + allowed.stderr
    assert allowed.stdout.splitlines()[0] == "sys_admin"


def test_live_kernel_buffers_decode_to_what_was_done(shm: Path) -> None:
    """The binding alone: mark, act, read and decode a buffer captured right now."""
    fd = api.init(api.FAN_CLASS_NOTIF | api.FAN_REPORT_DFID_NAME_TARGET)
    try:
        mask = api.FAN_CREATE | api.FAN_CLOSE_WRITE | api.FAN_DELETE | api.FAN_RENAME
        api.mark(fd, api.FAN_MARK_ADD | api.FAN_MARK_FILESYSTEM, mask | api.FAN_ONDIR, bytes(shm))
        (shm / "a").write_bytes(b"x")
        os.rename(bytes(shm / "a"), bytes(shm) + b"/b\xe9")
        os.mkdir(shm / "d")
        data = b""
        while chunk := api.read_events(fd):
            data += chunk
        mine = [e for e in api.decode(data) if e.pid == os.getpid()]
        folder = api.fsid_bytes(os.statvfs(shm).f_fsid) + api.name_to_handle(bytes(shm))
        assert [(e.mask, e.dir, e.name, e.dir2, e.name2) for e in mine] == [
            (api.FAN_CREATE | api.FAN_CLOSE_WRITE, folder, b"a", None, b""),
            (api.FAN_RENAME, folder, b"a", folder, b"b\xe9"),
            (api.FAN_CREATE | api.FAN_ONDIR, folder, b"d", None, b""),
        ]
        assert mine[2].obj == folder[:8] + api.name_to_handle(bytes(shm / "d"))
        mount_fd = os.open(shm, os.O_RDONLY | os.O_DIRECTORY)
        try:
            opened = api.open_by_handle(mount_fd, api.handle_of(folder))
            assert os.readlink(f"/proc/self/fd/{opened}") == str(shm)
            os.close(opened)
            os.rmdir(shm / "d")
            with pytest.raises(OSError) as gone:
                api.open_by_handle(mount_fd, api.handle_of(mine[2].obj))
            assert gone.value.errno == errno.ESTALE
        finally:
            os.close(mount_fd)
    finally:
        os.close(fd)
