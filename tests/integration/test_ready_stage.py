"""The ready stage on real files, fed by real sources: stable, marker and rename modes."""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from pipeline import Event, Source, stop_tasks
from pipeline.sources.inotify import InotifySource
from pipeline.sources.poll import PollSource
from pipeline.stages.ready import ReadyStage
from tests.conftest import make_component

pytestmark = pytest.mark.integration


class Chain:
    """A real source feeding the ready stage; what the stage passes on, with when."""

    def __init__(self, stage: ReadyStage) -> None:
        self.stage = stage
        self.out: list[tuple[float, Event]] = []

    async def emit(self, event: Event) -> None:
        self.out.append((time.monotonic(), event))

    async def into_stage(self, event: Event) -> None:
        await self.stage.process(event, self.emit)

    def paths(self) -> list[str]:
        return [os.path.basename(e.path) for _, e in self.out]

    async def wait_for(self, count: int, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while len(self.out) < count:
            if time.monotonic() > deadline:
                raise AssertionError(f"only {self.paths()} within {timeout}s")
            await asyncio.sleep(0.01)


@contextlib.asynccontextmanager
async def running(source: Source[Any], stage: ReadyStage) -> AsyncIterator[Chain]:
    chain = Chain(stage)
    await source.open()
    tasks = [
        asyncio.create_task(source.run(chain.into_stage)),
        asyncio.create_task(stage.run(chain.emit)),
    ]
    try:
        yield chain
    finally:
        await stop_tasks(*tasks)
        await source.close()


def test_stable_mode_passes_a_file_appended_in_chunks_only_once_it_stops(tmp_path: Path) -> None:
    """A writer over NFS: no close events, pauses between chunks shorter than stable_for."""
    inbox = tmp_path / "inbox"
    inbox.mkdir()

    async def scenario() -> None:
        source = make_component(PollSource, tmp_path, paths=[str(inbox)], interval="50ms")
        stage = make_component(
            ReadyStage, tmp_path, mode="stable", stable_for="1s", poll_interval="50ms"
        )
        async with running(source, stage) as chain:
            target = inbox / "export.csv"
            with open(target, "ab") as handle:
                for _ in range(6):
                    handle.write(b"x" * 4096)
                    handle.flush()
                    await asyncio.sleep(0.2)  # a pause, but under stable_for
                    assert chain.out == [], "a partial file was passed on"
            finished = time.monotonic()
            (inbox / "small.csv").write_bytes(b"done")  # a second file, written at once
            await chain.wait_for(2)
            await asyncio.sleep(1.0)  # nothing more comes: each content once
            by_name = {os.path.basename(e.path): (at, e) for at, e in chain.out}
            assert sorted(by_name) == ["export.csv", "small.csv"]
            at, event = by_name["export.csv"]
            assert at - finished >= 1.0 - 0.2  # it had been stable for stable_for
            assert event.meta["size"] == 6 * 4096
            assert event.meta["ready"] == "stable"
            assert event.meta["mtime_ns"] == target.stat().st_mtime_ns
            assert len(chain.out) == 2

    asyncio.run(scenario())


def test_marker_mode_releases_a_folder_when_its_success_marker_lands(tmp_path: Path) -> None:
    landing = tmp_path / "landing"
    landing.mkdir()

    async def scenario() -> None:
        source = make_component(InotifySource, tmp_path, paths=[str(landing)])
        stage = make_component(ReadyStage, tmp_path, mode="marker")
        async with running(source, stage) as chain:
            day = landing / "day=2026-11-24"
            day.mkdir()
            await asyncio.sleep(0.1)  # the source watches the new folder
            for i in range(3):
                (day / f"part-{i}.parquet").write_bytes(b"PAR1" + bytes(100 * i))
            (day / ".part-0.parquet.crc").write_bytes(b"crc")
            await asyncio.sleep(0.3)
            assert chain.out == [], "files passed before their marker"
            (day / "_SUCCESS").write_bytes(b"")
            await chain.wait_for(3)
            (landing / "single.csv").write_bytes(b"a,b\n")
            (landing / "single.csv.done").write_bytes(b"")
            await chain.wait_for(4)
            await asyncio.sleep(0.3)
            assert chain.paths() == [
                "part-0.parquet",
                "part-1.parquet",
                "part-2.parquet",
                "single.csv",
            ]
            assert [e.meta["size"] for _, e in chain.out] == [4, 104, 204, 4]
            assert {e.meta["ready"] for _, e in chain.out} == {"marker"}

    asyncio.run(scenario())


def test_rename_mode_passes_a_file_renamed_from_its_temp_name_with_its_final_size(
    tmp_path: Path,
) -> None:
    inbox = tmp_path / "inbox"
    inbox.mkdir()

    async def scenario() -> None:
        source = make_component(InotifySource, tmp_path, paths=[str(inbox)])
        stage = make_component(ReadyStage, tmp_path, mode="rename")
        async with running(source, stage) as chain:
            temp = inbox / ".orders.csv.part"
            with open(temp, "wb") as handle:
                for _ in range(4):
                    handle.write(b"y" * 1000)
                    handle.flush()
                    await asyncio.sleep(0.05)
            await asyncio.sleep(0.2)
            assert chain.out == [], "the temp file was passed on"
            os.rename(temp, inbox / "orders.csv")
            await chain.wait_for(1)
            await asyncio.sleep(0.2)
            [(_, event)] = chain.out
            assert (event.kind.value, event.path, event.src_path) == (
                "moved",
                str(inbox / "orders.csv"),
                str(temp),
            )
            assert (event.meta["size"], event.meta["ready"]) == (4000, "rename")

    asyncio.run(scenario())
