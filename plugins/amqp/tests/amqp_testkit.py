"""What the amqp plugin tests share: the broker's address, starting and stopping it, an
independent client (a connection of the test's own) and component builders."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import shutil
import socket
import subprocess
import time
from pathlib import Path
from typing import Any

import aio_pika
import structlog
from aio_pika.abc import AbstractIncomingMessage
from pipeline import ComponentContext, Event, EventKind, to_json

HOST, PORT = "127.0.0.1", 5672
URL = f"amqp://guest:guest@{HOST}:{PORT}/"
BAD_PASSWORD = "s3cr3t-Wrong-pw"
BAD_URL = f"amqp://guest:{BAD_PASSWORD}@{HOST}:{PORT}/"
DEAD_URL = f"amqp://guest:{BAD_PASSWORD}@{HOST}:1/"
"""Nothing listens on port 1."""


def _listening() -> bool:
    with contextlib.suppress(OSError), socket.create_connection((HOST, PORT), timeout=1):
        return True
    return False


def _ctl(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["rabbitmqctl", *args], capture_output=True, text=True, timeout=timeout, check=False
    )


def start_broker() -> None:
    """Start RabbitMQ (the node, or only its app after a `stop_app`) and wait for it."""
    if _listening():
        return
    if _ctl("ping", timeout=30).returncode == 0:  # the node runs, its app was stopped
        _ctl("start_app")
    else:
        assert shutil.which("rabbitmq-server"), "RabbitMQ is not installed"
        subprocess.run(["rabbitmq-server", "-detached"], check=False, timeout=60)
    _ctl("await_startup", timeout=120)
    deadline = time.monotonic() + 60
    while not _listening():
        assert time.monotonic() < deadline, "RabbitMQ did not start listening on 5672"
        time.sleep(0.2)


def close_all_connections() -> None:
    """Have the broker drop every client connection, as a network failure would."""
    result = _ctl("close_all_connections", "test: connection dropped")
    assert result.returncode == 0, result.stderr


def stop_app() -> None:
    result = _ctl("stop_app")
    assert result.returncode == 0, result.stderr


@dataclasses.dataclass
class Received:
    """A message as an independent consumer got it."""

    body: bytes
    routing_key: str
    exchange: str
    properties: dict[str, Any]


def _received(message: AbstractIncomingMessage) -> Received:
    return Received(
        body=message.body,
        routing_key=message.routing_key or "",
        exchange=message.exchange or "",
        properties={
            "message_id": message.message_id,
            "type": message.type,
            "content_type": message.content_type,
            "delivery_mode": int(message.delivery_mode) if message.delivery_mode else None,
            "timestamp": message.timestamp,
            "app_id": message.app_id,
        },
    )


class Broker:
    """A test's own connection to RabbitMQ: declares, publishes, counts and drains, and
    deletes what it declared at the end. Synchronous, for tests outside an event loop."""

    def __init__(self) -> None:
        self.queues: list[str] = []
        self.exchanges: list[str] = []

    def run(self, work: Any) -> Any:
        return asyncio.run(self.session(work))

    async def session(self, work: Any) -> Any:
        async with await aio_pika.connect(URL) as connection:
            channel = await connection.channel()
            return await work(channel)

    def exchange(self, name: str, kind: str = "topic") -> str:
        async def work(channel: aio_pika.abc.AbstractChannel) -> None:
            await channel.declare_exchange(name, aio_pika.ExchangeType(kind), durable=True)

        self.run(work)
        self.exchanges.append(name)
        return name

    def queue(
        self,
        name: str,
        *,
        bind: tuple[str, str] | None = None,
        dead_letter_exchange: str | None = None,
    ) -> str:
        arguments: dict[str, Any] = (
            {"x-dead-letter-exchange": dead_letter_exchange} if dead_letter_exchange else {}
        )

        async def work(channel: aio_pika.abc.AbstractChannel) -> None:
            queue = await channel.declare_queue(name, durable=True, arguments=arguments)
            if bind is not None:
                await queue.bind(bind[0], routing_key=bind[1])

        self.run(work)
        self.queues.append(name)
        return name

    def publish_events(self, queue: str, events: list[Event]) -> None:
        bodies = [to_json(event).encode() for event in events]
        self.publish_raw(queue, bodies, [e.id for e in events])

    def publish_raw(self, queue: str, bodies: list[bytes], ids: list[str] | None = None) -> None:
        async def work(channel: aio_pika.abc.AbstractChannel) -> None:
            for n, body in enumerate(bodies):
                message = aio_pika.Message(
                    body,
                    message_id=ids[n] if ids else None,
                    delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                )
                await channel.default_exchange.publish(message, routing_key=queue)

        self.run(work)

    def count(self, queue: str) -> int:
        """Messages ready in the queue (not counting those delivered and unacked)."""

        async def work(channel: aio_pika.abc.AbstractChannel) -> int:
            declared = await channel.declare_queue(queue, passive=True)
            return int(declared.declaration_result.message_count or 0)

        return int(self.run(work))

    def drain(self, queue: str, expected: int, timeout: float = 30.0) -> list[Received]:
        """Consume (and ack) until `expected` messages came, then as long as more keep coming
        (so that duplicates show), or until `timeout`."""

        async def work(channel: aio_pika.abc.AbstractChannel) -> list[Received]:
            await channel.set_qos(prefetch_count=1000)
            declared = await channel.declare_queue(queue, passive=True)
            got: list[Received] = []

            async def take(message: AbstractIncomingMessage) -> None:
                got.append(_received(message))
                await message.ack()

            await declared.consume(take)
            deadline = time.monotonic() + timeout
            while len(got) < expected and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
            seen = -1
            while seen != len(got):
                seen = len(got)
                await asyncio.sleep(0.3)
            return got

        return list(self.run(work))

    def peek(self, queue: str) -> list[Received]:
        """Every ready message, left in the queue (taken without ack, then requeued)."""

        async def work(channel: aio_pika.abc.AbstractChannel) -> list[Received]:
            declared = await channel.declare_queue(queue, passive=True)
            got: list[Received] = []
            while (message := await declared.get(no_ack=False, fail=False)) is not None:
                got.append(_received(message))
            return got  # the channel closes unacked: everything goes back

        return list(self.run(work))

    def cleanup(self) -> None:
        async def work(channel: aio_pika.abc.AbstractChannel) -> None:
            for name in self.queues:
                with contextlib.suppress(Exception):
                    await channel.queue_delete(name)
            for name in self.exchanges:
                with contextlib.suppress(Exception):
                    await channel.exchange_delete(name)

        with contextlib.suppress(Exception):
            start_broker()
            self.run(work)


def make(cls: type[Any], tmp_path: Path, pipeline: str = "t", **options: Any) -> Any:
    """Build a component from raw options as the config loader would."""
    validated = cls.Options.model_validate(options, context={"config_dir": tmp_path})
    context = ComponentContext(
        pipeline=pipeline,
        label=f"{pipeline}.{cls.kind.value}s[0]",
        config_dir=tmp_path,
        state_dir=None,
        log=structlog.get_logger("test"),
    )
    return cls(validated, context)


def event(n: int, kind: EventKind = EventKind.CLOSED_WRITE, root: str = "/in") -> Event:
    return Event(kind, f"{root}/f{n:05d}.csv", "landing/inotify", meta={"root": root, "n": n})
