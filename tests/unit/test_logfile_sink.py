"""The logfile sink on tmp files: line formats, following renames, rotation, fsync policy."""

from __future__ import annotations

import asyncio
import gzip
import json
import os
import re
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import pydantic
import pytest
import structlog

from pipeline import ComponentContext, Event, EventKind, FakeClock, from_json, to_json
from pipeline.sinks.logfile import LogfileOptions, LogfileSink
from pipeline.sinks.rotation import Rotator

T = TypeVar("T")
BAD = os.fsdecode(b"/in/new\nline \xff.csv")


def run(coro: Awaitable[T]) -> T:
    async def bounded() -> T:
        return await asyncio.wait_for(coro, 15)

    return asyncio.run(bounded())


def logfile(tmp_path: Path, clock: FakeClock | None = None, **options: Any) -> LogfileSink:
    options.setdefault("path", "events.jsonl")
    validated = LogfileOptions.model_validate(options, context={"config_dir": tmp_path})
    context = ComponentContext(
        pipeline="t",
        label="t.sinks[0]",
        config_dir=tmp_path,
        state_dir=None,
        log=structlog.get_logger("test"),
        clock=clock or FakeClock(),
    )
    return LogfileSink(validated, context)


def event(n: int | str, path: str | None = None) -> Event:
    return Event(EventKind.CLOSED_WRITE, path or f"/in/{n}", "t/test")


def lines(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []


def rotated(tmp_path: Path) -> list[Path]:
    return sorted(p for p in tmp_path.iterdir() if re.match(r"events\.\d{8}T\d{6}\.\d{3}Z", p.name))


async def eventually(condition: Callable[[], bool], timeout: float = 5) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met"
        await asyncio.sleep(0.01)


# -- options ----------------------------------------------------------------------------------


def test_option_forms() -> None:
    options = LogfileOptions.model_validate(
        {"path": "/x", "rotate_size": "100MB", "rotate_every": "1d", "fsync": True}
    )
    assert (options.rotate_size, options.rotate_every, options.fsync) == (
        100_000_000,
        86400.0,
        "always",
    )
    assert LogfileOptions.model_validate({"path": "/x", "fsync": False}).fsync == "never"


@pytest.mark.parametrize(
    ("option", "value", "message"),
    [
        ("template", "{time} {knd}", "unknown placeholder"),
        ("rotate_every", "0s", "longer than 0"),
        ("rotate_size", "ten", "not a size"),
        ("fsync", "sometimes", "never"),
    ],
)
def test_bad_options(option: str, value: str, message: str) -> None:
    with pytest.raises(pydantic.ValidationError, match=message):
        LogfileOptions.model_validate({"path": "/x", option: value})


# -- lines ----------------------------------------------------------------------------------


def test_json_lines_are_the_lossless_cloudevents(tmp_path: Path) -> None:
    sink = logfile(tmp_path)
    original = event(0, BAD)

    async def scenario() -> None:
        await sink.open()
        await sink.send(original)
        await sink.close()

    run(scenario())
    (line,) = lines(tmp_path / "events.jsonl")
    assert line == to_json(original)
    assert from_json(line) == original


def test_text_lines_follow_the_template_and_stay_one_line(tmp_path: Path) -> None:
    sink = logfile(tmp_path, format="text", template="{kind} {name} [{meta.size}] {{literal}}")

    async def scenario() -> None:
        await sink.open()
        await sink.send(event(0, BAD).with_meta(size=12))
        await sink.close()

    run(scenario())
    assert lines(tmp_path / "events.jsonl") == ["closed_write new\\nline \\xff.csv [12] {literal}"]


# -- following renames, cheaply -------------------------------------------------------------


def test_a_renamed_file_is_followed_at_the_next_check_not_at_every_event(
    tmp_path: Path,
) -> None:
    clock = FakeClock()
    sink = logfile(tmp_path, clock)
    live, moved = tmp_path / "events.jsonl", tmp_path / "events.jsonl.1"

    async def scenario() -> None:
        await sink.open()
        await sink.send(event(1))
        live.rename(moved)  # what logrotate does
        await sink.send(event(2))  # no check yet: still the open file
        await clock.advance(1.0)
        await sink.send(event(3))  # a second later: the path is checked and reopened
        await sink.close()

    run(scenario())
    assert [json.loads(x)["data"]["path"] for x in lines(moved)] == ["/in/1", "/in/2"]
    assert [json.loads(x)["data"]["path"] for x in lines(live)] == ["/in/3"]


def test_the_path_is_also_checked_every_n_events(tmp_path: Path) -> None:
    sink = logfile(tmp_path)
    live = tmp_path / "events.jsonl"

    async def scenario() -> None:
        await sink.open()
        sink.check_events = 3
        await sink.send(event(1))
        live.unlink()
        await sink.send(event(2))
        await sink.send(event(3))
        await sink.send(event(4))  # the 3rd since the last check: the file is recreated
        await sink.close()

    run(scenario())
    assert [json.loads(x)["data"]["path"] for x in lines(live)] == ["/in/4"]


# -- rotation -------------------------------------------------------------------------------


def test_rotation_by_size_keeps_every_line_and_at_most_keep_files(tmp_path: Path) -> None:
    line_size = len(to_json(event(10))) + 1
    sink = logfile(tmp_path, rotate_size=line_size * 5, keep=3)

    async def scenario() -> None:
        await sink.open()
        sink.check_interval = 0  # every rotated file is settled at once
        for n in range(10, 40):
            await sink.send(event(n))
        await eventually(lambda: len(rotated(tmp_path)) == 3)
        await sink.close()

    run(scenario())
    files = rotated(tmp_path)
    assert len(files) == 3
    kept = [line for f in files for line in lines(f)] + lines(tmp_path / "events.jsonl")
    assert [json.loads(x)["data"]["path"] for x in kept] == [f"/in/{n}" for n in range(20, 40)]
    assert all(len(lines(f)) == 5 for f in files)


def test_rotated_files_are_compressed_in_a_thread(tmp_path: Path) -> None:
    sink = logfile(tmp_path, rotate_size=1, keep=10, compress=True)

    async def scenario() -> None:
        await sink.open()
        sink.check_interval = 0
        for n in range(4):
            await sink.send(event(n))
        await eventually(lambda: len([p for p in rotated(tmp_path) if p.suffix == ".gz"]) == 3)
        await sink.close()

    run(scenario())
    files = rotated(tmp_path)
    assert all(f.name.endswith(".jsonl.gz") for f in files)
    contents = [gzip.decompress(f.read_bytes()).decode() for f in files]
    assert [json.loads(c)["data"]["path"] for c in contents] == ["/in/0", "/in/1", "/in/2"]


def test_rotation_by_time_at_the_start_of_each_period(tmp_path: Path) -> None:
    now = [10 * 3600 + 5.0]
    sink = logfile(tmp_path, rotate_every="1h", keep=10)
    sink.wall = lambda: now[0]

    async def scenario() -> None:
        await sink.open()
        await sink.send(event(1))
        now[0] += 1800
        await sink.send(event(2))
        now[0] += 1800  # 11:00:05: a new hour
        await sink.send(event(3))
        await sink.close()

    run(scenario())
    (old,) = rotated(tmp_path)
    assert [json.loads(x)["data"]["path"] for x in lines(old)] == ["/in/1", "/in/2"]
    assert [json.loads(x)["data"]["path"] for x in lines(tmp_path / "events.jsonl")] == ["/in/3"]


def test_a_file_left_from_an_earlier_period_is_rotated_before_the_first_line(
    tmp_path: Path,
) -> None:
    live = tmp_path / "events.jsonl"
    live.write_text("yesterday\n")
    os.utime(live, (time.time() - 2 * 86400, time.time() - 2 * 86400))
    sink = logfile(tmp_path, rotate_every="1d")

    async def scenario() -> None:
        await sink.open()
        await sink.send(event(1))
        await sink.close()

    run(scenario())
    (old,) = rotated(tmp_path)
    assert lines(old) == ["yesterday"]
    assert len(lines(live)) == 1


def test_a_writer_that_finds_the_file_rotated_by_another_only_reopens(tmp_path: Path) -> None:
    size = len(to_json(event(1))) + 1
    first = logfile(tmp_path, rotate_size=2 * size, keep=10)
    second = logfile(tmp_path, rotate_size=2 * size, keep=10)

    async def scenario() -> None:
        await first.open()
        await second.open()
        for sink in (first, second):
            sink.check_interval = 0
        await first.send(event(1))
        await second.send(event(2))  # the file is full now, for both writers
        await first.send(event(3))  # rotates, then writes to the new file
        await second.send(event(4))  # finds it rotated: reopens, does not rotate again
        await first.close()
        await second.close()

    run(scenario())
    (old,) = rotated(tmp_path)
    assert [json.loads(x)["data"]["path"] for x in lines(old)] == ["/in/1", "/in/2"]
    live = lines(tmp_path / "events.jsonl")
    assert [json.loads(x)["data"]["path"] for x in live] == ["/in/3", "/in/4"]


def test_rotated_names_never_overwrite(tmp_path: Path) -> None:
    rotator = Rotator(tmp_path / "events.jsonl", keep=5, compress=False, log=structlog.get_logger())
    for n in range(3):
        live = tmp_path / "events.jsonl"
        live.write_text(f"{n}\n")
        stat = live.stat()
        assert rotator.rotate((stat.st_dev, stat.st_ino), lambda _: True) == "rotated"
    names = [p.name for p in rotator.rotated_files()]
    assert len(names) == 3 and len({p.read_text() for p in rotator.rotated_files()}) == 3
    assert all(re.fullmatch(r"events\.\d{8}T\d{6}\.\d{3}Z\.jsonl", n) for n in names)
    assert (tmp_path / "events.jsonl.lock").exists()


# -- fsync ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("options", "after_three", "after_a_second"),
    [
        ({"fsync": "never"}, 0, 0),
        ({"fsync": "always"}, 3, 3),
        ({"fsync": "interval", "fsync_interval": "1s"}, 0, 1),
        ({"fsync": "interval", "fsync_interval": "1s", "fsync_events": 2}, 1, 2),
    ],
)
def test_fsync_policies(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    options: dict[str, Any],
    after_three: int,
    after_a_second: int,
) -> None:
    synced: list[int] = []
    monkeypatch.setattr(os, "fsync", synced.append)
    clock = FakeClock()
    sink = logfile(tmp_path, clock, **options)

    async def scenario() -> tuple[int, int]:
        await sink.open()
        for n in range(3):
            await sink.send(event(n))
        counts = [len(synced)]
        await asyncio.sleep(0)  # let a sync timer start
        await clock.advance(1.0)
        await asyncio.sleep(0.05)  # the sync runs in a thread
        counts.append(len(synced))
        await sink.close()
        return counts[0], counts[1]

    assert run(scenario()) == (after_three, after_a_second)
