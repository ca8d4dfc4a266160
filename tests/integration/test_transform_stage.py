"""The transform stage on real files, hashing in a real worker thread, inside the engine."""

from __future__ import annotations

import asyncio
import hashlib
import json
from pathlib import Path
from typing import Any, ClassVar

import pytest

from pipeline import ComponentOptions, Emit, Event, EventKind, Sink, Source, hookimpl
from pipeline.config import load_config_data
from pipeline.engine import Runner
from pipeline.registry import build_registry
from pipeline.stages.transform import TransformStage
from tests.conftest import make_component

pytestmark = pytest.mark.integration


def test_hashes_a_real_file_while_the_loop_keeps_turning(tmp_path: Path) -> None:
    target = tmp_path / "big.bin"
    chunk = bytes(range(256)) * 4096  # 1 MiB
    with open(target, "wb") as handle:
        for _ in range(16):
            handle.write(chunk)

    async def scenario() -> tuple[Event, int]:
        stage = make_component(TransformStage, tmp_path, add=["size", "sha256", "blake2b"])
        out: list[Event] = []
        ticks = 0

        async def emit(event: Event) -> None:
            out.append(event)

        async def heartbeat() -> None:
            nonlocal ticks
            while True:
                ticks += 1
                await asyncio.sleep(0)

        beat = asyncio.create_task(heartbeat())
        await asyncio.sleep(0)
        await stage.process(Event(EventKind.CLOSED_WRITE, str(target), "p/inotify"), emit)
        beat.cancel()
        return out[0], ticks

    event, ticks = asyncio.run(scenario())
    assert event.meta["size"] == 16 * 1024 * 1024
    assert event.meta["sha256"] == hashlib.sha256(chunk * 16).hexdigest()
    assert event.meta["blake2b"] == hashlib.blake2b(chunk * 16).hexdigest()
    assert ticks > 10  # the loop kept turning while 16 MiB were hashed


class PathsOptions(ComponentOptions):
    paths: list[str]


class PathsSource(Source[PathsOptions]):
    """Emits one closed_write per configured path, then idles."""

    type_name = "paths"
    Options = PathsOptions

    async def run(self, emit: Emit) -> None:
        for path in self.options.paths:
            await emit(Event(EventKind.CLOSED_WRITE, path, "p/paths"))
        await asyncio.Event().wait()


class CollectSink(Sink[ComponentOptions]):
    """Keeps what it receives."""

    type_name = "collect"
    Options = ComponentOptions
    received: ClassVar[list[Event]] = []

    async def send(self, event: Event) -> None:
        CollectSink.received.append(event)


class Plugin:
    @hookimpl
    def pipeline_components(self) -> list[type[Any]]:
        return [PathsSource, CollectSink]


def test_a_missing_file_is_dead_lettered_and_the_others_flow(tmp_path: Path) -> None:
    present = [tmp_path / "a.csv", tmp_path / "c.csv"]
    for path in present:
        path.write_text(path.name)
    gone = tmp_path / "b.csv"
    CollectSink.received = []
    registry = build_registry(extra_plugins=[("test", Plugin())], autoload=False)
    data = {
        "state_dir": str(tmp_path / "state"),
        "pipelines": {
            "p": {
                "sources": [
                    {"type": "paths", "paths": [str(present[0]), str(gone), str(present[1])]}
                ],
                "stages": [{"type": "transform", "add": ["sha256"]}],
                "sinks": [{"type": "collect"}],
            }
        },
    }
    plan = load_config_data(data, registry, source="test", config_dir=tmp_path)
    runner = Runner(plan, registry)

    async def scenario() -> bool:
        task = asyncio.create_task(runner.run())
        for _ in range(500):
            if len(CollectSink.received) == 2:
                break
            await asyncio.sleep(0.01)
        runner.request_stop()
        return await task

    assert asyncio.run(scenario())  # a clean shutdown: nothing crashed
    assert [e.path for e in CollectSink.received] == [str(p) for p in present]
    assert [e.meta["sha256"] for e in CollectSink.received] == [
        hashlib.sha256(p.name.encode()).hexdigest() for p in present
    ]
    [letter] = [json.loads(line) for line in (tmp_path / "state" / "dead-letter.jsonl").open()]
    assert letter["event"]["data"]["path"] == str(gone)
    assert letter["component"] == "p.stages[0]"
    assert letter["reason"].startswith("FileNotFoundError")
