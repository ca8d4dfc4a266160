"""The inotify source reports its initial walk and its catch-up as progress for the status."""

from __future__ import annotations

import asyncio
import dataclasses
from pathlib import Path

from pipeline.engine.progress import ScanBoard
from pipeline.sources.inotify import InotifySource
from tests.conftest import Running, make_component


def test_a_big_walk_and_a_catch_up_are_reported(tmp_path: Path) -> None:
    tree = tmp_path / "tree"
    for i in range(1500):
        (tree / f"d{i // 100}" / f"e{i}").mkdir(parents=True)
    reports: list[tuple[str, int, int | None]] = []
    board = ScanBoard()

    def progress(task: str, done: int, total: int | None) -> None:
        reports.append((task, done, total))
        board.report("src", task, done, total)

    async def run_once(state: Path) -> None:
        source = make_component(InotifySource, tmp_path, state_dir=state, paths=[str(tree)])
        source.context = dataclasses.replace(source.context, progress=progress)
        async with Running(source) as running:
            await running.settle(0.3)

    state = tmp_path / "state"
    asyncio.run(run_once(state))
    walks = [r for r in reports if r[0] == "initial walk"]
    assert (1024, None) in [(done, total) for _, done, total in walks]  # while walking
    assert walks[-1][1] == walks[-1][2] and walks[-1][1] >= 1516  # the end: done == total
    reports.clear()
    (tree / "d0" / "new.txt").write_text("while it was down")
    asyncio.run(run_once(state))
    assert ("catch-up", 1, 1) in reports
