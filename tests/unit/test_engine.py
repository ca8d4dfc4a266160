"""The engine: fan-out, back-pressure, retries, dead letters and orderly shutdown."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from pipeline import (
    ComponentOptions,
    DeliveryError,
    Emit,
    Event,
    EventKind,
    Sink,
    Source,
    Stage,
    hookimpl,
)
from pipeline.config import load_config_data
from pipeline.engine import Runner
from pipeline.registry import Registry, build_registry


class ScriptOptions(ComponentOptions):
    count: int = 10
    prefix: str = "/in/f"


class ScriptSource(Source[ScriptOptions]):
    """Emits `count` created events, recording how far it got."""

    type_name = "script"
    Options = ScriptOptions
    emitted: list[int] = []  # noqa: RUF012 - shared with the test on purpose

    async def run(self, emit: Emit) -> None:
        for i in range(self.options.count):
            await emit(Event(EventKind.CREATED, f"{self.options.prefix}{i}", "t/script"))
            ScriptSource.emitted.append(i)
        await asyncio.Event().wait()


class RecordOptions(ComponentOptions):
    fail_paths: list[str] = []  # noqa: RUF012 - pydantic copies defaults
    fail_times: int = 0
    delay: float = 0.0


class RecordSink(Sink[RecordOptions]):
    """Records what it receives; fails on some paths; can be slow."""

    type_name = "record"
    Options = RecordOptions
    received: dict[str, list[str]] = {}  # noqa: RUF012
    attempts: dict[str, int] = {}  # noqa: RUF012

    async def send(self, event: Event) -> None:
        key = f"{self.context.label}:{event.path}"
        RecordSink.attempts[key] = RecordSink.attempts.get(key, 0) + 1
        if self.options.delay:
            await asyncio.sleep(self.options.delay)
        failing = (
            self.options.fail_times == 0 or RecordSink.attempts[key] <= self.options.fail_times
        )
        if event.path in self.options.fail_paths and failing:
            raise ConnectionError(f"refused for {event.path}")
        RecordSink.received.setdefault(self.context.label, []).append(event.path)


class ExplodeOptions(ComponentOptions):
    path: str


class ExplodeStage(Stage[ExplodeOptions]):
    """Raises on one path, passes the rest."""

    type_name = "explode"
    Options = ExplodeOptions

    async def process(self, event: Event, emit: Emit) -> None:
        if event.path == self.options.path:
            raise ValueError("cannot handle this one")
        await emit(event)


class TestPlugin:
    @hookimpl
    def pipeline_components(self) -> list[type[Any]]:
        return [ScriptSource, RecordSink, ExplodeStage]


@pytest.fixture
def registry() -> Registry:
    ScriptSource.emitted = []
    RecordSink.received = {}
    RecordSink.attempts = {}
    return build_registry(extra_plugins=[("test", TestPlugin())], autoload=False)


def plan_for(registry: Registry, pipeline: dict[str, Any], tmp_path: Path, **top: Any) -> Any:
    data = {"state_dir": str(tmp_path / "state"), **top, "pipelines": {"p": pipeline}}
    return load_config_data(data, registry, source="test", config_dir=tmp_path)


async def run_until(runner: Runner, condition: Any, timeout: float = 5.0) -> bool:
    task = asyncio.create_task(runner.run())
    deadline = asyncio.get_running_loop().time() + timeout
    while not condition():
        if asyncio.get_running_loop().time() > deadline:
            break
        await asyncio.sleep(0.01)
    runner.request_stop()
    return await task


def dead_letters(tmp_path: Path) -> list[dict[str, Any]]:
    path = tmp_path / "state" / "dead-letter.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_every_event_reaches_every_sink_in_order(registry: Registry, tmp_path: Path) -> None:
    plan = plan_for(
        registry,
        {
            "sources": [{"type": "script", "count": 50}],
            "sinks": [{"type": "record"}, {"type": "record"}],
        },
        tmp_path,
    )
    runner = Runner(plan, registry)
    total = lambda: sum(len(v) for v in RecordSink.received.values())  # noqa: E731
    clean = asyncio.run(run_until(runner, lambda: total() == 100))
    expected = [f"/in/f{i}" for i in range(50)]
    assert RecordSink.received == {"p.sinks[0]": expected, "p.sinks[1]": expected}
    assert clean


def test_full_queue_slows_the_source_instead_of_dropping(
    registry: Registry, tmp_path: Path
) -> None:
    plan = plan_for(
        registry,
        {
            "sources": [{"type": "script", "count": 40}],
            "sinks": [{"type": "record", "delay": 0.02, "queue_size": 2}],
        },
        tmp_path,
    )
    runner = Runner(plan, registry)

    async def scenario() -> tuple[int, int, bool]:
        task = asyncio.create_task(runner.run())
        await asyncio.sleep(0.2)  # ~10 deliveries' worth of time
        emitted_early = len(ScriptSource.emitted)
        while len(RecordSink.received.get("p.sinks[0]", [])) < 40:
            await asyncio.sleep(0.02)
        runner.request_stop()
        return emitted_early, len(RecordSink.received["p.sinks[0]"]), await task

    emitted_early, delivered, clean = asyncio.run(scenario())
    # The source may run ahead of the sink only by the queue size plus the one in flight.
    assert emitted_early <= len(RecordSink.received.get("p.sinks[0]", [])) + 4
    assert emitted_early < 40
    assert delivered == 40
    assert clean


def test_failing_delivery_is_retried_then_dead_lettered_while_others_flow(
    registry: Registry, tmp_path: Path
) -> None:
    plan = plan_for(
        registry,
        {
            "sources": [{"type": "script", "count": 5}],
            "sinks": [
                {
                    "type": "record",
                    "fail_paths": ["/in/f1", "/in/f3"],
                    "fail_times": 2,
                    "max_attempts": 3,
                    "retry_backoff": "1ms",
                },
                {
                    "type": "record",
                    "fail_paths": ["/in/f2"],
                    "max_attempts": 2,
                    "retry_backoff": "1ms",
                },
            ],
        },
        tmp_path,
    )
    runner = Runner(plan, registry)
    asyncio.run(run_until(runner, lambda: len(RecordSink.received.get("p.sinks[1]", [])) == 4))
    # f1 and f3 fail twice then succeed on the third attempt: delivered, not dead-lettered.
    assert RecordSink.received["p.sinks[0]"] == [f"/in/f{i}" for i in range(5)]
    assert RecordSink.attempts["p.sinks[0]:/in/f1"] == 3
    # f2 always fails on the second sink: two attempts, then the dead-letter file.
    assert RecordSink.received["p.sinks[1]"] == ["/in/f0", "/in/f1", "/in/f3", "/in/f4"]
    assert RecordSink.attempts["p.sinks[1]:/in/f2"] == 2
    [letter] = dead_letters(tmp_path)
    assert letter["component"] == "p.sinks[1]"
    assert letter["event"]["data"]["path"] == "/in/f2"
    assert letter["reason"] == "ConnectionError: refused for /in/f2 (after 2 attempts)"


def test_a_stage_that_raises_dead_letters_that_event_only(
    registry: Registry, tmp_path: Path
) -> None:
    plan = plan_for(
        registry,
        {
            "sources": [{"type": "script", "count": 4}],
            "stages": [{"type": "explode", "path": "/in/f2"}],
            "sinks": [{"type": "record"}],
        },
        tmp_path,
    )
    runner = Runner(plan, registry)
    asyncio.run(run_until(runner, lambda: len(RecordSink.received.get("p.sinks[0]", [])) == 3))
    assert RecordSink.received["p.sinks[0]"] == ["/in/f0", "/in/f1", "/in/f3"]
    [letter] = dead_letters(tmp_path)
    assert letter["component"] == "p.stages[0]"
    assert letter["reason"] == "ValueError: cannot handle this one"


def test_shutdown_flushes_debounce_and_drains_the_queues(
    registry: Registry, tmp_path: Path
) -> None:
    plan = plan_for(
        registry,
        {
            "sources": [{"type": "script", "count": 20}],
            "stages": [{"type": "debounce", "quiet": "1h"}],
            "sinks": [{"type": "record", "delay": 0.005}],
        },
        tmp_path,
    )
    runner = Runner(plan, registry)
    clean = asyncio.run(run_until(runner, lambda: len(ScriptSource.emitted) == 20))
    # Nothing had left the hour-long debounce; stopping flushed all 20 and delivered them.
    assert RecordSink.received["p.sinks[0]"] == [f"/in/f{i}" for i in range(20)]
    assert clean
    assert dead_letters(tmp_path) == []


def test_events_left_at_the_deadline_are_dead_lettered_not_lost(
    registry: Registry, tmp_path: Path
) -> None:
    plan = plan_for(
        registry,
        {
            "sources": [{"type": "script", "count": 10}],
            "sinks": [{"type": "record", "delay": 0.5, "queue_size": 100}],
        },
        tmp_path,
        shutdown_timeout="200ms",
    )
    runner = Runner(plan, registry)
    clean = asyncio.run(run_until(runner, lambda: len(ScriptSource.emitted) == 10))
    delivered = RecordSink.received.get("p.sinks[0]", [])
    letters = [d["event"]["data"]["path"] for d in dead_letters(tmp_path)]
    assert not clean
    assert sorted(delivered + letters) == sorted(f"/in/f{i}" for i in range(10))
    assert all(
        d["reason"] == "not delivered before the shutdown deadline" for d in dead_letters(tmp_path)
    )


def test_lifecycle_hooks_are_called(registry: Registry, tmp_path: Path) -> None:
    calls: list[tuple[str, Any]] = []

    class Observer:
        @hookimpl
        def pipeline_startup(self, pipelines: list[str]) -> None:
            calls.append(("startup", list(pipelines)))

        @hookimpl
        def pipeline_shutdown(self, clean: bool) -> None:
            calls.append(("shutdown", clean))

        @hookimpl
        def pipeline_event_dead_lettered(self, event: Event, component: str) -> None:
            calls.append(("dead", (event.path, component)))

    registry.manager.register(Observer())
    plan = plan_for(
        registry,
        {
            "sources": [{"type": "script", "count": 2}],
            "sinks": [{"type": "record", "fail_paths": ["/in/f0"], "max_attempts": 1}],
        },
        tmp_path,
    )
    runner = Runner(plan, registry)
    asyncio.run(run_until(runner, lambda: len(RecordSink.received.get("p.sinks[0]", [])) == 1))
    assert calls == [("startup", ["p"]), ("dead", ("/in/f0", "p.sinks[0]")), ("shutdown", True)]


class BatchOptions(ComponentOptions):
    delay: float = 0.0


class BatchSink(Sink[BatchOptions]):
    """Records each call's events; takes batches."""

    type_name = "batchrec"
    Options = BatchOptions
    calls: list[list[str]] = []  # noqa: RUF012
    in_flight = 0
    most_in_flight = 0

    async def send(self, event: Event) -> None:
        await self.send_batch([event])

    async def send_batch(self, events: Any) -> None:
        BatchSink.in_flight += 1
        BatchSink.most_in_flight = max(BatchSink.most_in_flight, BatchSink.in_flight)
        try:
            if self.options.delay:
                await asyncio.sleep(self.options.delay)
            BatchSink.calls.append([e.path for e in events])
        finally:
            BatchSink.in_flight -= 1


class BatchPlugin:
    @hookimpl
    def pipeline_components(self) -> list[type[Any]]:
        return [BatchSink]


@pytest.fixture
def batch_registry(registry: Registry) -> Registry:
    BatchSink.calls = []
    BatchSink.in_flight = BatchSink.most_in_flight = 0
    registry = build_registry(
        extra_plugins=[("test", TestPlugin()), ("batch", BatchPlugin())], autoload=False
    )
    return registry


def delivered(calls: list[list[str]]) -> list[str]:
    return [path for call in calls for path in call]


def test_batches_are_handed_to_the_sink_in_one_call(
    batch_registry: Registry, tmp_path: Path
) -> None:
    plan = plan_for(
        batch_registry,
        {
            "sources": [{"type": "script", "count": 25}],
            "sinks": [{"type": "batchrec", "batch_size": 10, "batch_wait": "50ms"}],
        },
        tmp_path,
    )
    runner = Runner(plan, batch_registry)
    asyncio.run(run_until(runner, lambda: len(delivered(BatchSink.calls)) == 25))
    assert delivered(BatchSink.calls) == [f"/in/f{i}" for i in range(25)]
    assert max(len(call) for call in BatchSink.calls) == 10
    assert len(BatchSink.calls) <= 5


def test_concurrency_runs_deliveries_in_parallel_and_keeps_each_paths_order(
    batch_registry: Registry, tmp_path: Path
) -> None:
    plan = plan_for(
        batch_registry,
        {
            "sources": [{"type": "script", "count": 40, "prefix": "/in/p"}],
            "stages": [],
            "sinks": [{"type": "batchrec", "delay": 0.02, "concurrency": 8}],
        },
        tmp_path,
    )
    runner = Runner(plan, batch_registry)
    asyncio.run(run_until(runner, lambda: len(delivered(BatchSink.calls)) == 40))
    assert sorted(delivered(BatchSink.calls)) == sorted(f"/in/p{i}" for i in range(40))
    assert BatchSink.most_in_flight > 1


def test_events_of_one_path_stay_in_order_across_lanes(tmp_path: Path) -> None:
    from pipeline.engine.queues import MemoryQueue, shard_of

    queue = MemoryQueue(100, shards=4)

    async def scenario() -> list[list[str]]:
        for i in range(20):
            await queue.put(Event(EventKind.MODIFIED, f"/p{i % 3}", "t/x", meta={"n": i}))
        lanes: list[list[str]] = [[] for _ in range(4)]
        for lane in range(4):
            while (item := queue.get_nowait(lane)) is not None:
                lanes[lane].append(f"{item[1].path}:{item[1].meta['n']}")
        return lanes

    lanes = asyncio.run(scenario())
    for path in ("/p0", "/p1", "/p2"):
        lane = shard_of(Event(EventKind.MODIFIED, path, "t/x"), 4)
        seen = [int(x.split(":")[1]) for x in lanes[lane] if x.startswith(path + ":")]
        assert seen == sorted(seen) and len(seen) == len(
            [i for i in range(20) if f"/p{i % 3}" == path]
        )


def test_a_spool_keeps_undelivered_events_for_the_next_start(
    registry: Registry, tmp_path: Path
) -> None:
    failing = {
        "sources": [{"type": "script", "count": 30}],
        "sinks": [
            {
                "type": "record",
                "fail_paths": [f"/in/f{i}" for i in range(30)],
                "max_attempts": 1000,
                "retry_backoff": "10ms",
                "retry_max_backoff": "20ms",
                "spool": True,
            }
        ],
    }
    plan = plan_for(registry, failing, tmp_path, shutdown_timeout="100ms")
    runner = Runner(plan, registry)
    clean = asyncio.run(run_until(runner, lambda: len(ScriptSource.emitted) == 30))
    assert not clean  # the target was down the whole time
    assert RecordSink.received == {}
    assert dead_letters(tmp_path) == []  # kept in the spool, not given up
    # Next start: the target is back. The source emits nothing new this time.
    working = {
        "sources": [{"type": "script", "count": 0}],
        "sinks": [{"type": "record", "spool": True}],
    }
    plan = plan_for(registry, working, tmp_path)
    runner = Runner(plan, registry)
    clean = asyncio.run(
        run_until(runner, lambda: len(RecordSink.received.get("p.sinks[0]", [])) == 30)
    )
    assert RecordSink.received["p.sinks[0]"] == [f"/in/f{i}" for i in range(30)]
    assert clean


def test_a_spool_needs_a_state_dir(registry: Registry, tmp_path: Path) -> None:
    from pipeline.errors import ConfigError

    data = {
        "pipelines": {
            "p": {"sources": [{"type": "script"}], "sinks": [{"type": "record", "spool": True}]}
        }
    }
    with pytest.raises(ConfigError, match=r"p\.sinks\[0\]\.spool: a spool lives under `state_dir`"):
        load_config_data(data, registry, source="test", config_dir=tmp_path)


def test_dead_letters_can_go_to_a_sink(registry: Registry, tmp_path: Path) -> None:
    plan = plan_for(
        registry,
        {
            "sources": [{"type": "script", "count": 3}],
            "sinks": [{"type": "record", "fail_paths": ["/in/f1"], "max_attempts": 1}],
            "dead_letter": {"type": "logfile", "path": "dlq.jsonl"},
        },
        tmp_path,
    )
    runner = Runner(plan, registry)
    asyncio.run(run_until(runner, lambda: len(RecordSink.received.get("p.sinks[0]", [])) == 2))
    [line] = (tmp_path / "dlq.jsonl").read_text().splitlines()
    record = json.loads(line)
    assert record["data"]["path"] == "/in/f1"
    assert record["data"]["dead_letter"] == {
        "reason": "ConnectionError: refused for /in/f1 (after 1 attempt)",
        "component": "p.sinks[0]",
    }
    assert dead_letters(tmp_path) == []


class MixedOptions(ComponentOptions):
    names: list[str]


class MixedSource(Source[MixedOptions]):
    """Emits one created event per name under /in."""

    type_name = "mixed"
    Options = MixedOptions

    async def run(self, emit: Emit) -> None:
        for name in self.options.names:
            await emit(Event(EventKind.CREATED, f"/in/{name}", "t/mixed"))
        await asyncio.Event().wait()


class MixedPlugin:
    @hookimpl
    def pipeline_components(self) -> list[type[Any]]:
        return [MixedSource]


def test_when_routes_events_to_sinks_and_past_stages(tmp_path: Path) -> None:
    RecordSink.received = {}
    registry = build_registry(
        extra_plugins=[("test", TestPlugin()), ("mixed", MixedPlugin())], autoload=False
    )
    plan = plan_for(
        registry,
        {
            "sources": [{"type": "mixed", "names": ["a.csv", "b.json", "c.csv", "d.txt"]}],
            # The stage only sees CSVs: it blows up on c.csv; other files pass it by.
            "stages": [{"type": "explode", "path": "/in/c.csv", "when": 'ext == ".csv"'}],
            "sinks": [
                {"type": "record", "when": 'ext == ".csv"'},
                {"type": "record", "when": 'ext == ".json"'},
                {"type": "record"},
            ],
        },
        tmp_path,
    )
    runner = Runner(plan, registry)
    asyncio.run(run_until(runner, lambda: len(RecordSink.received.get("p.sinks[2]", [])) == 3))
    assert RecordSink.received == {
        "p.sinks[0]": ["/in/a.csv"],
        "p.sinks[1]": ["/in/b.json"],
        "p.sinks[2]": ["/in/a.csv", "/in/b.json", "/in/d.txt"],
    }
    [letter] = dead_letters(tmp_path)
    assert letter["component"] == "p.stages[0]"


def test_a_bad_when_is_a_located_config_error(registry: Registry, tmp_path: Path) -> None:
    from pipeline.errors import ConfigError

    data = {
        "pipelines": {
            "p": {
                "sources": [{"type": "script"}],
                "sinks": [{"type": "record", "when": 'ext == ".csv" and'}],
            }
        }
    }
    with pytest.raises(ConfigError, match=r"p\.sinks\[0\]\.when: invalid condition: column"):
        load_config_data(data, registry, source="test", config_dir=tmp_path)


class VerdictOptions(ComponentOptions):
    permanent: bool = False
    retry_after: float | None = None


class VerdictSink(Sink[VerdictOptions]):
    """Fails every delivery with a DeliveryError carrying a retry hint."""

    type_name = "verdict"
    Options = VerdictOptions
    calls: list[float] = []  # noqa: RUF012

    async def send(self, event: Event) -> None:
        VerdictSink.calls.append(asyncio.get_running_loop().time())
        raise DeliveryError(
            "refused", permanent=self.options.permanent, retry_after=self.options.retry_after
        )


class VerdictPlugin:
    @hookimpl
    def pipeline_components(self) -> list[type[Any]]:
        return [ScriptSource, VerdictSink]


@pytest.mark.parametrize(
    ("options", "calls", "reason"),
    [
        ({"permanent": True}, 1, "DeliveryError: refused (after 1 attempt)"),
        ({"retry_after": 0.3}, 2, "DeliveryError: refused (after 2 attempts)"),
    ],
)
def test_a_delivery_error_says_whether_and_when_to_retry(
    tmp_path: Path, options: dict[str, Any], calls: int, reason: str
) -> None:
    VerdictSink.calls = []
    registry = build_registry(extra_plugins=[("v", VerdictPlugin())], autoload=False)
    sink = {"type": "verdict", "max_attempts": 2, "retry_backoff": "1ms", **options}
    plan = plan_for(
        registry, {"sources": [{"type": "script", "count": 1}], "sinks": [sink]}, tmp_path
    )
    asyncio.run(run_until(Runner(plan, registry), lambda: bool(dead_letters(tmp_path))))
    assert len(VerdictSink.calls) == calls
    if calls == 2:
        assert VerdictSink.calls[1] - VerdictSink.calls[0] >= 0.29  # not the 1 ms back-off
    [letter] = dead_letters(tmp_path)
    assert letter["reason"] == reason


def test_max_attempts_0_retries_until_delivered(registry: Registry, tmp_path: Path) -> None:
    sink = {
        "type": "record",
        "fail_paths": ["/in/f0"],
        "fail_times": 12,
        "max_attempts": 0,
        "retry_backoff": "1ms",
        "retry_max_backoff": "2ms",
    }
    plan = plan_for(
        registry, {"sources": [{"type": "script", "count": 1}], "sinks": [sink]}, tmp_path
    )
    asyncio.run(run_until(Runner(plan, registry), lambda: bool(RecordSink.received)))
    assert RecordSink.received == {"p.sinks[0]": ["/in/f0"]}
    assert RecordSink.attempts["p.sinks[0]:/in/f0"] == 13
    assert dead_letters(tmp_path) == []


def test_a_hanging_sink_is_timed_out_and_the_rest_flows(registry: Registry, tmp_path: Path) -> None:
    sink = {
        "type": "record",
        "delay": 3600,
        "send_timeout": "50ms",
        "max_attempts": 2,
        "retry_backoff": "1ms",
    }
    plan = plan_for(
        registry, {"sources": [{"type": "script", "count": 3}], "sinks": [sink]}, tmp_path
    )
    asyncio.run(run_until(Runner(plan, registry), lambda: len(dead_letters(tmp_path)) == 3))
    letters = dead_letters(tmp_path)
    assert [letter["event"]["data"]["path"] for letter in letters] == ["/in/f0", "/in/f1", "/in/f2"]
    assert letters[0]["reason"] == (
        "TimeoutError: no answer within send_timeout 0.05s (after 2 attempts)"
    )
