"""`pipeline check --connect` probes every component and reports those that cannot connect."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from pipeline import ComponentOptions, Event, Sink, hookimpl
from pipeline.cli.probe import probe_all
from pipeline.registry import build_registry
from tests.unit.test_engine import plan_for


class ProbedOptions(ComponentOptions):
    url: str
    hang: bool = False


class ProbedSink(Sink[ProbedOptions]):
    """Refuses to connect to a URL with 'down' in it; hangs when asked to."""

    type_name = "probed"
    Options = ProbedOptions

    async def send(self, event: Event) -> None:
        pass

    async def probe(self) -> None:
        if self.options.hang:
            await asyncio.sleep(60)
        if "down" in self.options.url:
            raise ConnectionRefusedError(f"cannot connect to {self.options.url}")


class ProbedPlugin:
    @hookimpl
    def pipeline_components(self) -> list[type[Any]]:
        return [ProbedSink]


def test_unreachable_and_silent_targets_are_named_with_secrets_masked(tmp_path: Path) -> None:
    registry = build_registry(extra_plugins=[("test", ProbedPlugin())], autoload=False)
    plan = plan_for(
        registry,
        {
            "sources": [{"type": "poll", "paths": [str(tmp_path)]}],
            "sinks": [
                {"type": "probed", "url": "amqp://u:hunter2@up:5672"},
                {"type": "probed", "url": "amqp://u:hunter2@down:5672"},
                {"type": "probed", "url": "x", "hang": True},
            ],
        },
        tmp_path,
    )
    lines = asyncio.run(probe_all(plan, timeout=0.2))
    assert lines == [
        "p.sinks[1] (probed): ConnectionRefusedError: cannot connect to amqp://u:***@down:5672",
        "p.sinks[2] (probed): no answer within 0.2 s; is the host reachable?",
    ]
