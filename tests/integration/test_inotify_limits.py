"""The inotify source when fs.inotify.max_user_watches runs out."""

from __future__ import annotations

import asyncio
import os
import pwd
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from pipeline import EventKind
from pipeline.errors import SourceError
from pipeline.linux import inotify as api
from pipeline.sources.inotify import InotifySource
from tests.conftest import make_component
from tests.integration.test_inotify_overflow import sysctl
from tests.integration.test_inotify_source import AlreadyOpen

pytestmark = pytest.mark.integration

WATCH_LIMIT = Path("/proc/sys/fs/inotify/max_user_watches")


def watches_in_use() -> int:
    """Every inotify watch of every process: at least what any one user has."""
    count = 0
    for fdinfo in Path("/proc").glob("[0-9]*/fdinfo/*"):
        try:
            count += fdinfo.read_text().count("inotify wd:")
        except OSError:
            continue
    return count


@pytest.fixture
def limit(monkeypatch: pytest.MonkeyPatch) -> int:
    """A watch limit for the test, and inotify instances whose watches count against the
    user `nobody` (who has none): lowering the limit then leaves root's processes (other
    tests running meanwhile) the room they had."""
    nobody = pwd.getpwnam("nobody").pw_uid
    real_init = api.init

    def init() -> int:
        os.seteuid(nobody)
        try:
            return real_init()
        finally:
            os.seteuid(0)

    monkeypatch.setattr(api, "init", init)
    return watches_in_use() + 2000


def make_tree(root: Path, folders: int) -> None:
    for i in range(folders):
        (root / f"d{i // 10:04d}" / f"e{i % 10}").mkdir(parents=True)


def test_running_out_of_watches_is_a_clear_error(tmp_path: Path, limit: int) -> None:
    make_tree(tmp_path, limit + 200)

    async def scenario() -> None:
        source = make_component(InotifySource, tmp_path, paths=[str(tmp_path)])
        with pytest.raises(SourceError) as failure, sysctl(WATCH_LIMIT, limit):
            await source.open()
        await source.close()
        message = str(failure.value)
        assert f"fs.inotify.max_user_watches is {limit}" in message
        assert "sysctl -w fs.inotify.max_user_watches=" in message
        assert "`on_watch_limit: poll`" in message
        assert "`fanotify` or `poll` source" in message

    asyncio.run(scenario())


def test_folders_left_unwatched_are_polled_with_on_watch_limit_poll(
    tmp_path: Path, limit: int
) -> None:
    make_tree(tmp_path, limit + 200)

    async def scenario() -> None:
        source = make_component(
            InotifySource,
            tmp_path,
            paths=[str(tmp_path)],
            on_watch_limit="poll",
            poll_interval="100ms",
            events=["created", "closed_write", "deleted"],
        )
        with capture_logs() as logs:
            with sysctl(WATCH_LIMIT, limit):
                await source.open()
            async with AlreadyOpen(source) as watch:
                assert source.trees is not None
                polled = sorted(source.trees.polled.tops)
                assert polled
                assert not set(polled) & set(source.wds)
                live = next(
                    p for p in sorted(source.wds) if p.count("/") > str(tmp_path).count("/") + 1
                )
                slow = Path(polled[-1]) / "slow.csv"
                fast = Path(live) / "fast.csv"
                slow.write_text("x")
                fast.write_text("x")
                await watch.wait_for(
                    lambda ev: (
                        "closed_write" in watch.kinds(slow) and "closed_write" in watch.kinds(fast)
                    )
                )
                slow.unlink()
                await watch.wait_for(lambda ev: "deleted" in watch.kinds(slow))
                await watch.settle()
                assert watch.kinds(fast) == ["created", "closed_write"]
                assert watch.kinds(slow) == ["created", "closed_write", "deleted"]
                assert all(e.meta.get("scan") for e in watch.events if e.path == str(slow))
                (Path(live) / "new").mkdir()  # the limit is back up: new folders are watched
                (Path(live) / "new" / "n.csv").write_text("x")
                await watch.wait_for(
                    lambda ev: any(
                        e.path == str(Path(live) / "new" / "n.csv")
                        and e.kind is EventKind.CLOSED_WRITE
                        for e in ev
                    )
                )
        warned = [e for e in logs if e["event"].startswith("inotify watch limit reached")]
        assert [(e["log_level"], e["max_user_watches"]) for e in warned] == [
            ("warning", str(limit))
        ]

    asyncio.run(scenario())
