"""A sink's MQTT connection: connects on demand, publishes, and waits for the broker's acks."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import aiomqtt
import paho.mqtt.client as paho
from pipeline import redact, stop_tasks

from fspipeline_mqtt.connection import BrokerError, connect, disconnect, make_client, paho_client

if TYPE_CHECKING:
    from paho.mqtt.properties import Properties
    from paho.mqtt.reasoncodes import ReasonCode
    from structlog.typing import FilteringBoundLogger

    from fspipeline_mqtt.options import ConnectionOptions


@dataclass(frozen=True, slots=True)
class Outgoing:
    """One message to publish."""

    topic: str
    payload: bytes
    properties: Properties | None


class Window:
    """QoS 1/2 messages sent and not yet acknowledged; `take` waits while it is full."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.used = 0
        self._room = asyncio.Event()

    async def take(self) -> None:
        while self.used >= self.size:
            self._room.clear()
            await self._room.wait()
        self.used += 1

    def give(self, _: object = None) -> None:
        self.used -= 1
        self._room.set()


class Publisher:
    """Publishes over one MQTT connection, made when first needed and remade after a loss.

    `publish` returns once the broker acknowledged every message (PUBACK for QoS 1,
    PUBCOMP for QoS 2; QoS 0 once written). If the connection drops meanwhile: with a
    persistent session it reconnects the same paho client, which re-sends what was not
    acknowledged, and keeps waiting; without one it raises at once so the engine retries.

    Messages go straight to paho's `publish`, and acks come back through its
    `on_publish` callback: aiomqtt's `publish` wants a task per message and scans every
    pending call on each one, which made batches slower than single sends.
    """

    def __init__(
        self,
        options: ConnectionOptions,
        client_id: str,
        *,
        persistent: bool,
        max_inflight: int,
        log: FilteringBoundLogger,
    ) -> None:
        self.options = options
        self.client_id = client_id
        self.persistent = persistent
        self.max_inflight = max_inflight
        self.log = log
        self._client: aiomqtt.Client | None = None
        self._acks: dict[int, asyncio.Future[ReasonCode]] = {}
        self._window = Window(max_inflight)
        self._lost = asyncio.Event()
        self._lost.set()  # not connected yet
        self._watcher: asyncio.Task[None] | None = None
        self._connecting = asyncio.Lock()
        self._closed = False

    @property
    def connected(self) -> bool:
        return not self._lost.is_set()

    # -- the connection ----------------------------------------------------------

    async def connect(self) -> aiomqtt.Client:
        """The connected client; connects first if needed. Raises BrokerError."""
        if self._client is not None and self.connected:
            return self._client
        async with self._connecting:
            if self._client is not None and self.connected:
                return self._client
            if self._closed:
                raise BrokerError("the mqtt sink is closed")
            # Only a persistent session keeps the paho client, and with it the publishes
            # paho re-sends after a reconnect; a clean session starts afresh.
            client = self._client if self.persistent and self._client else self._new_client()
            await connect(client, self.options)
            self._client = client
            self._lost = asyncio.Event()
            self._watcher = asyncio.create_task(self._watch(client, self._lost))
            self.log.info("connected to the MQTT broker", url=redact(self.options.url))
            return client

    def _new_client(self) -> aiomqtt.Client:
        client = make_client(self.options, self.client_id, persistent=self.persistent)
        inner = paho_client(client)
        # The window below limits what is in flight; paho's own limit would only add a
        # scan of every queued message per ack.
        inner.max_inflight_messages_set(0)
        aiomqtt_on_publish = inner.on_publish
        aiomqtt_on_connect = inner.on_connect

        def on_publish(*args: Any) -> None:
            if aiomqtt_on_publish is not None:
                aiomqtt_on_publish(*args)
            _client, _userdata, mid, reason_code, _properties = args
            waiter = self._acks.pop(mid, None)
            if waiter is not None and not waiter.done():
                waiter.set_result(reason_code)

        def on_connect(*args: Any) -> None:
            if aiomqtt_on_connect is not None:
                aiomqtt_on_connect(*args)
            # An MQTT 5 broker says how many unacknowledged messages it takes at once
            # (its receive maximum); paho does not keep to it.
            limit = getattr(args[4], "ReceiveMaximum", None)
            self._window.size = min(self.max_inflight, limit or self.max_inflight)

        inner.on_publish = on_publish
        inner.on_connect = on_connect
        self._acks.clear()  # packet ids of an earlier client mean nothing to this one
        return client

    async def _watch(self, client: aiomqtt.Client, lost: asyncio.Event) -> None:
        """Notice a lost connection: the message stream ends when the client disconnects."""
        with contextlib.suppress(aiomqtt.MqttError):
            async for _ in client.messages:
                pass  # a publisher subscribes to nothing
        lost.set()
        await disconnect(client)  # releases the client for the next connect
        if not self._closed:
            self.log.warning(
                "lost the connection to the MQTT broker; reconnecting on the next delivery",
                url=redact(self.options.url),
            )

    # -- publishing --------------------------------------------------------------

    async def publish(
        self, messages: Sequence[Outgoing], *, qos: int, retain: bool, timeout: float
    ) -> None:
        """Publish `messages` in order and wait until the broker acknowledged every one."""
        client = await self.connect()
        inner = paho_client(client)
        loop = asyncio.get_running_loop()
        waiting: dict[int, tuple[asyncio.Future[ReasonCode], str]] = {}
        try:
            for message in messages:
                if qos:
                    await self._window.take()
                info = inner.publish(
                    message.topic, message.payload, qos, retain, message.properties
                )
                if info.rc != paho.MQTT_ERR_SUCCESS:
                    if qos:
                        self._window.give()
                    raise BrokerError(
                        f"publishing to the MQTT broker at {redact(self.options.url)} failed: "
                        f"{paho.error_string(info.rc)}"
                    )
                if info.is_published():
                    if qos:
                        self._window.give()
                    continue
                waiter: asyncio.Future[ReasonCode] = loop.create_future()
                if qos:
                    waiter.add_done_callback(self._window.give)
                self._acks[info.mid] = waiter
                waiting[info.mid] = (waiter, message.topic)
            await self._wait(waiting, timeout)
        finally:
            for mid, (waiter, _) in waiting.items():
                if self._acks.get(mid) is waiter:
                    del self._acks[mid]
                waiter.cancel()  # no-op once acknowledged; else frees its window slot

    async def _wait(
        self, waiting: dict[int, tuple[asyncio.Future[ReasonCode], str]], timeout: float
    ) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        pending = {waiter for waiter, _ in waiting.values()}
        while pending:
            lost = self._lost
            dropped: asyncio.Future[Any] = asyncio.ensure_future(lost.wait())
            either: set[asyncio.Future[Any]] = {*pending, dropped}
            try:
                await asyncio.wait(
                    either,
                    timeout=max(0.0, deadline - loop.time()),
                    return_when=asyncio.FIRST_COMPLETED,
                )
            finally:
                dropped.cancel()
            pending = {waiter for waiter in pending if not waiter.done()}
            if not pending:
                break
            if loop.time() >= deadline:
                raise BrokerError(
                    f"the MQTT broker at {redact(self.options.url)} did not acknowledge "
                    f"{len(pending)} message(s) within {timeout:g}s; raise `ack_timeout` if it "
                    "is slow"
                )
            if lost.is_set():
                if not self.persistent:
                    raise BrokerError(
                        f"lost the connection to the MQTT broker at {redact(self.options.url)} "
                        f"before it acknowledged {len(pending)} message(s); they will be sent "
                        "again"
                    )
                await self.connect()  # paho re-sends the unacknowledged messages itself
        for waiter, topic in waiting.values():
            reason = waiter.result()
            if reason.is_failure:
                raise BrokerError(
                    f"the MQTT broker at {redact(self.options.url)} refused the message to "
                    f"{topic!r}: {reason} (check that the user may publish there)"
                )

    async def close(self) -> None:
        self._closed = True
        await stop_tasks(self._watcher)
        if self._client is not None:
            await disconnect(self._client)
        self._lost.set()
