"""The `mqtt` source: subscribes to topic filters and emits the events the messages carry."""

from __future__ import annotations

import asyncio
import contextlib
from typing import ClassVar

import aiomqtt
from paho.mqtt.reasoncodes import ReasonCode
from pipeline import (
    ComponentContext,
    Emit,
    Event,
    EventDecodeError,
    Source,
    from_json,
    redact,
    stop_tasks,
)
from pydantic import Field, model_validator

from fspipeline_mqtt.acks import AckLedger, Received
from fspipeline_mqtt.connection import BrokerError, acknowledge, connect, disconnect, make_client
from fspipeline_mqtt.options import ConnectionOptions, QoS, TopicFilter

RECONNECT_MIN = 0.5
RECONNECT_MAX = 30.0
PREVIEW = 200
"""Characters of an undecodable message body shown in the log."""


class MqttSourceOptions(ConnectionOptions):
    topics: list[TopicFilter] = Field(default_factory=lambda: ["fs/#"], min_length=1)
    """Topic filters to subscribe to (`fs/#`, `fs/+/closed_write`). Several workers
    share the messages of a filter with a shared subscription: `$share/workers/fs/#`."""
    qos: QoS = 1
    """Subscription QoS. 1: the broker keeps each message until fspipeline acknowledges
    it, which it does only once every sink delivered the event. 0: no acknowledgement, a
    message in flight during a crash is lost. 2: the broker hands each message over once,
    but its hand-over is complete before the pipeline runs, so a crash may lose it."""
    persistent_session: bool = True
    """Keep the session on the broker while disconnected (fixed `client_id`, clean start
    off): messages published meanwhile wait for this source, and unacknowledged ones are
    sent again. Off: only messages published while connected arrive."""
    dead_letter_topic: str | None = None
    """Topic to publish a message to (as it came, QoS 1) before acknowledging it when its
    event failed in the pipeline or it is not an fspipeline event. MQTT has no negative
    acknowledgement: without this, such messages are only in the pipeline's own dead
    letters (and undecodable ones in the log)."""

    @model_validator(mode="after")
    def _dead_letters_outside_filters(self) -> MqttSourceOptions:
        topic = self.dead_letter_topic
        if topic is None:
            return self
        if not topic or "+" in topic or "#" in topic:
            raise ValueError(f"dead_letter_topic {topic!r} must be a topic without + or #")
        for pattern in self.topics:
            if aiomqtt.Topic(topic).matches(_without_share(pattern)):
                raise ValueError(
                    f"dead_letter_topic {topic!r} matches the topic filter {pattern!r}: the "
                    "source would read its own dead letters; pick a topic outside the filters"
                )
        return self


def _without_share(pattern: str) -> str:
    """`$share/group/fs/#` -> `fs/#`: the filter a shared subscription applies."""
    if pattern.startswith("$share/"):
        return pattern.split("/", 2)[2] if pattern.count("/") >= 2 else pattern
    return pattern


class MqttSource(Source[MqttSourceOptions]):
    """Subscribes to MQTT topic filters and emits the fspipeline events the messages carry.

    Each message body is an event's CloudEvents JSON (what the mqtt sink publishes); the
    event keeps its id, the idempotency key across hops. With QoS 1 (the default) a
    message is acknowledged (PUBACK) only once every sink delivered its event, or once
    its event was dead-lettered; until then the broker keeps it, and sends it again after
    a reconnect. With the persistent session (the default) messages published while the
    source was down wait on the broker for it. Delivery is at least once.

    A message whose body is not an fspipeline event is logged (shortened) and
    acknowledged, after being published to `dead_letter_topic` if set. A broker that is
    down, unreachable or refusing the login is retried with growing pauses (up to 30s),
    one log line per attempt.

    The broker sends only a few unacknowledged messages at once (Mosquitto's
    `max_inflight_messages`, default 20), so the sinks' pace sets the source's; keep a
    sink's `batch_wait` short, as its batches cannot grow past that number.
    """

    type_name = "mqtt"
    Options = MqttSourceOptions
    tracks_delivery: ClassVar[bool] = True

    def __init__(self, options: MqttSourceOptions, context: ComponentContext) -> None:
        super().__init__(options, context)
        self.client_id = options.default_client_id(
            context.label, per_process=not options.persistent_session
        )
        self.ledger = AckLedger()
        self._client: aiomqtt.Client | None = None
        self._connection = 0
        self._wake = asyncio.Event()
        self._acker: asyncio.Task[None] | None = None

    async def open(self) -> None:
        self._acker = asyncio.create_task(self._acknowledge(), name=f"{self.context.label} acks")

    async def probe(self) -> None:
        """Connect with a throw-away session and subscribe: checks address, login, filters."""
        client_id = f"{self.options.default_client_id(self.context.label, per_process=True)}-probe"
        client = make_client(self.options, client_id, persistent=False)
        await connect(client, self.options)
        try:
            await self._subscribe(client)
        finally:
            await disconnect(client)

    # -- receiving -------------------------------------------------------------

    async def run(self, emit: Emit) -> None:
        delay = RECONNECT_MIN
        while True:
            client = make_client(
                self.options,
                self.client_id,
                persistent=self.options.persistent_session,
                manual_ack=True,
            )
            try:
                await connect(client, self.options)
            except BrokerError as exc:
                self._retrying(exc, delay)
            else:
                try:
                    await self._consume(client, emit)
                    delay = RECONNECT_MIN  # it worked for a while: start the pauses afresh
                except (BrokerError, aiomqtt.MqttError) as exc:
                    self._retrying(exc, delay)
                # On cancellation the client stays connected: acknowledgements of events
                # still being delivered can go out until `close`.
                if self._client is client:
                    self._client = None
                await disconnect(client)
            await self.context.clock.sleep(delay)
            delay = min(RECONNECT_MAX, delay * 2)

    async def _consume(self, client: aiomqtt.Client, emit: Emit) -> None:
        """Subscribe on a fresh connection, then emit what arrives until it drops."""
        self._connection += 1
        self._client = client
        await self._subscribe(client)
        self.log.info("subscribed", url=redact(self.options.url), topics=self.options.topics)
        try:
            async for message in client.messages:
                await self._take(message, emit)
        except aiomqtt.MqttError as exc:
            self.log.warning(
                "lost the connection to the MQTT broker; reconnecting",
                error=redact(str(exc)) or type(exc).__name__,
            )

    def _retrying(self, exc: BaseException, delay: float) -> None:
        self.log.warning(
            "MQTT broker not available; retrying",
            error=redact(str(exc)) or type(exc).__name__,
            retry_in=delay,
        )

    async def _subscribe(self, client: aiomqtt.Client) -> None:
        qos = self.options.qos
        wanted: list[tuple[str, int]] = [(topic, qos) for topic in self.options.topics]
        granted = await client.subscribe(wanted)
        for topic, code in zip(self.options.topics, granted, strict=False):
            value = code.value if isinstance(code, ReasonCode) else code
            if not isinstance(value, int):
                continue
            if value >= 0x80:
                raise BrokerError(
                    f"the MQTT broker at {redact(self.options.url)} refused the subscription "
                    f"to {topic!r} ({code}): check the filter and that the user may read it"
                )

    async def _take(self, message: aiomqtt.Message, emit: Emit) -> None:
        payload = message.payload if isinstance(message.payload, bytes) else b""
        received = Received(self._connection, message.mid, message.qos, str(message.topic), payload)
        try:
            event = from_json(payload)
        except EventDecodeError as exc:
            text = payload[:PREVIEW].decode("utf-8", "backslashreplace")
            self.log.error(
                "message is not an fspipeline event; acknowledging it without emitting",
                topic=received.topic,
                error=str(exc),
                body=redact(text) + ("..." if len(payload) > PREVIEW else ""),
                dead_letter_topic=self.options.dead_letter_topic,
            )
            self.ledger.add(received, None)
            self._wake.set()
            return
        if self.ledger.add(received, event.id):
            await emit(event)

    # -- acknowledging ---------------------------------------------------------

    def settled(self, event: Event, delivered: bool) -> None:
        """The engine's verdict on an emitted event: acknowledge its message(s) soon."""
        if self.ledger.settle(event.id, delivered):
            self._wake.set()

    async def _acknowledge(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            await self._flush_acks()

    async def _flush_acks(self) -> None:
        for received in self.ledger.ready():
            client = self._client
            if client is None or received.connection != self._connection:
                continue  # that connection is gone: the broker sends the message again
            if received.delivered is False and not await self._dead_letter(client, received):
                continue
            if received.qos:
                acknowledge(client, received.mid, received.qos)

    async def _dead_letter(self, client: aiomqtt.Client, received: Received) -> bool:
        topic = self.options.dead_letter_topic
        if topic is None:
            return True
        try:
            await client.publish(topic, received.payload, qos=1)
        except aiomqtt.MqttError as exc:
            self.log.error(
                "could not publish to the dead-letter topic; the message stays unacknowledged",
                topic=topic,
                error=redact(str(exc)),
            )
            return False
        return True

    async def close(self) -> None:
        await stop_tasks(self._acker)
        self._acker = None
        if self._client is not None:
            with contextlib.suppress(Exception):
                await self._flush_acks()  # settled since the last round
            await disconnect(self._client)
            self._client = None
