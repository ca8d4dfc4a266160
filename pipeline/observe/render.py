"""The live status as a rich renderable: a header, a table per pipeline, long jobs."""

from __future__ import annotations

import time
from collections.abc import Sequence

from rich import box
from rich.console import Group, RenderableType
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text

from pipeline.engine.progress import Job
from pipeline.observe.snapshot import ComponentStatus

DASH = "-"


def status_view(
    rows: Sequence[ComponentStatus],
    *,
    ready: tuple[bool, str],
    uptime: float,
    jobs: Sequence[Job] = (),
    now: float | None = None,
) -> RenderableType:
    """Everything the live status shows, from one snapshot."""
    parts: list[RenderableType] = [_header(ready, uptime, rows), _table(rows, now or time.time())]
    if jobs:
        parts.append(_jobs(jobs))
    return Group(*parts)


def _header(ready: tuple[bool, str], uptime: float, rows: Sequence[ComponentStatus]) -> Text:
    pipelines = len({row.pipeline for row in rows})
    ok, reason = ready
    text = Text(f"fspipeline  {pipelines} pipeline{'s' if pipelines != 1 else ''}  ")
    text.append(f"up {duration(uptime)}  ")
    text.append("ready" if ok else reason, style="bold green" if ok else "bold red")
    return text


def _table(rows: Sequence[ComponentStatus], now: float) -> Table:
    table = Table(box=box.SIMPLE_HEAD, pad_edge=False, caption="a sink's out counts deliveries")
    table.add_column("component", no_wrap=True)
    table.add_column("type", no_wrap=True)
    for name in ("in", "out", "rate/s", "queue", "retries", "dead"):
        table.add_column(name, justify="right", no_wrap=True)
    table.add_column("last error", overflow="ellipsis", no_wrap=True, max_width=50)
    pipeline = None
    for row in rows:
        if row.pipeline != pipeline:
            pipeline = row.pipeline
            table.add_row(Text(pipeline, style="bold"))
        table.add_row(*_cells(row, now), style="red" if row.failing else None)
    return table


def _cells(row: ComponentStatus, now: float) -> list[str | Text]:
    is_source, is_sink = row.kind == "source", row.kind == "sink"
    out = row.delivered if is_sink else row.events_out
    return [
        "  " + row.label.removeprefix(row.pipeline + "."),
        row.type_name,
        DASH if is_source else f"{row.events_in:,}",
        f"{out:,}",
        f"{row.rate:,.1f}",
        f"{row.queue_depth:,}" if is_sink else DASH,
        f"{row.retries:,}" if is_sink else DASH,
        f"{row.dead_lettered:,}" if is_sink else DASH,
        _error(row, now),
    ]


def _error(row: ComponentStatus, now: float) -> Text:
    if not row.last_error:
        return Text("")
    when = row.last_error_time
    age = f" ({duration(now - when)} ago)" if when is not None else ""
    return Text(row.last_error + age, style="red" if row.failing else "dim")


def _jobs(jobs: Sequence[Job]) -> Table:
    table = Table(box=None, show_header=False, pad_edge=False, title="long jobs")
    for _ in range(5):
        table.add_column(no_wrap=True)
    for job in jobs:
        count = f"{job.done:,}" + (f" / {job.total:,}" if job.total is not None else "")
        bar: RenderableType = (
            ProgressBar(total=job.total, completed=job.done, width=24)
            if job.total
            else Text("(counting)", style="dim")
        )
        eta = "done" if job.finished else f"ETA {duration(job.eta)}" if job.eta is not None else ""
        table.add_row(f"{job.component} {job.task}", bar, count, f"{job.rate:,.0f}/s", eta)
    return table


def duration(seconds: float) -> str:
    """`45s`, `3m05s`, `2h07m`: short and stable in width."""
    whole = int(seconds)
    if whole < 60:
        return f"{whole}s"
    if whole < 3600:
        return f"{whole // 60}m{whole % 60:02d}s"
    return f"{whole // 3600}h{whole % 3600 // 60:02d}m"
