"""The fanotify source's catch-up after `kill -9`, through `pipeline run` as a subprocess.

What changed while the process was down is reported once; files written while the next
process starts (before, during and after its scan) are reported too, and once.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

import pytest

from pipeline import Event, EventKind
from pipeline.sources.fanotify import FanotifySource
from tests.conftest import Running, make_component
from tests.e2e.cli import Background

pytestmark = pytest.mark.integration

BUILTINS_ONLY = {"FSPIPELINE_DISABLE_PLUGIN_AUTOLOAD": "1"}
CONFIG = """
state_dir: state
pipelines:
  landing:
    sources:
      - type: fanotify
        paths: [inbox]
        events: [closed_write, deleted, moved]
        checkpoint_interval: 200ms
    sinks:
      - type: logfile
        path: events.jsonl
"""


def reported(log: Path, inbox: Path) -> Counter[tuple[str, str, str | None]]:
    """(kind, path, src_path) relative to the inbox, with how often each was reported."""
    if not log.exists():
        return Counter()
    found: Counter[tuple[str, str, str | None]] = Counter()
    for line in log.read_text().splitlines():
        if line.strip():
            data = json.loads(line)["data"]
            src = data["src_path"]
            found[
                (
                    data["kind"],
                    os.path.relpath(data["path"], inbox),
                    None if src is None else os.path.relpath(src, inbox),
                )
            ] += 1
    return found


def wait_for(
    log: Path, inbox: Path, wanted: set[tuple[str, str, str | None]], timeout: float = 60
) -> Counter[tuple[str, str, str | None]]:
    deadline = time.monotonic() + timeout
    while True:
        seen = reported(log, inbox)
        if wanted <= set(seen):
            return seen
        if time.monotonic() > deadline:
            raise AssertionError(f"never reported: {sorted(wanted - set(seen))[:20]}")
        time.sleep(0.05)


class Writer(threading.Thread):
    """Writes numbered files, one every millisecond or so, until stopped."""

    def __init__(self, folder: Path) -> None:
        super().__init__(daemon=True)
        self.folder = folder
        self.names: list[str] = []
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.is_set():
            name = f"during-{len(self.names):05d}.csv"
            (self.folder / name).write_text("x")
            self.names.append(f"{self.folder.name}/{name}")
            time.sleep(0.001)


def test_kill_9_then_restart_reports_each_change_made_while_down_once(tmp_path: Path) -> None:
    (tmp_path / "config.yaml").write_text(CONFIG)
    inbox, log = tmp_path / "inbox", tmp_path / "events.jsonl"
    (inbox / "sub").mkdir(parents=True)
    for name in ("doomed.csv", "sub/edited.csv", "sub/renamed.csv"):
        (inbox / name).write_text("there from the start")

    first = Background("run", "config.yaml", cwd=tmp_path, env=BUILTINS_ONLY)
    try:
        first.wait_ready()
        up = {f"up-{i}.csv" for i in range(50)}
        for name in sorted(up):
            (inbox / name).write_text("x")
        wait_for(log, inbox, {("closed_write", name, None) for name in up})
        time.sleep(1.0)  # a few checkpoints go by: the snapshot on disk now holds them
    finally:
        first.proc.kill()  # SIGKILL: no chance to save anything
        first.proc.wait(10)

    (inbox / "new").mkdir()
    down = {f"down-{i}.csv" for i in range(100)} | {f"new/deep-{i}.csv" for i in range(20)}
    for name in sorted(down):
        (inbox / name).write_text("x")
    with open(inbox / "sub" / "edited.csv", "a") as handle:
        handle.write(", and edited while down")
    (inbox / "doomed.csv").unlink()
    os.rename(inbox / "sub" / "renamed.csv", inbox / "sub" / "moved.csv")
    while_down = {("closed_write", name, None) for name in down} | {
        ("closed_write", "sub/edited.csv", None),
        ("deleted", "doomed.csv", None),
        ("moved", "sub/moved.csv", "sub/renamed.csv"),
    }

    (inbox / "busy").mkdir()
    writer = Writer(inbox / "busy")
    writer.start()  # across the start of the next process: before, during, after its scan
    second = Background("run", "config.yaml", cwd=tmp_path, env=BUILTINS_ONLY)
    try:
        second.wait_ready()
        time.sleep(0.5)
        writer.stop.set()
        writer.join(10)
        during = {("closed_write", name, None) for name in writer.names}
        wait_for(log, inbox, while_down | during)
        time.sleep(1.0)  # nothing more should come
        seen = reported(log, inbox)
    finally:
        second.interrupt()

    assert len(writer.names) > 100
    twice = {change: count for change, count in seen.items() if count > 1}
    assert not twice, f"reported more than once: {sorted(twice)[:20]}"
    for name in up:  # saved before the kill, not reported again
        assert seen[("closed_write", name, None)] == 1
    # Nothing else: the renamed file's old name is not reported deleted, say.
    extra = set(seen) - while_down - during - {("closed_write", n, None) for n in up}
    assert not extra, sorted(extra)


def test_a_catch_up_bigger_than_the_kernel_queue_is_reported_without_overflow() -> None:
    # Each file the catch-up reports is looked at (is it still open for writing?), which
    # queues an event of its own: more files than the kernel queues (16,384) must not
    # make the queue overflow, and each is reported once.
    base = Path(tempfile.mkdtemp(prefix="fsp-fanotify-", dir="/dev/shm"))
    inbox, state = base / "inbox", base / "state"
    inbox.mkdir()
    count = 20_000

    def source() -> FanotifySource:
        built: FanotifySource = make_component(
            FanotifySource,
            base,
            state_dir=state,
            paths=[str(inbox)],
            checkpoint_interval="100ms",
            unlimited_queue=False,  # the kernel's limit: the catch-up must stay under it
        )
        return built

    async def scenario() -> None:
        async with Running(source()):
            await asyncio.sleep(0.3)
        for i in range(count):
            fd = os.open(inbox / f"f{i:05d}", os.O_WRONLY | os.O_CREAT, 0o644)
            os.write(fd, b"x")
            os.close(fd)
        async with Running(source()) as watch:
            expected = {str(inbox / f"f{i:05d}") for i in range(count)}

            def closed(events: list[Event]) -> list[str]:
                return [e.path for e in events if e.kind is EventKind.CLOSED_WRITE]

            await watch.wait_for(lambda ev: expected <= set(closed(ev)), 60)
            await watch.settle(0.5)
            assert [e for e in watch.events if e.kind is EventKind.OVERFLOW] == []
            assert len(closed(watch.events)) == count
            assert not [e for e in watch.events if e.kind is EventKind.OPENED]  # its own looks

    try:
        asyncio.run(scenario())
    finally:
        shutil.rmtree(base, ignore_errors=True)
