"""Counting the data rows and columns of one CSV file (blocking; run it in a thread)."""

from __future__ import annotations

import csv
import dataclasses
import os


@dataclasses.dataclass(frozen=True, slots=True)
class CsvStats:
    rows: int
    """Data rows: every non-blank record, less the header if there is one."""
    columns: int
    """Fields in the first record (the header, when there is one)."""


def count_csv(
    path: str | os.PathLike[str], *, delimiter: str = ",", header: bool = True
) -> CsvStats:
    """Count the records of the CSV file at `path`.

    Quoted fields may hold delimiters and line breaks; blank lines are not records; a
    UTF-8 byte-order mark (Excel) is ignored. Raises OSError when the file cannot be read.
    """
    records = 0
    columns = 0
    # newline="" lets the csv module see line breaks inside quoted fields (csv docs).
    # errors="replace": only counts are wanted, so bytes that are not UTF-8 do not matter.
    with open(path, newline="", encoding="utf-8-sig", errors="replace") as handle:
        for fields in csv.reader(handle, delimiter=delimiter):
            if not fields:
                continue
            if records == 0:
                columns = len(fields)
            records += 1
    rows = records - 1 if header and records else records
    return CsvStats(rows=rows, columns=columns)
