"""The csvstats sink run directly, the way the engine runs it: open, send, close."""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path
from typing import Any

import pydantic
import pytest
import structlog
from pipeline import ComponentContext, Event, EventKind

from fspipeline_csvstats import CsvStatsOptions, CsvStatsSink


def make_sink(tmp_path: Path, **options: Any) -> CsvStatsSink:
    validated = CsvStatsOptions.model_validate(
        {"report": "report.jsonl", **options}, context={"config_dir": tmp_path}
    )
    context = ComponentContext(
        pipeline="t",
        label="t.sinks[0]",
        config_dir=tmp_path,
        state_dir=None,
        log=structlog.get_logger(),
    )
    return CsvStatsSink(validated, context)


def deliver(sink: CsvStatsSink, *events: Event) -> None:
    async def run() -> None:
        await sink.open()
        try:
            for event in events:
                await sink.send(event)
        finally:
            await sink.close()

    asyncio.run(run())


def report(tmp_path: Path) -> list[dict[str, Any]]:
    lines = (tmp_path / "report.jsonl").read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines]


def event(kind: EventKind, path: Path | str, **fields: Any) -> Event:
    return Event(kind=kind, path=str(path), source="t/test", **fields)


def test_counts_a_csv_file_and_appends_one_line(tmp_path: Path) -> None:
    data = tmp_path / "in" / "sales.csv"
    data.parent.mkdir()
    data.write_text("id,amount,currency\n1,10,EUR\n2,20,EUR\n3,5,USD\n", encoding="utf-8")
    sink = make_sink(tmp_path)
    written = event(EventKind.CLOSED_WRITE, data)

    deliver(sink, written)

    assert report(tmp_path) == [
        {"path": str(data), "rows": 3, "columns": 3, "event_id": written.id}
    ]


def test_report_is_appended_to_and_follows_options(tmp_path: Path) -> None:
    data = tmp_path / "a.CSV"
    data.write_text("1;2\n3;4\n", encoding="utf-8")
    moved = event(EventKind.MOVED, data, src_path=str(tmp_path / "a.part"))

    deliver(make_sink(tmp_path, delimiter=";", header=False), moved)
    deliver(make_sink(tmp_path, delimiter=";"), moved)

    assert [(line["rows"], line["columns"]) for line in report(tmp_path)] == [(2, 2), (1, 2)]


def test_other_events_are_accepted_and_ignored(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("a,b\n", encoding="utf-8")
    (tmp_path / "dir.csv").mkdir()
    deliver(
        make_sink(tmp_path),
        event(EventKind.CLOSED_WRITE, tmp_path / "notes.txt"),
        event(EventKind.DELETED, tmp_path / "gone.csv"),
        event(EventKind.CREATED, tmp_path / "dir.csv", is_dir=True),
    )
    assert report(tmp_path) == []


def test_a_missing_file_is_a_failed_delivery(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        deliver(make_sink(tmp_path), event(EventKind.CLOSED_WRITE, tmp_path / "gone.csv"))
    assert report(tmp_path) == []


def test_a_path_that_is_not_utf8_is_reported_losslessly(tmp_path: Path) -> None:
    raw = os.fsencode(tmp_path) + b"/caf\xe9.csv"
    with open(raw, "wb") as handle:
        handle.write(b"a,b\n1,2\n")
    deliver(make_sink(tmp_path), event(EventKind.CLOSED_WRITE, os.fsdecode(raw)))

    (line,) = report(tmp_path)
    assert line["path"].endswith("/caf\\xe9.csv")
    assert line["path_b64"]
    assert (line["rows"], line["columns"]) == (1, 2)


@pytest.mark.parametrize(
    "options",
    [{}, {"report": "r.jsonl", "delimiter": ";;"}, {"report": "r.jsonl", "separator": ";"}],
)
def test_bad_options_are_rejected(tmp_path: Path, options: dict[str, Any]) -> None:
    with pytest.raises(pydantic.ValidationError):
        CsvStatsOptions.model_validate(options, context={"config_dir": tmp_path})
