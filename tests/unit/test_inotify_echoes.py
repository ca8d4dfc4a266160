"""Dropping the queued kernel events of changes a scan already reported."""

from __future__ import annotations

import os
from pathlib import Path

from pipeline.sources.echoes import ScanEchoes
from pipeline.sources.snapshot import entry_of


def test_each_reported_arrival_and_departure_drops_one_event() -> None:
    echoes = ScanEchoes()
    assert not echoes.active
    echoes.arrived("/in/a", 0)
    echoes.gone("/in/b")
    assert echoes.active
    assert echoes.take_arrival("/in/a")
    assert not echoes.take_arrival("/in/a")  # a later creation is news again
    assert not echoes.take_gone("/in/a")
    assert echoes.take_gone("/in/b")
    assert not echoes.take_gone("/in/b")


def test_a_close_is_dropped_only_when_the_file_is_still_as_the_scan_saw_it(tmp_path: Path) -> None:
    same, grown = tmp_path / "same.csv", tmp_path / "grown.csv"
    for path in (same, grown):
        path.write_text("x")
    echoes = ScanEchoes()
    for path in (same, grown):
        echoes.arrived(str(path), entry_of(os.stat(path)))
    with open(grown, "a") as handle:
        handle.write("more, written after the scan")
    assert echoes.take_content(str(same))
    assert not echoes.take_content(str(grown))
    assert not echoes.take_content(str(same))  # once only
    echoes.arrived(str(tmp_path / "unknown"), 12345)  # seen without a stat: never dropped
    assert not echoes.take_content(str(tmp_path / "unknown"))


def test_clear_forgets_everything() -> None:
    echoes = ScanEchoes()
    echoes.arrived("/in/a", 0)
    echoes.changed("/in/c", 0)
    echoes.gone("/in/b")
    echoes.clear()
    assert not echoes.active
    assert not echoes.take_arrival("/in/a")
    assert not echoes.take_gone("/in/b")
