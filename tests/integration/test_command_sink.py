"""The command sink running real processes: exact arguments, shell safety, failures, timeouts,
on_busy modes, stdin and batches. The commands are small Python scripts."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import sys
import textwrap
import time
from collections.abc import Awaitable
from pathlib import Path
from typing import Any, TypeVar

import pytest
from structlog.testing import capture_logs

from pipeline import (
    ComponentOptions,
    Emit,
    Event,
    EventKind,
    PipelineError,
    Source,
    from_json,
    hookimpl,
)
from pipeline.config import load_config_data
from pipeline.engine import Runner
from pipeline.registry import build_registry
from pipeline.sinks.command import CommandFailed, CommandSink, CommandTimeout
from tests.conftest import make_component

pytestmark = pytest.mark.integration
T = TypeVar("T")
PY = sys.executable

RECORD = """
import base64, json, os, sys
with open(sys.argv[1], "a") as out:
    out.write(json.dumps([base64.b64encode(os.fsencode(a)).decode() for a in sys.argv[2:]]) + "\\n")
"""
"""Appends its arguments (after the output file) as exact bytes, one run a line."""

HOSTILE = [
    "with space.csv",
    "new\nline.csv",
    "$(touch pwned)",
    "a;touch pwned2;b",
    "q'uo\"te`tick`",
    "-rf",
    "--help",
    os.fsdecode(b"caf\xe9-\xff\xfe.bin"),
    "{path}",
]


def run(coro: Awaitable[T], timeout: float = 15) -> T:
    async def bounded() -> T:
        return await asyncio.wait_for(coro, timeout)

    return asyncio.run(bounded())


def script(tmp_path: Path, name: str, body: str) -> str:
    path = tmp_path / name
    path.write_text(textwrap.dedent(body))
    return str(path)


def recorded(out: Path) -> list[list[bytes]]:
    if not out.exists():
        return []
    return [[base64.b64decode(a) for a in json.loads(row)] for row in out.read_text().splitlines()]


def event(path: str, kind: EventKind = EventKind.CLOSED_WRITE, **meta: Any) -> Event:
    return Event(kind, path, "t/test", meta=meta)


def sink(tmp_path: Path, **options: Any) -> CommandSink:
    built: CommandSink = make_component(CommandSink, tmp_path, **options)
    return built


async def opened(tmp_path: Path, **options: Any) -> CommandSink:
    built = sink(tmp_path, **options)
    await built.open()
    return built


async def wait_for_file(path: Path, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert time.monotonic() < deadline, f"{path} never appeared"
        await asyncio.sleep(0.01)


def gone(pid: int) -> bool:
    """The process has ended (a zombie nobody reaped yet counts as ended)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return True
    return stat.rsplit(")", 1)[1].split()[0] == "Z"


# -- exact arguments ------------------------------------------------------------------------


def test_hostile_names_reach_the_command_as_one_argument_each_byte_for_byte(
    tmp_path: Path,
) -> None:
    rec, out = script(tmp_path, "rec.py", RECORD), tmp_path / "out.jsonl"
    root = str(tmp_path / "in")

    async def scenario() -> None:
        command = await opened(tmp_path, argv=[PY, rec, str(out), "{path}", "{name}", "{relpath}"])
        for name in HOSTILE:
            await command.send(event(f"{root}/{name}", root=root))
        await command.close()

    run(scenario())
    rows = recorded(out)
    assert len(rows) == len(HOSTILE)
    for name, row in zip(HOSTILE, rows, strict=True):
        raw = os.fsencode(name)
        shown = b"./" + raw if raw.startswith(b"-") else raw
        assert row == [os.fsencode(f"{root}/{name}"), shown, shown]
    assert not list(tmp_path.glob("pwned*"))


def test_shell_mode_gets_values_from_the_environment_and_parameters_only(
    tmp_path: Path,
) -> None:
    names = ["$(touch pwned)", "`touch pwned3`; touch pwned2", os.fsdecode(b"\xff'\"")]

    async def scenario() -> None:
        command = await opened(
            tmp_path,
            argv=[
                'printf "%s" "$FSP_NAME" > env.out; printf "%s" "$1" > arg.out; '
                'printf "%s" "$FSP_PATH" > path.out',
                "{name}",
            ],
            shell=True,
        )
        for name in names:
            await command.send(event(str(tmp_path / name)))
            assert (tmp_path / "env.out").read_bytes() == os.fsencode(name)
            assert (tmp_path / "arg.out").read_bytes() == os.fsencode(name)
            assert (tmp_path / "path.out").read_bytes() == os.fsencode(str(tmp_path / name))
        await command.close()

    run(scenario())
    assert not list(tmp_path.glob("pwned*"))


# -- failures -------------------------------------------------------------------------------


def test_a_non_zero_exit_raises_with_the_code_and_the_last_stderr_line(tmp_path: Path) -> None:
    fail = script(
        tmp_path,
        "fail.py",
        """
        import sys
        print("some progress")
        print("first problem", file=sys.stderr)
        print("the real reason", file=sys.stderr)
        sys.exit(3)
        """,
    )

    async def scenario() -> None:
        command = await opened(tmp_path, argv=[PY, fail, "{path}"])
        with pytest.raises(CommandFailed, match=r"^exit code 3: the real reason$"):
            await command.send(event("/in/a"))
        await command.close()

    with capture_logs() as logs:
        run(scenario())
    output = [(e["stream"], e["line"]) for e in logs if e["event"] == "command output"]
    # Two pipes: the order within a stream is kept, not the order between them.
    assert [line for stream, line in output if stream == "stderr"] == [
        "first problem",
        "the real reason",
    ]
    assert [line for stream, line in output if stream == "stdout"] == ["some progress"]
    first = next(e for e in logs if e["event"] == "command output")
    assert first["path"] == "/in/a" and isinstance(first["pid"], int)


def test_output_is_bounded_per_run(tmp_path: Path) -> None:
    chatty = script(
        tmp_path,
        "chatty.py",
        'import sys\nfor i in range(50): print(i)\nprint("x" * 10000)\n',
    )

    async def scenario() -> None:
        command = await opened(tmp_path, argv=[PY, chatty], output_lines=5)
        await command.send(event("/in/a"))
        await command.close()

    with capture_logs() as logs:
        run(scenario())
    lines = [e["line"] for e in logs if e["event"] == "command output"]
    assert lines == ["0", "1", "2", "3", "4"]
    summary = next(e for e in logs if e["event"] == "command output truncated")
    assert (summary["logged_lines"], summary["dropped_lines"]) == (5, 46)


def test_a_missing_program_fails_at_open(tmp_path: Path) -> None:
    with pytest.raises(PipelineError, match="not found"):
        run(opened(tmp_path, argv=["no-such-program-xyz", "{path}"]))
    with pytest.raises(PipelineError, match="not found"):
        run(opened(tmp_path, argv=["./missing.sh"]))


def test_a_program_that_cannot_start_is_a_failed_delivery(tmp_path: Path) -> None:
    async def scenario() -> None:
        command = await opened(tmp_path, argv=["{path}"])
        with pytest.raises(CommandFailed, match="cannot run"):
            await command.send(event(str(tmp_path / "nope")))
        await command.close()

    run(scenario())


# -- stopping -------------------------------------------------------------------------------

SPAWNER = """
import signal, subprocess, sys, time
grandchild = subprocess.Popen([sys.executable, "-c",
    "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(60)"])
with open(sys.argv[1], "w") as f:
    f.write(str(grandchild.pid))
time.sleep(60)
"""
"""Starts a grandchild that ignores SIGTERM, records its pid, then sleeps."""


def test_a_timeout_kills_the_whole_process_group(tmp_path: Path) -> None:
    spawner, pid_file = script(tmp_path, "spawner.py", SPAWNER), tmp_path / "grandchild.pid"

    async def scenario() -> float:
        command = await opened(
            tmp_path, argv=[PY, spawner, str(pid_file)], timeout="1s", kill_grace="300ms"
        )
        started = time.monotonic()
        with pytest.raises(CommandTimeout, match=r"timed out after 1s .*killed by signal"):
            await command.send(event("/in/a"))
        await command.close()
        return time.monotonic() - started

    took = run(scenario())
    assert took < 8
    grandchild = int(pid_file.read_text())
    deadline = time.monotonic() + 5
    while not gone(grandchild):
        assert time.monotonic() < deadline, "the grandchild survived the timeout"
        time.sleep(0.02)


def test_a_cancelled_send_stops_the_command(tmp_path: Path) -> None:
    spawner, pid_file = script(tmp_path, "spawner.py", SPAWNER), tmp_path / "grandchild.pid"

    async def scenario() -> None:
        command = await opened(tmp_path, argv=[PY, spawner, str(pid_file)], kill_grace="200ms")
        task = asyncio.create_task(command.send(event("/in/a")))
        await wait_for_file(pid_file)
        await asyncio.sleep(0.05)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await command.close()  # waits until the group is gone

    run(scenario())
    grandchild = int(pid_file.read_text())
    deadline = time.monotonic() + 5
    while not gone(grandchild):
        assert time.monotonic() < deadline, "the grandchild survived close()"
        time.sleep(0.02)


# -- on_busy --------------------------------------------------------------------------------

WORK = """
import os, signal, sys, time
log, name, seconds = sys.argv[1], sys.argv[2], float(sys.argv[3])
def note(text):
    fd = os.open(log, os.O_WRONLY | os.O_APPEND | os.O_CREAT)
    os.write(fd, f"{text} {name} {time.monotonic():.6f}\\n".encode())
    os.close(fd)
signal.signal(signal.SIGHUP, lambda *_: note("hup"))
note("start")
end = time.monotonic() + seconds
while time.monotonic() < end:
    time.sleep(0.01)
note("end")
"""
"""Notes start and end (and each SIGHUP) in a shared log, working `seconds` in between."""


def notes(log: Path) -> list[tuple[str, str, float]]:
    rows = [row.split() for row in log.read_text().splitlines()] if log.exists() else []
    return [(what, name, float(when)) for what, name, when in rows]


def most_at_once(log: Path) -> int:
    running = peak = 0
    for what, _, _ in sorted(notes(log), key=lambda n: n[2]):
        running += {"start": 1, "end": -1}.get(what, 0)
        peak = max(peak, running)
    return peak


def busy_sink(tmp_path: Path, log: Path, **options: Any) -> CommandSink:
    work = script(tmp_path, "work.py", WORK)
    return sink(tmp_path, argv=[PY, work, str(log), "{name}", "{meta.seconds}"], **options)


def test_queue_runs_concurrent_sends_one_after_another(tmp_path: Path) -> None:
    log = tmp_path / "notes"

    async def scenario() -> None:
        command = busy_sink(tmp_path, log)
        await command.open()
        await asyncio.gather(*(command.send(event(f"/in/{i}", seconds=0.2)) for i in range(3)))
        await command.close()

    run(scenario())
    assert [n[0] for n in notes(log)] == ["start", "end"] * 3
    assert most_at_once(log) == 1


def test_max_concurrent_bounds_the_runs_at_once(tmp_path: Path) -> None:
    log = tmp_path / "notes"

    async def scenario() -> None:
        command = busy_sink(tmp_path, log, max_concurrent=2)
        await command.open()
        await asyncio.gather(*(command.send(event(f"/in/{i}", seconds=0.3)) for i in range(4)))
        await command.close()

    run(scenario())
    assert sum(1 for n in notes(log) if n[0] == "end") == 4
    assert most_at_once(log) == 2


def test_restart_stops_the_running_command_and_runs_the_newest(tmp_path: Path) -> None:
    log = tmp_path / "notes"

    async def scenario() -> None:
        command = busy_sink(tmp_path, log, on_busy="restart", kill_grace="2s")
        await command.open()
        first = asyncio.create_task(command.send(event("/in/first", seconds=30)))
        while not notes(log):
            await asyncio.sleep(0.01)
        # Both arrive while `first` runs: `middle` is superseded before it ever starts.
        middle = asyncio.create_task(command.send(event("/in/middle", seconds=0.1)))
        await asyncio.sleep(0)
        await command.send(event("/in/last", seconds=0.1))
        await first  # superseded: returns, counts as delivered
        await middle
        await command.close()

    started = time.monotonic()
    with capture_logs() as logs:
        run(scenario())
    assert time.monotonic() - started < 10
    assert [(what, name) for what, name, _ in notes(log)] == [
        ("start", "first"),
        ("start", "last"),
        ("end", "last"),
    ]
    events = [e["event"] for e in logs]
    assert "superseded command stopped; its event counts as delivered" in events
    assert "superseded by a newer event before it ran (on_busy: restart)" in events


def test_ignore_drops_events_that_arrive_while_it_runs_and_counts_them(tmp_path: Path) -> None:
    log = tmp_path / "notes"

    async def scenario() -> None:
        command = busy_sink(tmp_path, log, on_busy="ignore")
        await command.open()
        first = asyncio.create_task(command.send(event("/in/first", seconds=0.5)))
        while not notes(log):
            await asyncio.sleep(0.01)
        for i in range(3):
            await asyncio.wait_for(command.send(event(f"/in/dropped{i}", seconds=0)), 1)
        await first
        await command.send(event("/in/after", seconds=0))  # idle again: it runs
        await command.close()

    with capture_logs() as logs:
        run(scenario())
    assert [name for what, name, _ in notes(log) if what == "start"] == ["first", "after"]
    counted = [e for e in logs if e["event"].startswith("events ignored")]
    assert [e["ignored"] for e in counted] == [3]


def test_signal_notifies_the_running_command_instead_of_running_again(tmp_path: Path) -> None:
    log = tmp_path / "notes"

    async def scenario() -> None:
        command = busy_sink(tmp_path, log, on_busy="signal", busy_signal="HUP")
        await command.open()
        first = asyncio.create_task(command.send(event("/in/first", seconds=1)))
        while not notes(log):
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.1)  # let it install its handler (done before it notes "start")
        await asyncio.wait_for(command.send(event("/in/second", seconds=0)), 1)
        await first
        await command.close()

    run(scenario())
    assert [(what, name) for what, name, _ in notes(log)] == [
        ("start", "first"),
        ("hup", "first"),
        ("end", "first"),
    ]


def test_busy_modes_behave_like_queue_when_sends_come_one_at_a_time(tmp_path: Path) -> None:
    log = tmp_path / "notes"

    async def scenario() -> None:
        command = busy_sink(tmp_path, log, on_busy="ignore")
        await command.open()
        for i in range(3):
            await command.send(event(f"/in/{i}", seconds=0))
        await command.close()

    run(scenario())
    assert [name for what, name, _ in notes(log) if what == "end"] == ["0", "1", "2"]


# -- stdin and batches ----------------------------------------------------------------------

CAPTURE_STDIN = """
import sys
with open(sys.argv[1], "ab") as out:
    out.write(sys.stdin.buffer.read())
"""


def test_stdin_modes(tmp_path: Path) -> None:
    capture = script(tmp_path, "capture.py", CAPTURE_STDIN)
    hostile = os.fsdecode(b"/in/new\nline \xff")
    outputs = {mode: tmp_path / f"{mode}.out" for mode in ("none", "event", "paths")}

    async def scenario() -> None:
        for mode, out in outputs.items():
            command = await opened(tmp_path, argv=[PY, capture, str(out)], stdin=mode)
            await command.send(event(hostile))
            await command.close()

    run(scenario())
    assert outputs["none"].read_bytes() == b""
    assert from_json(outputs["event"].read_bytes()).path == hostile
    assert outputs["paths"].read_bytes() == os.fsencode(hostile) + b"\0"


def test_a_batch_event_is_one_run_with_every_path(tmp_path: Path) -> None:
    rec, out = script(tmp_path, "rec.py", RECORD), tmp_path / "out.jsonl"
    capture, piped = script(tmp_path, "capture.py", CAPTURE_STDIN), tmp_path / "piped"
    paths = ["/in/a b", os.fsdecode(b"/in/\xff"), "/in/$(x)"]
    batch = event("/in", EventKind.BATCH, paths=paths)

    async def scenario() -> None:
        by_args = await opened(tmp_path, argv=[PY, rec, str(out), "--", "{paths}"])
        await by_args.send(batch)
        await by_args.close()
        by_stdin = await opened(
            tmp_path, argv=[PY, capture, str(piped)], stdin="paths", stdin_separator="newline"
        )
        await by_stdin.send(batch)
        await by_stdin.close()

    run(scenario())
    assert recorded(out) == [[b"--", *(os.fsencode(p) for p in paths)]]
    assert piped.read_bytes() == b"".join(os.fsencode(p) + b"\n" for p in paths)


def test_events_handed_over_together_run_once_only_if_the_command_takes_many(
    tmp_path: Path,
) -> None:
    rec = script(tmp_path, "rec.py", RECORD)
    many, single = tmp_path / "many.jsonl", tmp_path / "single.jsonl"
    events = [event(f"/in/{i}") for i in range(3)]

    async def scenario() -> None:
        for out, argument in ((many, "{paths}"), (single, "{path}")):
            command = await opened(tmp_path, argv=[PY, rec, str(out), argument])
            await command.send_batch(events)
            await command.close()

    run(scenario())
    assert recorded(many) == [[b"/in/0", b"/in/1", b"/in/2"]]
    assert recorded(single) == [[b"/in/0"], [b"/in/1"], [b"/in/2"]]


def test_cwd_and_env(tmp_path: Path) -> None:
    work = tmp_path / "work"
    work.mkdir()
    show = script(
        tmp_path,
        "show.py",
        'import os\nopen("seen", "w").write(os.getcwd() + "|" + os.environ["GREETING"])\n',
    )

    async def scenario() -> None:
        command = await opened(tmp_path, argv=[PY, show], cwd="work", env={"GREETING": "hi"})
        await command.send(event("/in/a"))
        await command.close()

    run(scenario())
    assert (work / "seen").read_text() == f"{work}|hi"


def test_sigterm_is_what_a_stopped_command_gets_first(tmp_path: Path) -> None:
    graceful = script(
        tmp_path,
        "graceful.py",
        """
        import signal, sys, time
        def bye(*_):
            open(sys.argv[1], "w").write("got SIGTERM")
            sys.exit(0)
        signal.signal(signal.SIGTERM, bye)
        open(sys.argv[1] + ".ready", "w").close()
        time.sleep(30)
        """,
    )
    marker = tmp_path / "marker"

    async def scenario() -> None:
        command = await opened(tmp_path, argv=[PY, graceful, str(marker)], timeout="5s")
        task = asyncio.create_task(command.send(event("/in/a")))
        await wait_for_file(tmp_path / "marker.ready")
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await command.close()

    run(scenario())
    assert marker.read_text() == "got SIGTERM"  # the first signal; SIGKILL only after the grace


# -- through the engine ---------------------------------------------------------------------


class ListOptions(ComponentOptions):
    paths: list[str]


class ListSource(Source[ListOptions]):
    """Emits one created event per listed path, then waits."""

    type_name = "list"
    Options = ListOptions

    async def run(self, emit: Emit) -> None:
        for path in self.options.paths:
            await emit(Event(EventKind.CREATED, path, "p/list"))
        await asyncio.Event().wait()


class ListPlugin:
    @hookimpl
    def pipeline_components(self) -> list[type[Any]]:
        return [ListSource]


def test_the_engine_retries_a_failing_command_then_dead_letters_it(tmp_path: Path) -> None:
    rec, out = script(tmp_path, "rec.py", RECORD), tmp_path / "out.jsonl"
    check = script(tmp_path, "check.py", 'import sys\nsys.exit(3 if "bad" in sys.argv[1] else 0)\n')
    registry = build_registry(extra_plugins=[("list", ListPlugin())], autoload=False)
    pipeline = {
        "sources": [{"type": "list", "paths": ["/in/good", "/in/bad", "/in/fine"]}],
        "sinks": [
            {"type": "command", "argv": [PY, check, "{path}"], "retry_backoff": "10ms"},
            {"type": "command", "argv": [PY, rec, str(out), "{paths}"], "batch_size": 3,
             "batch_wait": "200ms"},
        ],
    }  # fmt: skip
    data = {"state_dir": str(tmp_path / "state"), "pipelines": {"p": pipeline}}
    runner = Runner(load_config_data(data, registry, source="t", config_dir=tmp_path), registry)
    letters = tmp_path / "state" / "dead-letter.jsonl"

    async def scenario() -> None:
        task = asyncio.create_task(runner.run())
        deadline = time.monotonic() + 10
        while not (letters.exists() and out.exists()):
            assert time.monotonic() < deadline, "no dead letter and no batch run"
            await asyncio.sleep(0.02)
        runner.request_stop()
        await task

    run(scenario())
    (letter,) = [json.loads(line) for line in letters.read_text().splitlines()]
    assert letter["reason"].startswith("CommandFailed: exit code 3")
    assert "after 3 attempts" in letter["reason"]
    assert recorded(out) == [[b"/in/good", b"/in/bad", b"/in/fine"]]  # one run for the batch
