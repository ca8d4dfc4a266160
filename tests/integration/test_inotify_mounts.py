"""The inotify source when a file system below (or at) a watched path is unmounted."""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from pipeline.sources.inotify import InotifySource
from tests.conftest import Running, make_component

pytestmark = pytest.mark.integration


@contextlib.contextmanager
def tmpfs(at: Path) -> Iterator[None]:
    """A tmpfs mounted at `at` (unmounted at the end if the test did not)."""
    subprocess.run(["mount", "-t", "tmpfs", "fspipeline-test", str(at)], check=True)
    try:
        yield
    finally:
        subprocess.run(["umount", str(at)], check=False, capture_output=True)


def umount(at: Path) -> None:
    subprocess.run(["umount", str(at)], check=True)


@pytest.mark.parametrize("where", ["below", "at"])
def test_an_unmounted_file_system_is_reported_as_what_changed(tmp_path: Path, where: str) -> None:
    root = tmp_path / "watched"
    mount = root / "mnt" if where == "below" else root
    mount.mkdir(parents=True)
    (mount / "under.csv").write_text("hidden by the mount")

    async def scenario() -> None:
        with tmpfs(mount):
            (mount / "deep").mkdir()
            (mount / "deep" / "on-mount.csv").write_text("x")
            source = make_component(
                InotifySource,
                tmp_path,
                paths=[str(root)],
                events=["created", "deleted", "closed_write"],
            )
            async with Running(source) as watch:
                umount(mount)
                await watch.wait_for(lambda ev: "closed_write" in watch.kinds(mount / "under.csv"))
                await watch.settle()
                assert sorted((e.kind.value, e.path) for e in watch.events) == [
                    ("closed_write", str(mount / "under.csv")),
                    ("created", str(mount / "under.csv")),
                    ("deleted", str(mount / "deep")),
                    ("deleted", str(mount / "deep" / "on-mount.csv")),
                ]
                assert all(e.meta["scan"] for e in watch.events)
                del watch.events[:]
                (mount / "after.csv").write_text("x")  # the folder now there is watched
                await watch.wait_for(lambda ev: len(ev) >= 2)
                await watch.settle()
                assert watch.kinds(mount / "after.csv") == ["created", "closed_write"]

    asyncio.run(scenario())


def test_a_mount_over_the_watched_folder_is_noticed_and_watched(tmp_path: Path) -> None:
    from pipeline.linux.mounts import MountWatch

    watched, other = tmp_path / "watched", tmp_path / "other"
    watched.mkdir()
    other.mkdir()
    (other / "shown.csv").write_text("already there")
    watch = MountWatch()
    try:
        subprocess.run(["mount", "--bind", str(other), str(watched)], check=True)
        try:
            deadline = time.monotonic() + 5
            changed: set[str] = set()
            while not changed and time.monotonic() < deadline:
                time.sleep(0.02)
                changed = watch.changes()
            assert changed == {str(watched)}
        finally:
            subprocess.run(["umount", str(watched)], check=True)
    finally:
        watch.close()
