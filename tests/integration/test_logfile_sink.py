"""Several writers on one log file, with rotation: two processes, and two pipelines of one
process. Every line must arrive whole, exactly once, and no file may be rotated twice."""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import structlog

from pipeline import ComponentContext, Event, EventKind
from pipeline.sinks.logfile import LogfileOptions, LogfileSink
from pipeline.sinks.rotation import Rotator

pytestmark = pytest.mark.integration
ROTATE = 40_000
COUNT = 4000

WRITER = textwrap.dedent(
    """
    import asyncio, os, sys, time
    from pathlib import Path
    import structlog
    from pipeline import ComponentContext, Event, EventKind
    from pipeline.sinks.logfile import LogfileOptions, LogfileSink

    async def main(path, writer, count, rotate, go):
        options = LogfileOptions.model_validate(
            {"path": path, "rotate_size": rotate, "keep": 10000}
        )
        context = ComponentContext(
            pipeline=writer, label=writer, config_dir=Path(path).parent, state_dir=None,
            log=structlog.get_logger(),
        )
        sink = LogfileSink(options, context)
        await sink.open()
        sink.check_interval, sink.check_events = 0.002, 20  # notice rotations quickly
        Path(go + "." + writer).touch()
        while not os.path.exists(go):
            time.sleep(0.001)
        for n in range(count):
            await sink.send(
                Event(EventKind.CREATED, f"/{writer}/{n}", "t/w", meta={"pad": "x" * (n % 64)})
            )
        await sink.close()

    asyncio.run(main(sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]))
    """
)


def writer_event(writer: str, n: int) -> Event:
    return Event(EventKind.CREATED, f"/{writer}/{n}", "t/w", meta={"pad": "x" * (n % 64)})


def collect(path: Path) -> tuple[dict[str, list[int]], list[Path]]:
    """Every line of the file and its rotated files, by writer; and the rotated files."""
    rotated = Rotator(path, keep=0, compress=False, log=structlog.get_logger()).rotated_files()
    seen: dict[str, list[int]] = {}
    for file in [*rotated, path]:
        data = file.read_bytes()
        assert data.endswith(b"\n") or not data, f"{file.name} ends inside a line"
        for line in data.splitlines():
            event_path = json.loads(line)["data"]["path"]  # a torn line fails here
            _, writer, n = event_path.split("/")
            seen.setdefault(writer, []).append(int(n))
    return seen, rotated


def switches(path: Path) -> int:
    """How often consecutive lines come from different writers (0: no overlap at all)."""
    writers = [json.loads(line)["data"]["path"].split("/")[1] for line in all_lines(path)]
    return sum(1 for a, b in itertools.pairwise(writers) if a != b)


def all_lines(path: Path) -> list[bytes]:
    rotated = Rotator(path, keep=0, compress=False, log=structlog.get_logger()).rotated_files()
    return [line for file in [*rotated, path] for line in file.read_bytes().splitlines()]


def check(path: Path, writers: list[str]) -> None:
    seen, rotated = collect(path)
    for writer in writers:
        assert len(seen[writer]) == COUNT, f"{writer}: {len(seen[writer])} lines, not {COUNT}"
        assert sorted(seen[writer]) == list(range(COUNT)), f"{writer}: lost or doubled lines"
    assert len(rotated) >= 5
    small = [f.name for f in rotated if f.stat().st_size < ROTATE]
    assert small == [], "a file was rotated again before it was full"


def test_two_processes_append_and_rotate_the_same_file(tmp_path: Path) -> None:
    path, go = tmp_path / "shared.jsonl", tmp_path / "go"
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", WRITER, str(path), name, str(COUNT), str(ROTATE), str(go)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        for name in ("alpha", "beta")
    ]
    deadline = time.monotonic() + 20
    while not all((tmp_path / f"go.{name}").exists() for name in ("alpha", "beta")):
        assert time.monotonic() < deadline, "the writers did not start"
        time.sleep(0.01)
    go.touch()  # both have opened the file: they start together
    for proc in procs:
        _, err = proc.communicate(timeout=30)
        assert proc.returncode == 0, err.decode()
    check(path, ["alpha", "beta"])
    assert switches(path) > 10, "the two writers did not overlap"
    assert (tmp_path / "shared.jsonl.lock").exists()


def test_two_pipelines_of_one_process_share_a_file(tmp_path: Path) -> None:
    path = tmp_path / "shared.jsonl"

    def build(name: str) -> LogfileSink:
        options = LogfileOptions.model_validate(
            {"path": str(path), "rotate_size": ROTATE, "keep": 10000}
        )
        context = ComponentContext(
            pipeline=name,
            label=f"{name}.sinks[0]",
            config_dir=tmp_path,
            state_dir=None,
            log=structlog.get_logger(),
        )
        return LogfileSink(options, context)

    async def write(sink: LogfileSink, name: str) -> None:
        await sink.open()
        sink.check_interval, sink.check_events = 0.002, 20
        for n in range(COUNT):
            await sink.send(writer_event(name, n))
            if n % 10 == 0:
                await asyncio.sleep(0)  # let the other pipeline run in between
        await sink.close()

    async def scenario() -> None:
        await asyncio.gather(write(build("one"), "one"), write(build("two"), "two"))

    asyncio.run(asyncio.wait_for(scenario(), 30))
    check(path, ["one", "two"])


def test_a_file_rotated_by_logrotate_is_followed(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    options = LogfileOptions.model_validate({"path": str(path)})
    context = ComponentContext(
        pipeline="p", label="p.sinks[0]", config_dir=tmp_path, state_dir=None,
        log=structlog.get_logger(),
    )  # fmt: skip
    sink = LogfileSink(options, context)

    async def scenario() -> None:
        await sink.open()
        sink.check_interval = 0.1  # 1s by default
        await sink.send(writer_event("w", 0))
        os.rename(path, tmp_path / "events.jsonl.1")
        await sink.send(writer_event("w", 1))  # not checked yet: still the renamed file
        await asyncio.sleep(0.15)
        await sink.send(writer_event("w", 2))
        await sink.close()

    asyncio.run(scenario())
    assert len((tmp_path / "events.jsonl.1").read_text().splitlines()) == 2
    assert json.loads(path.read_text())["data"]["path"] == "/w/2"
