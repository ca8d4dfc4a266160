"""The inotify source when the kernel queue overflows, and when the pipeline is slow."""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from pipeline import Event, EventKind, stop_tasks
from pipeline.linux import inotify as api
from pipeline.sources.inotify import InotifySource
from tests.conftest import make_component

pytestmark = pytest.mark.integration

QUEUE_LIMIT = Path("/proc/sys/fs/inotify/max_queued_events")
WRITER = """
import os, sys
root, count = sys.argv[1], int(sys.argv[2])
for i in range(count):
    folder = root if i % 2 else os.path.join(root, f"d{i // 5000}")
    if i % 5000 == 0:
        os.makedirs(folder)  # new folders, mid-burst
    fd = os.open(os.path.join(folder, f"f{i:06d}.csv"), os.O_WRONLY | os.O_CREAT, 0o644)
    os.write(fd, b"x")
    os.close(fd)
"""
COUNT = 20_000


@contextlib.contextmanager
def sysctl(path: Path, value: int) -> Iterator[None]:
    """Set a /proc/sys value for the block, and put the old one back whatever happens."""
    old = path.read_text().strip()
    path.write_text(str(value))
    try:
        yield
    finally:
        path.write_text(old)


def queue_of(size: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """Give the inotify instances made from now on a queue of `size` events. The sysctl
    applies to instances created after it changes, so it is lowered only around that."""
    real_init = api.init

    def init() -> int:
        with sysctl(QUEUE_LIMIT, size):
            return real_init()

    monkeypatch.setattr(api, "init", init)


def expected(root: Path) -> set[str]:
    return {
        str((root if i % 2 else root / f"d{i // 5000}") / f"f{i:06d}.csv") for i in range(COUNT)
    }


async def collect_until(events: list[Event], done: object, timeout: float = 90) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not done():  # type: ignore[operator]
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"only {len(events)} events within {timeout}s")
        await asyncio.sleep(0.05)


@pytest.mark.parametrize(
    "kinds", [["created", "closed_write", "overflow"], ["closed_write"]], ids=["all", "closed"]
)
def test_a_burst_that_overflows_the_kernel_queue_still_reports_every_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, kinds: list[str]
) -> None:
    queue_of(64, monkeypatch)
    files = expected(tmp_path)

    async def scenario() -> None:
        source = make_component(InotifySource, tmp_path, paths=[str(tmp_path)], events=kinds)
        events: list[Event] = []
        blocked = [False]

        async def emit(event: Event) -> None:
            events.append(event)
            if not blocked[0]:
                # The consumer is stuck (the whole loop is) for the length of the burst.
                blocked[0] = True
                subprocess.run(
                    [sys.executable, "-c", WRITER, str(tmp_path), str(COUNT)], check=True
                )

        await source.open()
        task = asyncio.create_task(source.run(emit))
        try:
            (tmp_path / "go.csv").write_text("x")

            def closed() -> set[str]:
                return {e.path for e in events if e.kind is EventKind.CLOSED_WRITE}

            await collect_until(events, lambda: files <= closed())
            await asyncio.sleep(0.5)
        finally:
            await stop_tasks(task)
            await source.close()
        overflows = [e for e in events if e.kind is EventKind.OVERFLOW]
        if "overflow" in kinds:
            assert [(e.path, e.is_dir, e.meta["root"]) for e in overflows] == [
                (str(tmp_path), True, str(tmp_path))
            ]
            created = [e.path for e in events if e.kind is EventKind.CREATED]
            assert len(created) == len(set(created))  # none reported created twice
            assert files <= set(created)
        else:
            assert overflows == []
        scanned = [e for e in events if e.meta.get("scan")]
        assert scanned, "the files the kernel dropped come from the rescan"
        assert all(e.meta["root"] == str(tmp_path) for e in scanned)
        closed_files = [e.path for e in events if e.kind is EventKind.CLOSED_WRITE]
        assert len(closed_files) - len(set(closed_files)) <= COUNT // 20

    asyncio.run(scenario())


FLAT_WRITER = """
import os, sys
root, count = sys.argv[1], int(sys.argv[2])
for i in range(count):
    fd = os.open(os.path.join(root, f"f{i:06d}.csv"), os.O_WRONLY | os.O_CREAT, 0o644)
    os.write(fd, b"x")
    os.close(fd)
"""


def test_a_slow_pipeline_does_not_make_the_kernel_queue_overflow(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A slow sink holds the source up (back-pressure); meanwhile the source keeps the
    # kernel queue empty, holding the events in memory instead.
    queue = 1024
    queue_of(queue, monkeypatch)
    count = 8_000
    files = {str(tmp_path / f"f{i:06d}.csv") for i in range(count)}

    async def scenario() -> None:
        source = make_component(
            InotifySource,
            tmp_path,
            paths=[str(tmp_path)],
            events=["created", "closed_write", "overflow"],
        )
        events: list[Event] = []

        async def emit(event: Event) -> None:
            events.append(event)
            if len(events) % 50 == 0:
                await asyncio.sleep(0.01)  # at most 5,000 events a second

        behind = [0]

        async def measure() -> None:
            """How far the pipeline fell behind: two events a file written, less those seen."""
            while True:
                written = len(os.listdir(tmp_path))
                behind[0] = max(behind[0], 2 * written - len(events))
                await asyncio.sleep(0.05)

        await source.open()
        task = asyncio.create_task(source.run(emit))
        sampler = asyncio.create_task(measure())
        try:
            writer = await asyncio.create_subprocess_exec(
                sys.executable, "-c", FLAT_WRITER, str(tmp_path), str(count)
            )
            await writer.wait()

            def closed() -> set[str]:
                return {e.path for e in events if e.kind is EventKind.CLOSED_WRITE}

            await collect_until(events, lambda: files <= closed())
        finally:
            await stop_tasks(sampler, task)
            await source.close()
        assert behind[0] > queue  # more than the kernel queue holds was waiting
        assert not [e for e in events if e.kind is EventKind.OVERFLOW]
        assert not [e for e in events if e.meta.get("scan")]
        assert sorted(e.path for e in events if e.kind is EventKind.CLOSED_WRITE) == sorted(files)
        assert sorted(e.path for e in events if e.kind is EventKind.CREATED) == sorted(files)

    asyncio.run(scenario())
