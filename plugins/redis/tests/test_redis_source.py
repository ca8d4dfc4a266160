"""The redis source against a real Redis: order, acknowledgement, dead letters, claims."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, MutableMapping
from pathlib import Path
from typing import Any

import pytest
import redis
from pipeline import Event, EventKind
from structlog.testing import capture_logs
from tests.conftest import Running, make_component

from fspipeline_redis.entries import fields_of
from fspipeline_redis.source import RedisSource
from redis_testing import RedisServer, entries, run

pytestmark = pytest.mark.integration


def produce(client: redis.Redis, stream: str, count: int, prefix: str = "f") -> list[Event]:
    """XADD `count` events the way the redis sink writes them; returns them in order."""
    events = [
        Event(kind=EventKind.CLOSED_WRITE, path=f"/in/{prefix}{i:05d}", source="a/inotify")
        for i in range(count)
    ]
    pipe = client.pipeline(transaction=False)
    for event in events:
        pipe.xadd(stream, fields_of(event))
    pipe.execute()
    return events


def pending(client: redis.Redis, stream: str, group: str) -> int:
    count: int = client.xpending(stream, group)["pending"]
    return count


def source(tmp_path: Path, url: str, stream: str, **options: Any) -> RedisSource:
    src: RedisSource = make_component(
        RedisSource, tmp_path, url=url, stream=stream, group="g", **options
    )
    return src


async def eventually(condition: Callable[[], object], timeout: float = 10.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, "condition not met in time"
        await asyncio.sleep(0.02)


def test_emits_in_stream_order_and_acks_only_what_was_settled(
    tmp_path: Path, shared_redis: str, rdb: redis.Redis, stream: str
) -> None:
    sent = produce(rdb, stream, 250)

    async def scenario() -> None:
        src = source(tmp_path, shared_redis, stream, consumer="c1", count=40)
        async with Running(src) as running:
            await running.wait_for(lambda events: len(events) == 250)
            assert [e.id for e in running.events] == [e.id for e in sent]
            assert running.events == sent  # the very events the producer had
            assert pending(rdb, stream, "g") == 250  # read, nothing acknowledged yet
            for event in running.events[:100]:
                src.settled(event, True)
            await eventually(lambda: pending(rdb, stream, "g") == 150)
            for event in running.events[100:]:
                src.settled(event, True)
            await eventually(lambda: pending(rdb, stream, "g") == 0)

    run(scenario())


def test_a_consumer_holds_at_most_max_in_flight_and_the_others_read_the_rest(
    tmp_path: Path, shared_redis: str, rdb: redis.Redis, stream: str
) -> None:
    sent = produce(rdb, stream, 30)

    async def scenario() -> None:
        slow = source(tmp_path, shared_redis, stream, consumer="slow", max_in_flight=4)
        fast = source(tmp_path, shared_redis, stream, consumer="fast")
        async with Running(slow) as holding:
            await holding.wait_for(lambda events: len(events) == 4)
            await asyncio.sleep(0.5)
            assert len(holding.events) == 4  # nothing settled: it reads no more
            async with Running(fast) as taking:
                await taking.wait_for(lambda events: len(events) == 26)
                for event in taking.events:
                    fast.settled(event, True)
            for event in holding.events[:2]:
                slow.settled(event, True)
            await asyncio.sleep(0.3)
            assert len(holding.events) == 4  # room again, but nothing left to read
            for event in holding.events[2:]:
                slow.settled(event, True)
            await eventually(lambda: pending(rdb, stream, "g") == 0)
        assert sorted(e.id for e in holding.events + taking.events) == sorted(e.id for e in sent)

    run(scenario())


def test_a_failed_event_goes_to_the_dead_letter_stream_and_is_acked(
    tmp_path: Path, shared_redis: str, rdb: redis.Redis, stream: str
) -> None:
    sent = produce(rdb, stream, 3)

    async def scenario() -> None:
        src = source(tmp_path, shared_redis, stream, consumer="c1")
        async with Running(src) as running:
            await running.wait_for(lambda events: len(events) == 3)
            src.settled(running.events[0], True)
            src.settled(running.events[1], False)
            src.settled(running.events[2], True)
            await eventually(lambda: pending(rdb, stream, "g") == 0)

    run(scenario())
    dead = entries(rdb, stream + ":dead")
    assert len(dead) == 1
    fields = dead[0][1]
    assert fields[b"id"].decode() == sent[1].id
    assert fields[b"body"] == entries(rdb, stream)[1][1][b"body"]  # the entry as it was
    assert fields[b"source_stream"].decode() == stream
    assert fields[b"source_entry"] == entries(rdb, stream)[1][0]
    assert b"gave up" in fields[b"reason"]


def test_an_entry_that_is_not_an_event_is_dead_lettered_and_reading_goes_on(
    tmp_path: Path, shared_redis: str, rdb: redis.Redis, stream: str
) -> None:
    rdb.xadd(stream, {"body": "{not json, password redis://u:pw-123@h/0"})
    rdb.xadd(stream, {"something": "else"})
    sent = produce(rdb, stream, 1)

    async def scenario() -> list[MutableMapping[str, Any]]:
        src = source(tmp_path, shared_redis, stream, consumer="c1")
        with capture_logs() as logs:
            async with Running(src) as running:
                await running.wait_for(lambda events: len(events) == 1)
                assert running.events == sent
                await eventually(lambda: rdb.xlen(stream + ":dead") == 2)
                await eventually(lambda: pending(rdb, stream, "g") == 1)  # only the event
        return logs

    logs = run(scenario())
    reasons = [f[b"reason"].decode() for _, f in entries(rdb, stream + ":dead")]
    assert "invalid JSON" in reasons[0]
    assert "has no 'body' field (it has: something)" in reasons[1]
    warnings = [log for log in logs if log["event"].startswith("entry is not an event")]
    assert len(warnings) == 2
    assert "pw-123" not in repr(logs)


def test_a_restarted_consumer_resumes_its_own_pending_entries_first(
    tmp_path: Path, shared_redis: str, rdb: redis.Redis, stream: str
) -> None:
    sent = produce(rdb, stream, 10)

    async def scenario() -> None:
        first = source(tmp_path, shared_redis, stream, consumer="worker-1")
        async with Running(first) as running:
            await running.wait_for(lambda events: len(events) == 10)
            for event in running.events[:4]:
                first.settled(event, True)
            await eventually(lambda: pending(rdb, stream, "g") == 6)
        # Stopped without settling the rest (a crash); a new event arrives meanwhile.
        sent.extend(produce(rdb, stream, 1, prefix="new"))
        again = source(tmp_path, shared_redis, stream, consumer="worker-1")
        async with Running(again) as running:
            await running.wait_for(lambda events: len(events) == 7)
            assert [e.id for e in running.events] == [e.id for e in sent[4:]]

    run(scenario())


def test_entries_a_dead_consumer_left_pending_are_claimed(
    tmp_path: Path, shared_redis: str, rdb: redis.Redis, stream: str
) -> None:
    sent = produce(rdb, stream, 5)
    rdb.xgroup_create(stream, "g", id="0")
    rdb.xreadgroup("g", "dead-worker", {stream: ">"}, count=3)  # reads 3, then "dies"

    async def scenario() -> None:
        src = source(
            tmp_path,
            shared_redis,
            stream,
            consumer="c2",
            claim_idle="300ms",
            claim_interval="100ms",
        )
        async with Running(src) as running:
            await running.wait_for(lambda events: len(events) == 5, timeout=10)
            # The two nobody read come at once; the three abandoned ones once idle enough.
            assert {e.id for e in running.events} == {e.id for e in sent}
            assert [e.id for e in running.events[2:]] == [e.id for e in sent[:3]]
            for event in running.events:
                src.settled(event, True)
            await eventually(lambda: pending(rdb, stream, "g") == 0)

    run(scenario())


def test_entries_still_in_flight_are_not_taken_over_by_other_consumers(
    tmp_path: Path, shared_redis: str, rdb: redis.Redis, stream: str
) -> None:
    produce(rdb, stream, 3)

    async def scenario() -> None:
        src = source(
            tmp_path,
            shared_redis,
            stream,
            consumer="slow",
            claim_idle="600ms",
            claim_interval="100ms",
        )
        async with Running(src) as running:
            await running.wait_for(lambda events: len(events) == 3)
            for _ in range(8):  # the pipeline holds the events for 1.6s: longer than claim_idle
                await asyncio.sleep(0.2)
                taken = rdb.xautoclaim(stream, "g", "thief", min_idle_time=600, justid=True)
                assert taken == [], "another consumer took over an entry still being worked on"
            for event in running.events:
                src.settled(event, True)
            await eventually(lambda: pending(rdb, stream, "g") == 0)

    run(scenario())


def test_start_id_dollar_skips_what_the_stream_held_before(
    tmp_path: Path, shared_redis: str, rdb: redis.Redis, stream: str
) -> None:
    produce(rdb, stream, 5, prefix="old")

    async def scenario() -> None:
        src = source(tmp_path, shared_redis, stream, consumer="c", start_id="$")
        async with Running(src) as running:
            await eventually(lambda: rdb.exists(stream) and len(rdb.xinfo_groups(stream)) == 1)
            fresh = produce(rdb, stream, 2, prefix="fresh")
            await running.wait_for(lambda events: len(events) == 2)
            assert running.events == fresh

    run(scenario())


def test_keeps_retrying_while_redis_is_down_then_reads(
    tmp_path: Path, own_redis: RedisServer
) -> None:
    own_redis.shutdown()

    async def scenario() -> list[MutableMapping[str, Any]]:
        src = source(tmp_path, own_redis.url, "s", consumer="c", timeout="1s")
        with capture_logs() as logs:
            async with Running(src) as running:
                await asyncio.sleep(1.2)  # a few failed attempts
                await asyncio.to_thread(own_redis.start)
                with own_redis.client() as client:
                    sent = await asyncio.to_thread(produce, client, "s", 3)
                await running.wait_for(lambda events: len(events) == 3, timeout=15)
                assert running.events == sent
        return logs

    logs = run(scenario())
    retries = [log for log in logs if log["event"] == "cannot read from Redis; retrying"]
    assert len(retries) >= 2
    assert [log["attempt"] for log in retries[:2]] == [1, 2]
    assert "cannot reach Redis at redis://127.0.0.1" in retries[0]["error"]
    assert any(log["event"] == "reading from Redis again" for log in logs)


def test_recreates_the_group_when_redis_lost_it(tmp_path: Path, own_redis: RedisServer) -> None:
    async def scenario() -> None:
        src = source(tmp_path, own_redis.url, "s", consumer="c", timeout="1s")
        async with Running(src) as running:
            with own_redis.client() as client:
                first = await asyncio.to_thread(produce, client, "s", 2)
            await running.wait_for(lambda events: len(events) == 2)
            await asyncio.to_thread(own_redis.shutdown)  # nosave: stream and group are gone
            await asyncio.to_thread(own_redis.start)
            with own_redis.client() as client:
                second = await asyncio.to_thread(produce, client, "s", 2, "again")
            await running.wait_for(lambda events: len(events) == 4, timeout=20)
            assert running.events == first + second

    run(scenario())
