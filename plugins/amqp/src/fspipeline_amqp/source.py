"""The `amqp` source: consumes a RabbitMQ queue and acks each message once its event settled."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable
from typing import ClassVar

from aio_pika.abc import AbstractChannel, AbstractConnection, AbstractIncomingMessage
from pipeline import ComponentContext, Duration, Emit, Event, EventDecodeError, Source
from pydantic import Field, model_validator

from fspipeline_amqp import broker
from fspipeline_amqp.deliveries import Deliveries
from fspipeline_amqp.errors import BrokerError, broker_error, explain
from fspipeline_amqp.message import preview, to_event
from fspipeline_amqp.options import ConnectionOptions

SETUP_TIMEOUT_FACTOR = 3
"""Opening the channel, declaring and subscribing may take this many `connect_timeout`s."""


class AmqpSourceOptions(ConnectionOptions):
    queue: str = Field(min_length=1, max_length=255)
    """Queue to consume. It must exist, or be listed under `declare.queues`."""
    prefetch: int = Field(default=256, ge=1, le=65535)
    """Messages the broker hands over before any is acked: the most events this source
    has in the pipeline at once."""
    reconnect_backoff: Duration = Field(default=1.0, gt=0)
    """Wait before reconnecting after the broker went away; doubled each failed attempt."""
    reconnect_max_backoff: Duration = Field(default=30.0, gt=0)
    """The longest wait between two connection attempts."""
    settle_timeout: Duration = 10.0
    """At shutdown, how long the channel stays open for events still in the pipeline to
    be acked; what is unsettled then is redelivered by the broker (to another consumer)."""

    @model_validator(mode="after")
    def _backoff_order(self) -> AmqpSourceOptions:
        if self.reconnect_max_backoff < self.reconnect_backoff:
            raise ValueError("reconnect_max_backoff must be at least reconnect_backoff")
        return self


class AmqpSource(Source[AmqpSourceOptions]):
    """Consumes a RabbitMQ queue; acks a message only once every sink delivered its event.

    Each message body must be an fspipeline CloudEvent (what the `amqp` sink publishes); the
    event keeps its original id. A message is acknowledged once the pipeline settled its
    event: every sink that took it delivered it (or a stage filtered it out). When a stage
    fails on it or a sink gives up on it, the message is rejected without requeueing, so
    the queue's dead-letter exchange gets it (declare the queue with
    `dead_letter_exchange`; without one RabbitMQ drops it). A body that is not an event is
    logged and rejected the same way. Messages unacked when the connection drops (a crash,
    a kill) are redelivered by RabbitMQ: delivery is at least once.

    If the broker is down or refuses the login, the source logs it and keeps reconnecting
    with backoff; it never stops the pipeline.
    """

    type_name = "amqp"
    Options = AmqpSourceOptions
    tracks_delivery: ClassVar[bool] = True

    def __init__(self, options: AmqpSourceOptions, context: ComponentContext) -> None:
        super().__init__(options, context)
        self.deliveries = Deliveries(self.log)
        self._connection: AbstractConnection | None = None
        self._channel: AbstractChannel | None = None
        self._consumer_tag: str | None = None
        self._inbox: asyncio.Queue[AbstractIncomingMessage] = asyncio.Queue()
        self._lingering: asyncio.Task[None] | None = None
        self._name = f"fspipeline {context.label}"
        broker.quiet_client_logs()

    # -- lifecycle ---------------------------------------------------------------

    async def open(self) -> None:
        self.deliveries.start()
        try:
            await self._start_consuming()
        except BrokerError as exc:
            self.log.warning(
                "RabbitMQ is not available; the source keeps trying to connect",
                error=str(exc),
            )

    async def probe(self) -> None:
        """Connect and check that the queue exists (or is declared by `declare:`)."""
        await broker.probe(self.options, self._name, queues=[self.options.queue])

    async def close(self) -> None:
        await self._stop_consuming()
        if len(self.deliveries):
            # Events of this source are still in the pipeline (the engine drains sinks
            # after closing sources): keep the channel open so that they can be acked.
            self._lingering = asyncio.create_task(self._close_when_settled())
        else:
            await self._close_when_settled()

    async def _close_when_settled(self) -> None:
        try:
            if not await self.deliveries.wait_idle(self.options.settle_timeout):
                self.log.warning(
                    "events still unsettled at shutdown; RabbitMQ redelivers them",
                    count=len(self.deliveries),
                )
        finally:
            await self.deliveries.stop()
            await self._drop_connection()

    # -- consuming ---------------------------------------------------------------

    async def run(self, emit: Emit) -> None:
        delay = self.options.reconnect_backoff
        attempt = 0
        while True:
            try:
                if self._channel is None:
                    await self._start_consuming()
                    if attempt:
                        self.log.info("consuming again", queue=self.options.queue)
                attempt, delay = 0, self.options.reconnect_backoff
                await self._consume(emit)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                attempt += 1
                self.log.warning(
                    "cannot consume from RabbitMQ; reconnecting",
                    error=str(exc)
                    if isinstance(exc, BrokerError)
                    else explain(exc, self.options.url),
                    attempt=attempt,
                    retry_in=round(delay, 3),
                )
            await self._drop_connection()
            await self.context.clock.sleep(delay)
            delay = min(self.options.reconnect_max_backoff, delay * 2)

    async def _start_consuming(self) -> None:
        """Connect, declare what is asked for, check the queue, start the consumer."""
        connection = await broker.connect(self.options, self._name)
        try:
            async with asyncio.timeout(SETUP_TIMEOUT_FACTOR * self.options.connect_timeout):
                channel = await connection.channel(publisher_confirms=False)
                await channel.set_qos(prefetch_count=self.options.prefetch)
                if self.options.declare is not None:
                    await broker.declare(channel, self.options.declare, self.options.url)
                queue = await channel.get_queue(self.options.queue, ensure=True)
                self._inbox = asyncio.Queue()
                self.deliveries.live_channel = await channel.get_underlay_channel()
                self._consumer_tag = await queue.consume(self._arrived, no_ack=False)
        except BaseException as exc:
            await broker.close_quietly(connection)
            if isinstance(exc, Exception) and not isinstance(exc, BrokerError):
                raise broker_error(exc, self.options.url) from exc
            raise
        self._connection, self._channel = connection, channel
        self.log.info("consuming", queue=self.options.queue, prefetch=self.options.prefetch)

    async def _arrived(self, message: AbstractIncomingMessage) -> None:
        self._inbox.put_nowait(message)  # at most `prefetch` of them: the broker stops there

    async def _consume(self, emit: Emit) -> None:
        """Emit what arrives until the channel or the connection closes (then raise)."""
        assert self._channel is not None and self._connection is not None
        inbox = self._inbox
        lost = asyncio.ensure_future(_first(self._channel.closed(), self._connection.closed()))
        try:
            while True:
                if inbox.empty():
                    arrival = asyncio.ensure_future(inbox.get())
                    await asyncio.wait({arrival, lost}, return_when=asyncio.FIRST_COMPLETED)
                    if not arrival.done():
                        arrival.cancel()
                        raise BrokerError(
                            f"the connection to RabbitMQ for queue {self.options.queue!r} "
                            "was lost; unacked messages go back to the queue"
                        )
                    message = arrival.result()
                else:
                    message = inbox.get_nowait()
                await self._emit(message, emit)
        finally:
            lost.cancel()

    async def _emit(self, message: AbstractIncomingMessage, emit: Emit) -> None:
        try:
            event: Event = to_event(message.body)
        except EventDecodeError as exc:
            self.log.warning(
                "message is not an fspipeline event; rejecting it to the dead-letter exchange",
                error=str(exc),
                message_id=message.message_id,
                body=preview(message.body),
            )
            self.deliveries.reject_now(message)
            return
        self.deliveries.track(event.id, message)
        await emit(event)

    def settled(self, event: Event, delivered: bool) -> None:
        """Called by the engine once per emitted event: ack it, or reject it to the DLX."""
        if not self.deliveries.settle(event.id, delivered):
            self.log.warning("settled an event this source holds no message for", id=event.id)
        elif not delivered:
            self.log.warning(
                "event failed; its message goes to the queue's dead-letter exchange",
                id=event.id,
                path=event.path,
            )

    # -- teardown ----------------------------------------------------------------

    async def _stop_consuming(self) -> None:
        """Stop deliveries; hand back what arrived but was never emitted."""
        channel, tag = self._channel, self._consumer_tag
        self._consumer_tag = None
        if channel is None or channel.is_closed:
            return
        with contextlib.suppress(Exception):
            async with asyncio.timeout(self.options.connect_timeout):
                if tag is not None:
                    underlay = await channel.get_underlay_channel()
                    await underlay.basic_cancel(tag)
                while not self._inbox.empty():
                    await self._inbox.get_nowait().nack(requeue=True)

    async def _drop_connection(self) -> None:
        connection, self._connection, self._channel = self._connection, None, None
        self._consumer_tag = None
        await broker.close_quietly(connection)


async def _first(*waits: Awaitable[object]) -> None:
    """Return once any of `waits` completes."""
    futures = [asyncio.ensure_future(wait) for wait in waits]
    try:
        await asyncio.wait(futures, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for future in futures:
            future.cancel()
