"""What the live status and the summary line show: rates, long jobs with ETA, the table."""

from __future__ import annotations

import io

from rich.console import Console

from pipeline.engine.progress import ScanBoard
from pipeline.observe.live import summary
from pipeline.observe.render import duration, status_view
from pipeline.observe.snapshot import ComponentStatus, RateMeter
from pipeline.observe.terminal import ConsoleStream


class Now:
    def __init__(self) -> None:
        self.value = 1000.0

    def __call__(self) -> float:
        return self.value


def row(label: str, kind: str, type_name: str, **numbers: object) -> ComponentStatus:
    fields: dict[str, object] = {
        "events_in": 0, "events_out": 0, "delivered": 0, "dead_lettered": 0, "retries": 0,
        "restarts": 0, "queue_depth": 0, "rate": 0.0, "failing": False, "last_error": None,
        "last_error_time": None, "latency_p50": None, "latency_p99": None,
    }  # fmt: skip
    fields.update(numbers)
    return ComponentStatus("landing", label, kind, type_name, **fields)  # type: ignore[arg-type]


def test_rates_are_averaged_over_the_window_and_restart_after_a_reload() -> None:
    now = Now()
    meter = RateMeter(window=5.0, now=now)
    key = ("landing", "landing.sinks[0]")
    assert meter.rate(key, 0) == 0.0
    for second in range(1, 11):
        now.value += 1
        rate = meter.rate(key, second * 20)  # 20 events a second
    assert rate == 20.0
    now.value += 1
    assert meter.rate(key, 3) == 0.0  # a rebuilt component counts from zero again
    now.value += 1
    assert meter.rate(key, 13) == 10.0


def test_a_long_job_shows_its_rate_and_an_eta_then_goes_away() -> None:
    now = Now()
    board = ScanBoard(now=now)
    board.report("landing.sources[0]", "catch-up", 0, 1000)
    now.value += 2
    board.report("landing.sources[0]", "catch-up", 400, 1000)
    (job,) = board.jobs()
    assert job.rate == 200.0
    assert job.eta == 3.0
    board.report("landing.sources[0]", "initial walk", 50)  # total not known yet
    walk = next(j for j in board.jobs() if j.task == "initial walk")
    assert walk.eta is None
    board.report("landing.sources[0]", "catch-up", 1000, 1000)
    now.value += 10
    assert [j.task for j in board.jobs()] == ["initial walk"]


def test_the_summary_line_has_the_numbers_that_matter_for_each_kind() -> None:
    rows = [
        row("landing.sources[0]", "source", "inotify", events_out=12, rate=1.5),
        row("landing.sinks[0]", "sink", "webhook", events_in=12, delivered=9, queue_depth=2,
            retries=4, dead_lettered=1, failing=True,
            last_error="ConnectError: http://u:***@h/ refused"),
    ]  # fmt: skip
    assert summary(rows) == {
        "landing.sources[0]": {"type": "inotify", "out": 12, "rate": 1.5},
        "landing.sinks[0]": {
            "type": "webhook", "in": 12, "delivered": 9, "queue": 2, "retries": 4,
            "dead_lettered": 1, "rate": 0.0, "last_error": "ConnectError: http://u:***@h/ refused",
        },
    }  # fmt: skip


def test_the_live_table_shows_each_component_its_numbers_and_a_long_job() -> None:
    now = Now()
    board = ScanBoard(now=now)
    board.report("landing.sources[0]", "initial walk", 0, 5000)
    now.value += 1
    board.report("landing.sources[0]", "initial walk", 1000, 5000)
    rows = [
        row("landing.sources[0]", "source", "inotify", events_out=1234, rate=12.5),
        row("landing.sinks[0]", "sink", "logfile", events_in=1234, delivered=1200,
            queue_depth=34, retries=3, failing=True, last_error="OSError: disk full",
            last_error_time=0.0),
    ]  # fmt: skip
    console = Console(file=io.StringIO(), width=140, record=True)
    console.print(
        status_view(rows, ready=(False, "sink landing.sinks[0] (logfile) cannot deliver"),
                    uptime=75, jobs=board.jobs(), now=90.0)
    )  # fmt: skip
    text = console.export_text()
    assert "up 1m15s" in text and "cannot deliver" in text
    assert "sources[0]" in text and "inotify" in text and "1,234" in text and "12.5" in text
    sink_line = next(line for line in text.splitlines() if line.strip().startswith("sinks[0]"))
    assert "1,200" in sink_line and "34" in sink_line and "3" in sink_line
    assert "OSError: disk full (1m30s ago)" in sink_line
    assert "initial walk" in text and "1,000 / 5,000" in text and "ETA 4s" in text


def test_durations_stay_short() -> None:
    assert [duration(s) for s in (5, 65, 3600 * 2 + 7 * 60)] == ["5s", "1m05s", "2h07m"]


def test_log_lines_go_through_the_console_whole_and_with_their_colours() -> None:
    console = Console(file=io.StringIO(), width=80, force_terminal=True, color_system="standard")
    stream = ConsoleStream(console, io.StringIO())
    stream.write("\x1b[31mfirst\x1b[0m line\nsecond ")
    stream.write("line, much longer than the console is wide: " + "x" * 100 + "\n")
    out = console.file.getvalue()  # type: ignore[attr-defined]
    assert "\x1b[31mfirst\x1b[0m line" in out
    assert "second line, much longer" in out and "x" * 100 in out  # not wrapped
