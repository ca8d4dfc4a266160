"""The `mqtt` sink: publishes each event's CloudEvents JSON to a topic made from the event."""

from __future__ import annotations

import os
from collections.abc import Sequence

from pipeline import (
    ComponentContext,
    Duration,
    Event,
    Sink,
    bind_constants,
    compile_template,
    process_constants,
    to_json,
)
from pydantic import Field

from fspipeline_mqtt.connection import BrokerError, connect, disconnect, make_client
from fspipeline_mqtt.options import ConnectionOptions, QoS, TopicTemplate
from fspipeline_mqtt.properties import EventProperties
from fspipeline_mqtt.publisher import Outgoing, Publisher


def topic_text(value: str) -> str:
    """A placeholder's value made safe inside a topic: the wildcards + and #, NUL and % are
    percent-encoded; bytes of a file name that are not UTF-8 are written as \\xNN."""
    value = value.replace("%", "%25").replace("+", "%2B").replace("#", "%23")
    value = value.replace("\0", "%00")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        value = os.fsencode(value).decode("utf-8", "backslashreplace")
    return value


class MqttSinkOptions(ConnectionOptions):
    topic: TopicTemplate = "fs/{pipeline}/{kind}"
    """Topic to publish each event to. Placeholders: {pipeline} {hostname} {pid} and the
    event's {kind} {path} {relpath} {name} {stem} {ext} {dir} {source} {id} {meta.KEY} ...
    (`-` when the event lacks it, or `{meta.KEY:-default}`). In values, the wildcards + and
    # and % are percent-encoded (`%2B`, `%23`, `%25`), so a file name never makes a topic
    invalid."""
    qos: QoS = 1
    """0: at most once (fire and forget). 1: at least once; a send returns once the
    broker acknowledged it (PUBACK). 2: the broker stores it exactly once (PUBCOMP)."""
    retain: bool = False
    """Ask the broker to keep the last message of each topic for later subscribers."""
    persistent_session: bool = False
    """Keep the session on the broker across reconnects (clean session off, a fixed
    `client_id`): publishes not yet acknowledged when the connection dropped are re-sent
    by the client after it reconnects, and QoS 2 ones are then stored only once."""
    max_inflight: int = Field(default=20, ge=1, le=65535)
    """QoS 1/2 messages sent and not yet acknowledged, at most; a batch is published
    through this window. An MQTT 5 broker states its own limit (receive maximum), which
    then applies if lower; MQTT 3.1.1 has no way to say it, so keep this at or below the
    broker's (Mosquitto: `max_inflight_messages`, default 20; over it Mosquitto drops QoS 2
    messages from 3.1.1 clients although it acknowledges them)."""
    ack_timeout: Duration = Field(default=30.0, gt=0)
    """Longest wait for the broker to acknowledge a publish before it counts as failed."""


class MqttSink(Sink[MqttSinkOptions]):
    """Publishes each event to an MQTT 3.1.1 or 5 broker, QoS 0, 1 or 2, on a templated topic.

    The message body is the event's CloudEvents JSON (structured mode). With MQTT 5 the
    content type is `application/cloudevents+json` and the user properties `id` and
    `type` (`fs.<kind>`) let consumers route without parsing; MQTT 3.1.1 has no
    properties, so consumers read both from the body.

    A delivery counts only once the broker acknowledged it (QoS 1 and 2); a batch
    (`batch_size`) is published through a window of `max_inflight` unacknowledged
    messages, and counts once every message in it is acknowledged. The broker may be
    down when the pipeline starts: the sink connects when it first has something to send
    and after a lost connection; until then deliveries fail and the engine retries them
    (with `spool: true` they wait on disk). Delivery is at least once: de-duplicate on
    the event id.
    """

    type_name = "mqtt"
    Options = MqttSinkOptions

    def __init__(self, options: MqttSinkOptions, context: ComponentContext) -> None:
        super().__init__(options, context)
        constants = process_constants(context.pipeline)
        self.topic = compile_template(bind_constants(options.topic, constants))
        self.v5 = options.protocol == "5"
        self.publisher = Publisher(
            options,
            options.default_client_id(context.label, per_process=not options.persistent_session),
            persistent=options.persistent_session,
            max_inflight=options.max_inflight,
            log=self.log,
        )

    async def open(self) -> None:
        try:
            await self.publisher.connect()
        except BrokerError as exc:
            self.log.warning(
                "MQTT broker not available; deliveries wait and retry until it is",
                error=str(exc),
            )

    async def probe(self) -> None:
        """Connect once with a throw-away session: checks address, TLS and credentials."""
        options = self.options
        client_id = f"{options.default_client_id(self.context.label, per_process=True)}-probe"
        client = make_client(options, client_id, persistent=False)
        await connect(client, options)
        await disconnect(client)

    async def send(self, event: Event) -> None:
        await self.send_batch([event])

    async def send_batch(self, events: Sequence[Event]) -> None:
        await self.publisher.publish(
            [self.message(event) for event in events],
            qos=self.options.qos,
            retain=self.options.retain,
            timeout=self.options.ack_timeout,
        )

    def message(self, event: Event) -> Outgoing:
        """The MQTT message of `event`: topic, CloudEvents JSON body, MQTT 5 properties."""
        topic = self.topic.render(event, escape=topic_text, missing="-")
        properties = EventProperties(event.id, f"fs.{event.kind.value}") if self.v5 else None
        return Outgoing(topic, to_json(event).encode("utf-8"), properties)

    async def close(self) -> None:
        await self.publisher.close()
