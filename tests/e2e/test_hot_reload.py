"""Hot reload: editing the config of a running pipeline swaps it without losing or
repeating an event; an invalid edit is logged with its location and changes nothing."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from tests.e2e.cli import Background
from tests.jsonl import complete_records

pytestmark = pytest.mark.e2e

CONFIG = """\
pipelines:
  landing:
    sources: [{{type: inotify, paths: [{inbox}], events: [closed_write]}}]
    sinks:
      - {{type: logfile, path: {a}}}
{extra}"""


def paths_in(log: Path) -> list[str]:
    return [record["data"]["path"] for record in complete_records(log)]


class Writer(threading.Thread):
    """Creates numbered files at a steady pace until stopped; remembers when each closed."""

    def __init__(self, folder: Path) -> None:
        super().__init__(daemon=True)
        self.folder = folder
        self.closed: list[tuple[float, str]] = []
        self.stop = threading.Event()

    def run(self) -> None:
        number = 0
        while not self.stop.is_set():
            path = self.folder / f"f{number:05d}.csv"
            path.write_text("x")
            self.closed.append((time.monotonic(), str(path)))
            number += 1
            time.sleep(0.004)


def test_adding_a_sink_takes_effect_within_a_second_with_nothing_lost_or_repeated(
    tmp_path: Path,
) -> None:
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    a, b = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    config = tmp_path / "config.yaml"
    config.write_text(CONFIG.format(inbox=inbox, a=a, extra=""))
    run = Background("run", str(config), cwd=tmp_path)
    run.wait_ready()
    writer = Writer(inbox)
    writer.start()
    time.sleep(1.0)
    edited = time.monotonic()
    config.write_text(
        CONFIG.format(inbox=inbox, a=a, extra=f"      - {{type: logfile, path: {b}}}\n")
    )
    deadline = time.monotonic() + 10
    while "config reloaded" not in run.stderr and time.monotonic() < deadline:
        time.sleep(0.01)
    applied = time.monotonic()
    time.sleep(1.0)
    writer.stop.set()
    writer.join()
    time.sleep(0.5)
    assert run.interrupt() == 0, run.stderr
    assert applied - edited < 1.0, f"took {applied - edited:.2f} s\n{run.stderr}"
    written = [path for _, path in writer.closed]
    in_a = paths_in(a)
    assert sorted(in_a) == written, "the unchanged sink lost or repeated events across the swap"
    in_b = paths_in(b)
    assert len(in_b) == len(set(in_b)), "the new sink got an event twice"
    after = [path for closed, path in writer.closed if closed > applied]
    assert set(after) <= set(in_b), "the new sink missed events written after the swap"
    assert in_b == sorted(in_b)


def test_an_invalid_edit_is_reported_and_the_old_config_keeps_running(tmp_path: Path) -> None:
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    a = tmp_path / "a.jsonl"
    config = tmp_path / "config.yaml"
    config.write_text(CONFIG.format(inbox=inbox, a=a, extra=""))
    run = Background("run", str(config), cwd=tmp_path)
    run.wait_ready()
    config.write_text(CONFIG.format(inbox=inbox, a=a, extra="      - {type: logfil, path: x}\n"))
    deadline = time.monotonic() + 10
    while "config change not applied" not in run.stderr and time.monotonic() < deadline:
        time.sleep(0.05)
    (inbox / "still.csv").write_text("x")
    deadline = time.monotonic() + 10
    while not paths_in(a) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert run.interrupt() == 0
    assert paths_in(a) == [str(inbox / "still.csv")]
    assert (
        f"{config}:6:16: pipelines.landing.sinks[1].type: unknown sink type 'logfil'" in run.stderr
    )
