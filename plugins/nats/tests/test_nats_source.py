"""The nats source against a real JetStream server: acks follow settlement, nothing lost."""

from __future__ import annotations

import asyncio
from collections.abc import MutableMapping, Sequence
from pathlib import Path
from typing import Any

import pytest
from pipeline import Event, EventKind, to_json
from structlog.testing import capture_logs
from tests.conftest import Running, make_component

from fspipeline_nats import NatsSource
from nats_servers import PrivateServer, add_stream, connected, consumer_info

pytestmark = pytest.mark.integration


def run(coro: Any) -> Any:
    async def bounded() -> Any:
        return await asyncio.wait_for(coro, 60)

    return asyncio.run(bounded())


def events(count: int, start: int = 0) -> list[Event]:
    return [
        Event(EventKind.CLOSED_WRITE, f"/in/{n:04d}.csv", "a/inotify")
        for n in range(start, start + count)
    ]


async def publish(url: str, subject: str, items: Sequence[Event | bytes]) -> None:
    async with connected(url) as client:
        js = client.jetstream()
        for item in items:
            body = item if isinstance(item, bytes) else to_json(item).encode()
            await js.publish(subject, body)


def source(tmp_path: Path, url: str, stream: str, **options: Any) -> NatsSource:
    options.setdefault("durable", "workers")
    source: NatsSource = make_component(
        NatsSource, tmp_path, url=url, stream=stream, fetch_wait="300ms", **options
    )
    return source


def ids(items: Sequence[Event]) -> list[str]:
    return [e.id for e in items]


def test_messages_are_acked_only_once_their_events_are_settled(
    tmp_path: Path, nats_url: str, stream_name: str
) -> None:
    sent = events(5)

    async def scenario() -> None:
        await add_stream(nats_url, stream_name, [f"{stream_name}.>"])
        await publish(nats_url, f"{stream_name}.a", sent)
        nats = source(tmp_path, nats_url, stream_name)
        async with Running(nats) as running:
            await running.wait_for(lambda got: len(got) == 5)
            assert ids(running.events) == ids(sent)  # the original ids, in stream order
            assert running.events[0].meta["nats"] == {
                "stream": stream_name,
                "sequence": 1,
                "delivered": 1,
            }
            info = await consumer_info(nats_url, stream_name, "workers")
            assert info.num_ack_pending == 5  # emitted is not delivered
            for event in running.events[:3]:
                nats.settled(event, True)
            await wait_until(lambda: ack_pending(nats_url, stream_name), 2)
            for event in running.events[3:]:
                nats.settled(event, True)
            await wait_until(lambda: ack_pending(nats_url, stream_name), 0)
            floor = (await consumer_info(nats_url, stream_name, "workers")).ack_floor
            assert floor is not None and floor.stream_seq == 5

    run(scenario())


async def ack_pending(url: str, stream: str, durable: str = "workers") -> int | None:
    return (await consumer_info(url, stream, durable)).num_ack_pending


async def wait_until(read: Any, expected: Any, timeout: float = 10) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while (value := await read()) != expected:
        assert asyncio.get_running_loop().time() < deadline, f"{value} != {expected}"
        await asyncio.sleep(0.05)


def test_an_undelivered_event_is_delivered_again_or_terminated(
    tmp_path: Path, nats_url: str, stream_name: str
) -> None:
    async def scenario() -> None:
        await add_stream(nats_url, stream_name, [f"{stream_name}.>"])
        retried, dropped = events(2)
        await publish(nats_url, f"{stream_name}.nak", [retried])
        await publish(nats_url, f"{stream_name}.term", [dropped])
        naks = source(
            tmp_path, nats_url, stream_name, durable="n", filter_subject=f"{stream_name}.nak",
            nak_delay="100ms",
        )  # fmt: skip
        terms = source(
            tmp_path, nats_url, stream_name, durable="t", filter_subject=f"{stream_name}.term",
            on_failure="term", ack_wait="1s",
        )  # fmt: skip
        with capture_logs() as logs:
            async with Running(naks) as again, Running(terms) as never:
                await again.wait_for(lambda got: len(got) == 1)
                await never.wait_for(lambda got: len(got) == 1)
                naks.settled(again.events[0], False)
                terms.settled(never.events[0], False)
                await again.wait_for(lambda got: len(got) == 2)
                assert again.events[1].id == retried.id
                assert again.events[1].meta["nats"]["delivered"] == 2
                await asyncio.sleep(2.0)  # twice ack_wait: a terminated message stays away
                assert ids(never.events) == [dropped.id]
                naks.settled(again.events[1], True)
        assert await ack_pending(nats_url, stream_name, "t") == 0
        warnings = [e["event"] for e in logs if e["log_level"] in ("warning", "error")]
        assert any("will deliver its message again" in w for w in warnings)
        assert any("terminating its message" in w for w in warnings)

    run(scenario())


def test_a_message_that_is_no_event_is_logged_and_terminated(
    tmp_path: Path, nats_url: str, stream_name: str
) -> None:
    good = events(1)[0]

    async def scenario() -> list[MutableMapping[str, Any]]:
        await add_stream(nats_url, stream_name, [f"{stream_name}.>"])
        await publish(nats_url, f"{stream_name}.x", [b"nats://u:pw123@h not an event" * 20, good])
        nats = source(tmp_path, nats_url, stream_name, ack_wait="1s")
        with capture_logs() as logs:
            async with Running(nats) as running:
                await running.wait_for(lambda got: len(got) == 1)
                nats.settled(running.events[0], True)
                await asyncio.sleep(1.5)  # past ack_wait: the bad one does not come back
                assert ids(running.events) == [good.id]
        assert await ack_pending(nats_url, stream_name) == 0
        return logs

    logs = run(scenario())
    (entry,) = [e for e in logs if e["event"].startswith("message is not an fspipeline event")]
    assert entry["sequence"] == 1 and len(entry["body"]) <= 200
    assert "pw123" not in repr(logs)


def test_instances_with_one_durable_share_the_messages(
    tmp_path: Path, nats_url: str, stream_name: str
) -> None:
    sent = events(300)

    async def scenario() -> tuple[list[Event], list[Event]]:
        await add_stream(nats_url, stream_name, [f"{stream_name}.>"])
        one = source(tmp_path, nats_url, stream_name, fetch_batch=10)
        two = source(tmp_path, nats_url, stream_name, fetch_batch=10)
        async with Running(one) as first, Running(two) as second:
            await asyncio.sleep(0.5)  # both are pulling
            await publish(nats_url, f"{stream_name}.x", sent)

            settled = {id(one): 0, id(two): 0}

            def settle_all() -> int:
                for instance, running in ((one, first), (two, second)):
                    for event in running.events[settled[id(instance)] :]:
                        instance.settled(event, True)
                    settled[id(instance)] = len(running.events)
                return len(first.events) + len(second.events)

            deadline = asyncio.get_running_loop().time() + 20
            while settle_all() < len(sent):
                assert asyncio.get_running_loop().time() < deadline
                await asyncio.sleep(0.02)
            await wait_until(lambda: ack_pending(nats_url, stream_name), 0)
            return first.events, second.events

    first, second = run(scenario())
    assert first and second  # both took part
    assert sorted(ids(first) + ids(second)) == sorted(ids(sent))  # each message once


def test_slow_events_are_kept_and_a_closing_instance_hands_back_the_rest(
    tmp_path: Path, nats_url: str, stream_name: str
) -> None:
    sent = events(20)

    async def scenario() -> None:
        await add_stream(nats_url, stream_name, [f"{stream_name}.>"])
        await publish(nats_url, f"{stream_name}.x", sent)
        slow = source(tmp_path, nats_url, stream_name, ack_wait="1s")
        other = source(tmp_path, nats_url, stream_name, ack_wait="1s")
        holding = await Running(slow).__aenter__()
        closed = False
        try:
            await holding.wait_for(lambda got: len(got) == 20)
            async with Running(other) as waiting:
                await asyncio.sleep(2.5)  # 2.5 x ack_wait, kept alive by +WPI
                assert waiting.events == []
                for event in holding.events[:5]:
                    slow.settled(event, True)
                await asyncio.sleep(0.2)
            closed = True
            await holding.__aexit__(None, None, None)  # 15 never settled: handed back
            async with Running(other) as taking_over:
                await taking_over.wait_for(lambda got: len(got) == 15)
                assert ids(taking_over.events) == ids(sent[5:])
                for event in taking_over.events:
                    other.settled(event, True)
        finally:
            if not closed:
                await holding.__aexit__(None, None, None)

    run(scenario())


def test_an_instance_holds_at_most_max_in_flight_and_the_others_get_the_rest(
    tmp_path: Path, nats_url: str, stream_name: str
) -> None:
    sent = events(30)

    async def scenario() -> None:
        await add_stream(nats_url, stream_name, [f"{stream_name}.>"])
        await publish(nats_url, f"{stream_name}.x", sent)
        slow = source(tmp_path, nats_url, stream_name, max_in_flight=4)
        other = source(tmp_path, nats_url, stream_name)
        async with Running(slow) as holding:
            await holding.wait_for(lambda got: len(got) == 4)
            await asyncio.sleep(0.5)
            assert len(holding.events) == 4  # nothing settled: it asks for no more
            async with Running(other) as fast:
                await fast.wait_for(lambda got: len(got) == 26)
                for event in fast.events:
                    other.settled(event, True)
                for event in holding.events[:2]:
                    slow.settled(event, True)  # room for two more, if any were left
                await asyncio.sleep(0.5)
                assert len(holding.events) == 4
            for event in holding.events[2:]:
                slow.settled(event, True)
        assert sorted(ids(holding.events) + ids(fast.events)) == sorted(ids(sent))

    run(scenario())


def test_a_missing_stream_is_waited_for(tmp_path: Path, nats_url: str, stream_name: str) -> None:
    async def scenario() -> list[MutableMapping[str, Any]]:
        nats = source(tmp_path, nats_url, stream_name, reconnect_wait="50ms")
        with capture_logs() as logs:
            async with Running(nats) as running:
                while not any("cannot consume" in e["event"] for e in logs):
                    await asyncio.sleep(0.05)
                await add_stream(nats_url, stream_name, [f"{stream_name}.>"])
                await publish(nats_url, f"{stream_name}.x", events(1))
                await running.wait_for(lambda got: len(got) == 1, timeout=15)
                nats.settled(running.events[0], True)
        return logs

    logs = run(scenario())
    entry = next(e for e in logs if "cannot consume" in e["event"])
    assert f"stream {stream_name!r} does not exist" in entry["error"]


def test_consuming_goes_on_after_the_server_restarts(
    tmp_path: Path, private_nats: PrivateServer
) -> None:
    url = private_nats.url

    async def scenario() -> None:
        await add_stream(url, "S", ["s.>"])
        await publish(url, "s.x", events(3))
        nats = source(tmp_path, url, "S", reconnect_wait="50ms", reconnect_max_wait="300ms")
        async with Running(nats) as running:
            await running.wait_for(lambda got: len(got) == 3)
            await asyncio.to_thread(private_nats.kill)
            for event in running.events:  # settled while the server is down
                nats.settled(event, True)
            await asyncio.sleep(0.5)
            await asyncio.to_thread(private_nats.start)
            await publish(url, "s.x", events(2, start=3))
            await running.wait_for(lambda got: len(got) == 5, timeout=20)
            for event in running.events[3:]:
                nats.settled(event, True)
            await wait_until(lambda: ack_pending(url, "S"), 0, timeout=15)
            assert len(running.events) == 5  # the acks sent after the restart counted

    run(scenario())
