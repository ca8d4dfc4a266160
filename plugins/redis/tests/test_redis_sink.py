"""The redis sink against a real Redis: what a consumer of the stream sees."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import redis
from pipeline import Event, EventKind, from_json
from pipeline.config import load_config
from pipeline.errors import ConfigError
from pipeline.registry import build_registry
from structlog.testing import capture_logs
from tests.conftest import make_component

from fspipeline_redis import plugin
from fspipeline_redis.connection import RedisUnavailable
from fspipeline_redis.sink import RedisSink
from redis_testing import RedisServer, entries, free_port, run

pytestmark = pytest.mark.integration


def event(path: str, kind: EventKind = EventKind.CLOSED_WRITE, **meta: object) -> Event:
    return Event(kind=kind, path=path, source="t/inotify", meta={"root": "/in", **meta})


def test_each_event_is_one_entry_with_id_type_and_cloudevents_body(
    tmp_path: Path, shared_redis: str, rdb: redis.Redis, stream: str
) -> None:
    async def scenario() -> None:
        sink = make_component(RedisSink, tmp_path, url=shared_redis, stream=stream)
        sent = [event("/in/a.csv"), event("/in/b\udcff.csv", EventKind.MOVED, size=3)]
        await sink.open()
        try:
            await sink.send(sent[0])
            await sink.send(sent[1])
        finally:
            await sink.close()

        stored = entries(rdb, stream)
        assert len(stored) == 2
        for (_, fields), original in zip(stored, sent, strict=True):
            assert fields[b"id"].decode() == original.id
            assert fields[b"type"].decode() == f"fs.{original.kind.value}"
            assert fields[b"content-type"] == b"application/cloudevents+json"
            assert json.loads(fields[b"body"])["specversion"] == "1.0"
            assert from_json(fields[b"body"]) == original  # lossless, non-UTF-8 path included

    run(scenario())


def test_a_batch_goes_in_order_in_one_call(
    tmp_path: Path, shared_redis: str, rdb: redis.Redis, stream: str
) -> None:
    async def scenario() -> None:
        sink = make_component(RedisSink, tmp_path, url=shared_redis, stream=stream)
        batch = [event(f"/in/{i:04d}.csv") for i in range(500)]
        await sink.open()
        try:
            await sink.send_batch(batch)
        finally:
            await sink.close()
        assert [f[b"id"].decode() for _, f in entries(rdb, stream)] == [e.id for e in batch]

    run(scenario())


def test_stream_name_from_pipeline_and_event_placeholders(
    tmp_path: Path, shared_redis: str, rdb: redis.Redis, stream: str
) -> None:
    async def scenario() -> None:
        sink = make_component(
            RedisSink, tmp_path, url=shared_redis, stream=stream + ":{pipeline}:{kind}"
        )
        await sink.open()
        try:
            await sink.send_batch([event("/in/a"), event("/in/b", EventKind.DELETED)])
        finally:
            await sink.close()
        # make_component builds components of a pipeline named "t".
        assert rdb.xlen(f"{stream}:t:closed_write") == 1
        assert rdb.xlen(f"{stream}:t:deleted") == 1

    run(scenario())


def test_a_file_name_that_is_not_utf8_names_its_stream_byte_for_byte(
    tmp_path: Path, shared_redis: str, rdb: redis.Redis, stream: str
) -> None:
    async def scenario() -> None:
        sink = make_component(RedisSink, tmp_path, url=shared_redis, stream=stream + ":{name}")
        await sink.open()
        try:
            await sink.send_batch([event("/in/caf\udce9"), event("/in/ok")])
        finally:
            await sink.close()

    run(scenario())
    assert rdb.xlen(stream.encode() + b":caf\xe9") == 1
    assert rdb.xlen(stream + ":ok") == 1


def test_maxlen_trims_the_stream_to_about_that_many(
    tmp_path: Path, shared_redis: str, rdb: redis.Redis, stream: str
) -> None:
    async def scenario() -> None:
        sink = make_component(RedisSink, tmp_path, url=shared_redis, stream=stream, maxlen=100)
        await sink.open()
        try:
            for start in range(0, 2000, 250):
                await sink.send_batch([event(f"/in/{i}") for i in range(start, start + 250)])
        finally:
            await sink.close()
        length = rdb.xlen(stream)
        assert 100 <= length < 400  # approximate: Redis drops whole nodes only
        newest = entries(rdb, stream)[-1][1]
        assert from_json(newest[b"body"]).path == "/in/1999"

    run(scenario())


def test_redis_down_at_open_is_a_warning_then_a_clear_retryable_error(
    tmp_path: Path,
) -> None:
    async def scenario() -> None:
        url = f"redis://:hunter2-secret@127.0.0.1:{free_port()}/0"
        sink = make_component(RedisSink, tmp_path, url=url, stream="s", timeout="1s")
        with capture_logs() as logs:
            await sink.open()  # must not fail: the engine retries deliveries
        try:
            assert any("not reachable yet" in log["event"] for log in logs), logs
            assert "hunter2-secret" not in repr(logs)
            with pytest.raises(RedisUnavailable) as raised:
                await sink.send(event("/in/a"))
        finally:
            await sink.close()
        message = str(raised.value)
        assert "cannot reach Redis at redis://:***@127.0.0.1" in message
        assert "redis-server runs there" in message
        assert "hunter2-secret" not in message
        assert isinstance(raised.value, ConnectionError)  # the engine logs it without a traceback

    run(scenario())


def test_delivers_again_once_redis_is_back(tmp_path: Path, own_redis: RedisServer) -> None:
    async def scenario() -> None:
        sink = make_component(RedisSink, tmp_path, url=own_redis.url, stream="s", timeout="1s")
        await sink.open()
        try:
            await sink.send(event("/in/before"))
            own_redis.shutdown()
            with pytest.raises(RedisUnavailable):
                await sink.send(event("/in/during"))
            own_redis.start()
            await sink.send(event("/in/after"))  # a fresh connection, no restart of the sink
        finally:
            await sink.close()
        with own_redis.client() as client:
            assert [from_json(f[b"body"]).path for _, f in entries(client, "s")] == ["/in/after"]

    run(scenario())


def test_bad_options_are_config_errors(tmp_path: Path) -> None:
    (tmp_path / "c.yaml").write_text(
        """\
pipelines:
  p:
    sources: [{type: poll, paths: ["."]}]
    sinks:
      - type: redis
        url: "http://user:pw-in-url@host/0"
        stream: "fs:{kynd}"
        maxlen: 0
      - type: redis
        stream: "fs:{meta.tenant}"
"""
    )
    # Only this plugin: the test is about its options, whatever else is installed.
    registry = build_registry(extra_plugins=[("redis", plugin)], autoload=False)
    with pytest.raises(ConfigError) as raised:
        load_config(tmp_path / "c.yaml", registry)
    text = "\n".join(raised.value.problems)
    assert "is not a Redis URL" in text
    assert "pw-in-url" not in text
    assert "unknown placeholder {kynd}" in text
    assert "maxlen" in text
    assert "give a default like {meta.tenant:-unknown}" in text
