"""Medians over runs, the results table (plain and markdown), the targets, latest.json/md."""

from __future__ import annotations

import dataclasses
import json
import statistics
from collections.abc import Callable
from pathlib import Path
from typing import Any

from workloads import FULL as FULL_SIZES
from workloads import Figures, Sizes

RESULTS = Path(__file__).resolve().parent / "results"


@dataclasses.dataclass
class Cell:
    """One contender on one workload: each run's figures, errors, and their medians."""

    runs: list[Figures] = dataclasses.field(default_factory=list)
    errors: list[str] = dataclasses.field(default_factory=list)

    def median(self) -> Figures:
        keys = {k for run in self.runs for k in run}
        result: Figures = {}
        for key in sorted(keys):
            values = [run[key] for run in self.runs if run.get(key) is not None]
            if not values:
                result[key] = None
            elif all(isinstance(v, bool) for v in values):
                result[key] = sum(bool(v) for v in values) * 2 > len(values)
            else:
                result[key] = statistics.median(float(v) for v in values if v is not None)
        return result


Results = dict[str, dict[str, Cell]]  # workload -> contender -> cell


def _num(digits: int) -> Callable[[float], str]:
    return lambda value: f"{value:,.{digits}f}"


@dataclasses.dataclass(frozen=True)
class Column:
    workload: str
    key: str
    title: str
    show: Callable[[float], str]


COLUMNS = [
    Column("burst", "files_per_s", "burst files/s", _num(0)),
    Column("burst", "lost", "burst lost", _num(0)),
    Column("burst", "writer_files_per_s", "writer files/s", _num(0)),
    Column("latency", "p50_ms", "p50 ms", _num(3)),
    Column("latency", "p99_ms", "p99 ms", _num(3)),
    Column("latency", "lost", "lat. lost", _num(0)),
    Column("overflow", "reported", "overflow reported", _num(0)),
    Column("startup", "startup_s", "startup s", _num(3)),
    Column("startup", "probe_s", "probe s", _num(3)),
    Column("startup", "rss_mib", "RSS MiB", _num(1)),
    Column("idle", "cpu_s_per_10s", "idle CPU s/10s", _num(2)),
]


def _cell_text(results: Results, column: Column, contender: str, sizes: Sizes) -> str:
    cell = results.get(column.workload, {}).get(contender)
    if cell is None:
        return "-"
    value = cell.median().get(column.key) if cell.runs else None
    if not isinstance(value, int | float) or isinstance(value, bool):
        return "error" if cell.errors else "-"
    text = column.show(value)
    if column.key == "reported":
        text += f" / {sizes.overflow_files:,}"
    return text + ("!" if cell.errors else "")


def table_rows(results: Results, contenders: list[str], sizes: Sizes) -> list[list[str]]:
    used = [c for c in COLUMNS if c.workload in results]
    rows = [["contender", *(c.title for c in used)]]
    for name in contenders:
        rows.append([name, *(_cell_text(results, c, name, sizes) for c in used)])
    return rows


def plain_table(rows: list[list[str]]) -> str:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = []
    for number, row in enumerate(rows):
        cells = [
            row[0].ljust(widths[0]),
            *(v.rjust(w) for v, w in zip(row[1:], widths[1:], strict=True)),
        ]
        lines.append("  ".join(cells))
        if number == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def markdown_table(rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(rows[0]) + " |", "|---" + "|---:" * (len(rows[0]) - 1) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows[1:]]
    return "\n".join(lines)


TARGETS: list[tuple[str, str, str, Callable[[float], bool]]] = [
    ("burst", "files_per_s", ">= 60,000 files/s", lambda v: v >= 60_000),
    ("burst", "lost", "no file lost", lambda v: v == 0),
    ("latency", "p99_ms", "p99 <= 1 ms", lambda v: v <= 1.0),
    ("latency", "lost", "no file lost", lambda v: v == 0),
    ("overflow", "lost", "no file lost", lambda v: v == 0),
    ("startup", "startup_s", "ready <= 0.7 s", lambda v: v <= 0.7),
    ("idle", "cpu_s", "no CPU (under one 10 ms tick)", lambda v: v == 0),
]


def target_lines(results: Results, contender: str = "pipeline") -> list[str]:
    """fspipeline's (inotify source) targets: one 'met'/'MISSED' line each."""
    lines = []
    for workload, key, goal, met in TARGETS:
        cell = results.get(workload, {}).get(contender)
        if cell is None:
            continue
        value = cell.median().get(key) if cell.runs else None
        if not isinstance(value, int | float):
            lines.append(f"{workload}: {goal}: not measured ({'; '.join(cell.errors)})")
            continue
        verdict = "met" if met(value) else "MISSED"
        lines.append(f"{workload}: {goal}: {verdict} (median {key} = {value:,.3f})")
    return lines


def error_lines(results: Results) -> list[str]:
    return [
        f"{workload}/{name}: {error}"
        for workload, cells in results.items()
        for name, cell in cells.items()
        for error in cell.errors
    ]


def write_reports(
    results: Results, contenders: list[str], sizes: Sizes, meta: dict[str, Any]
) -> str:
    """Write latest.json and latest.md; return the plain-text report."""
    rows = table_rows(results, contenders, sizes)
    targets, errors = target_lines(results), error_lines(results)
    if sizes.burst_files < FULL_SIZES.burst_files or sizes.tree_dirs < FULL_SIZES.tree_dirs:
        targets.insert(0, "smaller sizes than the full run: not comparable with the targets")
    RESULTS.mkdir(exist_ok=True)
    data = {
        "contenders": contenders,
        "meta": meta,
        "sizes": dataclasses.asdict(sizes),
        "results": {
            workload: {
                name: {"median": cell.median(), "runs": cell.runs, "errors": cell.errors}
                for name, cell in cells.items()
            }
            for workload, cells in results.items()
        },
        "targets": targets,
    }
    (RESULTS / "latest.json").write_text(json.dumps(data, indent=2) + "\n")
    facts = [f"- {key}: {value}" for key, value in meta.items()]
    markdown = [
        "# fspipeline benchmark: latest results",
        "",
        f"`{meta['command']}`: medians of {sizes.runs} run(s) each; see bench/README.md "
        "for what each figure means. `!`: some runs failed (listed below).",
        "",
        markdown_table(rows),
        "",
        "## fspipeline (inotify source) against its targets",
        "",
        *(f"- {line}" for line in targets),
        "",
        "## Machine and run",
        "",
        *facts,
    ]
    if errors:
        markdown += ["", "## Failed runs", "", *(f"- {line}" for line in errors)]
    (RESULTS / "latest.md").write_text("\n".join(markdown) + "\n")
    text = [plain_table(rows), "", "fspipeline (inotify) targets:", *(f"  {t}" for t in targets)]
    if errors:
        text += ["", "failed runs:", *(f"  {e}" for e in errors)]
    return "\n".join(text)


USUAL_ORDER = ["pipeline", "pipeline-fanotify", "pipeline-poll", "inotifywait"]


def _usual_place(name: str) -> int:
    return USUAL_ORDER.index(name) if name in USUAL_ORDER else len(USUAL_ORDER)


def rerender() -> str:
    """Write latest.md again from latest.json (after a change to the table's layout)."""
    data = json.loads((RESULTS / "latest.json").read_text())
    results: Results = {
        workload: {name: Cell(cell["runs"], cell["errors"]) for name, cell in cells.items()}
        for workload, cells in data["results"].items()
    }
    names = list(dict.fromkeys(name for cells in results.values() for name in cells))
    order = data.get("contenders") or sorted(names, key=_usual_place)
    return write_reports(results, order, Sizes(**data["sizes"]), data["meta"])


if __name__ == "__main__":
    print(rerender())
