"""The `amqp` sink: publishes each event to a RabbitMQ exchange and waits for the confirm."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from aio_pika.abc import AbstractChannel, AbstractConnection
from aiormq import exceptions as amqp
from pipeline import ComponentContext, Duration, Event, Sink
from pipeline.templates import Template, compile_template
from pydantic import Field

from fspipeline_amqp import broker
from fspipeline_amqp.errors import BrokerError, broker_error
from fspipeline_amqp.message import short_string, to_message
from fspipeline_amqp.options import ConnectionOptions, NameTemplate, with_pipeline


class AmqpSinkOptions(ConnectionOptions):
    exchange: NameTemplate = "amq.topic"
    """Exchange to publish to; a template (`fs.{pipeline}`, `{meta.tenant}`). `amq.topic`
    exists on every RabbitMQ; `""` is the default exchange, which routes to the queue
    named by the routing key. It must exist, or be listed under `declare.exchanges`."""
    routing_key: NameTemplate = "fs.{kind}"
    """Routing key; a template. Placeholders: {kind} {pipeline} {path} {name} {stem} {ext}
    {dir} {relpath} {id} {source} {meta.KEY} ({meta.KEY:-default}). At most 255 bytes of
    UTF-8: a path longer than that, or not UTF-8, fails the event."""
    mandatory: bool = True
    """A message no queue is bound for comes back from the broker and fails the delivery
    (retried, then dead-lettered). False: the broker drops such messages silently."""
    persistent: bool = True
    """Persistent messages (delivery mode 2): a durable queue keeps them across a broker
    restart. The confirm comes once they are written to disk."""
    confirm_timeout: Duration = Field(default=10.0, gt=0)
    """Longest wait for the broker's publisher confirm; then the delivery fails."""


class AmqpSink(Sink[AmqpSinkOptions]):
    """Publishes each event to a RabbitMQ exchange, with publisher confirms.

    The body is the event's CloudEvents JSON (`application/cloudevents+json`); the
    properties carry `message_id` (the event id, for de-duplication downstream), `type`
    (`fs.<kind>`), `timestamp` and `app_id: fspipeline`, so consumers can route without
    parsing. A delivery succeeds once the broker confirmed the message (persistent messages
    are then on disk); a batch (`batch_size`) is published at once, then all confirms are
    awaited. An unroutable message (`mandatory`), a nack, a missing exchange or a lost
    connection fail the delivery, which the engine retries with backoff; with `spool: true`
    events wait on disk across broker outages and restarts.

    The sink starts even when the broker is down or refuses the login: it logs a warning
    and connects on the next delivery.
    """

    type_name = "amqp"
    Options = AmqpSinkOptions

    def __init__(self, options: AmqpSinkOptions, context: ComponentContext) -> None:
        super().__init__(options, context)
        self.exchange_template = compile_template(with_pipeline(options.exchange, context.pipeline))
        self.routing_template = compile_template(
            with_pipeline(options.routing_key, context.pipeline)
        )
        self._connection: AbstractConnection | None = None
        self._channel: AbstractChannel | None = None
        self._connecting = asyncio.Lock()
        self._name = f"fspipeline {context.label}"
        broker.quiet_client_logs()

    # -- lifecycle ---------------------------------------------------------------

    async def open(self) -> None:
        try:
            await self._ready_channel()
        except BrokerError as exc:
            self.log.warning(
                "RabbitMQ is not available; deliveries fail and are retried until it is",
                error=str(exc),
            )

    async def probe(self) -> None:
        """Connect, and check the exchange exists when its name is fixed (no placeholders)."""
        fixed = _literal(self.exchange_template)
        await broker.probe(self.options, self._name, exchanges=[fixed] if fixed else [])

    async def close(self) -> None:
        connection, self._connection, self._channel = self._connection, None, None
        await broker.close_quietly(connection)

    def _usable(self) -> AbstractChannel | None:
        channel, connection = self._channel, self._connection
        if channel is None or channel.is_closed or connection is None or connection.is_closed:
            return None
        return channel

    async def _ready_channel(self) -> AbstractChannel:
        """The open channel, or a new one (on a new connection if that one is gone too).

        A channel closes on a channel error, such as publishing to a missing exchange;
        the connection closes when the broker goes away. Both are reopened on demand."""
        channel = self._usable()
        if channel is not None:
            return channel
        async with self._connecting:
            channel = self._usable()
            if channel is not None:
                return channel
            if self._connection is None or self._connection.is_closed:
                await self.close()
                self._connection = await broker.connect(self.options, self._name)
                self.log.info("connected to RabbitMQ")
            try:
                async with asyncio.timeout(self.options.connect_timeout):
                    channel = await self._connection.channel(
                        publisher_confirms=True, on_return_raises=self.options.mandatory
                    )
                    if self.options.declare is not None:
                        await broker.declare(channel, self.options.declare, self.options.url)
            except Exception as exc:
                await self.close()  # whatever broke, the next delivery starts afresh
                if isinstance(exc, BrokerError):
                    raise
                raise broker_error(exc, self.options.url) from exc
            self._channel = channel
            return channel

    # -- delivery ----------------------------------------------------------------

    async def send(self, event: Event) -> None:
        channel = await self._ready_channel()
        await self._publish(channel, event)

    async def send_batch(self, events: Sequence[Event]) -> None:
        """Publish every event at once, then wait for all confirms; any failure fails all."""
        channel = await self._ready_channel()
        outcomes = await asyncio.gather(
            *(self._publish(channel, event) for event in events), return_exceptions=True
        )
        failures = [outcome for outcome in outcomes if isinstance(outcome, BaseException)]
        for failure in failures:
            if not isinstance(failure, Exception):
                raise failure  # cancelled
        if failures:
            first = failures[0]
            raise BrokerError(
                f"{len(failures)} of {len(events)} events not confirmed; first: {first}"
            ) from first

    async def _publish(self, channel: AbstractChannel, event: Event) -> None:
        exchange_name = short_string(self.exchange_template.render(event), "exchange name")
        routing_key = short_string(self.routing_template.render(event), "routing key")
        message = to_message(event, persistent=self.options.persistent)
        try:
            # Straight to the protocol channel: an aio-pika Exchange object per name would
            # add nothing but a cache to keep in step with reopened channels.
            underlay = await channel.get_underlay_channel()
            await underlay.basic_publish(
                message.body,
                exchange=exchange_name,
                routing_key=routing_key,
                properties=message.properties,
                mandatory=self.options.mandatory,
                timeout=self.options.confirm_timeout,
            )
        except asyncio.CancelledError:
            raise
        except (amqp.DeliveryError, amqp.AMQPChannelError) as exc:
            raise broker_error(exc, self.options.url) from exc  # the message, or the channel
        except Exception as exc:
            # The connection broke (sometimes reported only as a RuntimeError): drop it, so
            # that the next delivery connects again.
            if self._channel is channel:
                await self.close()
            raise broker_error(exc, self.options.url) from exc


def _literal(template: Template) -> str | None:
    """The text of a template without placeholders, else None."""
    if template.fields:
        return None
    return "".join(part for part in template.parts if isinstance(part, str))
