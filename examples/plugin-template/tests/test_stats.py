"""count_csv: what counts as a data row and a column."""

from __future__ import annotations

from pathlib import Path

import pytest

from fspipeline_csvstats import CsvStats, count_csv


def write(tmp_path: Path, text: str, name: str = "data.csv") -> Path:
    path = tmp_path / name
    path.write_bytes(text.encode("utf-8"))
    return path


def test_header_is_not_a_data_row(tmp_path: Path) -> None:
    path = write(tmp_path, "id,name,amount\n1,a,10\n2,b,20\n")
    assert count_csv(path) == CsvStats(rows=2, columns=3)


def test_without_header_every_record_is_a_row(tmp_path: Path) -> None:
    path = write(tmp_path, "1,a\n2,b\n")
    assert count_csv(path, header=False) == CsvStats(rows=2, columns=2)


def test_quoted_delimiters_and_line_breaks_stay_in_their_field(tmp_path: Path) -> None:
    path = write(tmp_path, 'id,note\n1,"one, two"\n2,"line\nbreak"\n')
    assert count_csv(path) == CsvStats(rows=2, columns=2)


def test_blank_lines_and_a_missing_final_newline(tmp_path: Path) -> None:
    path = write(tmp_path, "a,b\n\n1,2\n\n3,4")
    assert count_csv(path) == CsvStats(rows=2, columns=2)


def test_other_delimiter_and_byte_order_mark(tmp_path: Path) -> None:
    path = write(tmp_path, "\ufeffa;b;c\n1;2;3\n")
    assert count_csv(path, delimiter=";") == CsvStats(rows=1, columns=3)


@pytest.mark.parametrize("header", [True, False])
def test_empty_file(tmp_path: Path, header: bool) -> None:
    assert count_csv(write(tmp_path, ""), header=header) == CsvStats(rows=0, columns=0)


def test_missing_file_raises(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        count_csv(tmp_path / "gone.csv")
