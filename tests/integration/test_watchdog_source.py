"""The watchdog source, with the native observer and the polling one, on real files."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest

from pipeline.sources.watchdog_observer import WatchdogSource
from tests.conftest import Running, make_component

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("observer", ["auto", "polling"])
def test_changes_are_reported_as_fspipeline_events(tmp_path: Path, observer: str) -> None:
    inbox = tmp_path / "inbox"
    (inbox / "sub").mkdir(parents=True)
    outside = tmp_path / "outside"
    outside.mkdir()

    async def scenario() -> None:
        source = make_component(
            WatchdogSource,
            tmp_path,
            paths=["inbox"],
            observer=observer,
            polling_interval="50ms",
            events=["created", "moved", "deleted"],
        )
        async with Running(source) as watch:
            target = inbox / "sub" / "a.csv"
            target.write_text("x")
            await watch.wait_for(lambda ev: "created" in watch.kinds(target))
            os.rename(target, inbox / "b.csv")
            await watch.wait_for(lambda ev: "moved" in watch.kinds(inbox / "b.csv"))
            os.rename(inbox / "b.csv", outside / "b.csv")
            await watch.wait_for(lambda ev: "deleted" in watch.kinds(inbox / "b.csv"))
            moved = next(e for e in watch.events if e.kind.value == "moved")
            assert moved.src_path == str(target)
            assert moved.source == "t/watchdog"
            assert moved.meta["root"] == str(inbox)
            assert all(not e.is_dir for e in watch.events)

    asyncio.run(scenario())


def test_the_native_observer_reports_closed_write_on_linux(tmp_path: Path) -> None:
    async def scenario() -> None:
        source = make_component(
            WatchdogSource, tmp_path, paths=[str(tmp_path)], events=["closed_write"]
        )
        async with Running(source) as watch:
            (tmp_path / "done.csv").write_text("x")
            await watch.wait_for(lambda ev: len(ev) == 1)
            assert watch.events[0].path == str(tmp_path / "done.csv")

    asyncio.run(scenario())
