"""The `csvstats` sink: appends one JSON line with the size of each CSV file to a report."""

from __future__ import annotations

import asyncio
import base64
import json
import os
from typing import Any

from pipeline import ComponentContext, ComponentOptions, ConfigPath, Event, EventKind, Sink
from pydantic import Field

from fspipeline_csvstats.stats import CsvStats, count_csv

KINDS = frozenset({EventKind.CLOSED_WRITE, EventKind.CREATED, EventKind.MOVED})
"""The events after which a file has (new) content worth counting."""


class CsvStatsOptions(ComponentOptions):
    report: ConfigPath
    """JSON-lines file to append one line per CSV file to; created (with its folder) if
    missing. Relative to the config file."""
    delimiter: str = Field(default=",", min_length=1, max_length=1)
    """The one character between fields: `;` for many spreadsheet exports, `"\\t"` for TSV."""
    header: bool = True
    """The first record is a header: it gives the column count but is not a data row."""


def report_line(event: Event, stats: CsvStats) -> bytes:
    """The report line for `event`, newline included.

    A path that is not valid UTF-8 is written readably (bad bytes as `\\xNN`) and, under
    `path_b64`, as the base64 of its exact bytes, like fspipeline's own JSON.
    """
    raw = os.fsencode(event.path)
    record: dict[str, Any] = {
        "path": raw.decode("utf-8", "backslashreplace"),
        "rows": stats.rows,
        "columns": stats.columns,
        "event_id": event.id,
    }
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError:
        record["path_b64"] = base64.b64encode(raw).decode("ascii")
    return (json.dumps(record, ensure_ascii=False) + "\n").encode("utf-8")


class CsvStatsSink(Sink[CsvStatsOptions]):
    """Counts the data rows and columns of each CSV file and appends them to a JSON-lines report.

    Reacts to `closed_write`, `created` and `moved` events about files whose name ends in
    `.csv` (any case); every other event is accepted and ignored. Each line reads
    `{"path": ..., "rows": ..., "columns": ..., "event_id": ...}`. The file is read in a
    worker thread, so a large file never stalls the pipeline. A file that is gone or
    unreadable is a failed delivery: the engine retries it, then dead-letters it.

    Delivery is at least once: after a retry or a restart the same event may be reported
    twice, so readers should de-duplicate on `event_id`. Pair it with a source that reports
    `closed_write` and `moved`; at `created` a file is usually still empty.
    """

    type_name = "csvstats"
    Options = CsvStatsOptions

    def __init__(self, options: CsvStatsOptions, context: ComponentContext) -> None:
        super().__init__(options, context)
        self._fd = -1

    async def open(self) -> None:
        report = self.options.report
        report.parent.mkdir(parents=True, exist_ok=True)
        # O_APPEND: each line goes out in one write, so concurrent writers never interleave.
        self._fd = os.open(report, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o644)

    @staticmethod
    def wants(event: Event) -> bool:
        """True for the events this sink counts: new content in a `.csv` file."""
        return event.kind in KINDS and not event.is_dir and event.path.lower().endswith(".csv")

    async def send(self, event: Event) -> None:
        if not self.wants(event):
            return
        stats = await asyncio.to_thread(
            count_csv, event.path, delimiter=self.options.delimiter, header=self.options.header
        )
        line = report_line(event, stats)
        written = os.write(self._fd, line)
        if written != len(line):
            raise OSError(f"short write to {self.options.report}: {written} of {len(line)} bytes")
        self.log.debug("csv counted", path=event.path, rows=stats.rows, columns=stats.columns)

    async def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
