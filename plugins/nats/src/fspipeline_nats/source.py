"""The `nats` source: a durable JetStream pull consumer, acked once the sinks delivered."""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from typing import TYPE_CHECKING, Literal

import nats.errors
import nats.js.errors
from nats.js import api
from pipeline import (
    ComponentContext,
    Duration,
    Emit,
    Event,
    EventDecodeError,
    Source,
    from_json,
    stop_tasks,
)
from pipeline.redact import redact
from pydantic import Field

from fspipeline_nats.acks import Acknowledger, Delivery, OnFailure
from fspipeline_nats.errors import NatsStreamMissing, NatsUnavailable, api_failure
from fspipeline_nats.link import NatsLink, close_quietly
from fspipeline_nats.settings import ConnectionOptions
from fspipeline_nats.streams import stream_info

if TYPE_CHECKING:
    from nats.aio.client import Client as NATS
    from nats.aio.msg import Msg
    from nats.js import JetStreamContext

NAME = r"^[^.*>\s]+$"
SHOWN_BODY = 200
"""Characters of an undecodable message body shown in the log."""
LAST_FLUSH = 1.0


class NatsSourceOptions(ConnectionOptions):
    stream: str = Field(pattern=NAME)
    """The JetStream stream to consume, e.g. `FS`."""
    durable: str = Field(pattern=NAME)
    """Name of the durable consumer. Every instance with the same name shares one stream
    position and splits the messages between them; each message goes to one of them."""
    filter_subject: str | None = None
    """Only messages whose subject matches, e.g. `fs.landing.>`; default: the whole stream."""
    create_consumer: bool = True
    """Create the durable consumer with the options below when it does not exist. An
    existing one is used as it is (delete it to apply changed options)."""
    deliver: Literal["all", "new"] = "all"
    """Where a new consumer starts: `all` (the oldest message the stream holds) or `new`
    (messages published from now on)."""
    ack_wait: Duration = 30.0
    """How long the server waits for an answer before it hands a message to another
    instance. A live instance keeps its slow messages alive (see `progress`), so this is
    how long the messages of a dead instance wait."""
    max_deliver: int = Field(default=5, ge=0)
    """Deliveries of one message before the server gives up on it; 0: no limit."""
    max_ack_pending: int = Field(default=1000, ge=1)
    """Messages handed out and not yet answered, across all instances; the server sends no
    more until some are answered."""
    fetch_batch: int = Field(default=128, ge=1, le=10_000)
    """Messages asked for per pull request."""
    max_in_flight: int = Field(default=256, ge=1)
    """Messages this instance holds at most (taken, their event not yet settled); it asks
    for more only as they settle, so a slow pipeline does not take what other instances
    could handle. Lower it to spread the work more evenly, raise it for one fast instance."""
    fetch_wait: Duration = Field(default=2.0, gt=0)
    """How long one pull request waits for messages before asking again."""
    on_failure: OnFailure = "nak"
    """When the pipeline could not deliver an event (dead-lettered): `nak` has the server
    deliver it again after `nak_delay` (until `max_deliver`), `term` tells it never to
    (the event stays in the dead letters)."""
    nak_delay: Duration = 5.0
    """With `on_failure: nak`: how long the server waits before delivering it again."""
    progress: bool = True
    """While an event is still in the pipeline, tell the server every third of `ack_wait`
    that its message is in progress (`+WPI`), so a slow sink never gets it redelivered."""


class NatsSource(Source[NatsSourceOptions]):
    """Consumes a NATS JetStream stream with a durable pull consumer; acks after delivery.

    Each message is turned back into its event (same id, the idempotency key across hops;
    `meta.nats` adds `stream`, `sequence` and `delivered`, the delivery count). A message
    is acknowledged only once the pipeline delivered its event to every sink that took it;
    when a sink gave up on it (dead-lettered), it is nak'ed for redelivery or terminated
    (`on_failure`). A body that is not an fspipeline event is logged and terminated.

    Run the same config on several hosts: instances with the same `durable` share the
    messages. One that dies leaves its unanswered messages to the others after `ack_wait`.
    Delivery is at least once: a message may come again after a crash, so sinks should
    de-duplicate on the event id when it matters.

    A server that is down or refuses the credentials, or a stream that does not exist yet,
    never stops the pipeline: the source logs why and retries with a growing pause.
    `pipeline check --connect` reports those three problems.
    """

    type_name = "nats"
    Options = NatsSourceOptions
    tracks_delivery = True

    def __init__(self, options: NatsSourceOptions, context: ComponentContext) -> None:
        super().__init__(options, context)
        self.link = self._make_link()
        self.acks = self._make_acks(self.link)
        self._acker: asyncio.Task[None] | None = None
        self._retired: list[Acknowledger] = []
        self._lingering: set[asyncio.Task[None]] = set()

    def _make_link(self) -> NatsLink:
        return NatsLink.of_component(self.options, self.context, self.log)

    def _make_acks(self, link: NatsLink) -> Acknowledger:
        options = self.options
        return Acknowledger(
            link,
            on_failure=options.on_failure,
            nak_delay=options.nak_delay,
            max_deliver=options.max_deliver,
            progress_every=options.ack_wait / 3 if options.progress else None,
            log=self.log,
            clock=self.context.clock,
        )

    # -- lifecycle ---------------------------------------------------------------

    async def open(self) -> None:
        if self._acker is not None:  # reopened after close(): a fresh connection
            self.link = self._make_link()
            self.acks = self._make_acks(self.link)
        await self.link.start("the source")
        self._acker = asyncio.create_task(self.acks.run(), name=f"{self.context.label} acks")

    async def close(self) -> None:
        # The engine closes sources before it drains the sinks, so settlements still come
        # after this: the connection stays until they are answered (or ack_wait is over,
        # or the process ends), in the background.
        if self._acker is None:
            await self.link.close()
            return
        self._retired.append(self.acks)
        task = asyncio.create_task(self._linger(self.link, self.acks, self._acker))
        self._lingering.add(task)
        task.add_done_callback(self._lingering.discard)

    async def _linger(self, link: NatsLink, acks: Acknowledger, acker: asyncio.Task[None]) -> None:
        try:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(acks.idle(), self.options.ack_wait)
        finally:
            await stop_tasks(acker)
            acks.give_back_all()  # never settled: to the other instances, at once
            await acks.last_flush(LAST_FLUSH)
            await link.close()
            with contextlib.suppress(ValueError):
                self._retired.remove(acks)

    def settled(self, event: Event, delivered: bool) -> None:
        for acks in (self.acks, *self._retired):
            if acks.holds(event.id):
                acks.settle(event.id, delivered)
                return
        self.log.warning("settled an event this source does not hold", id=event.id)

    # -- consuming ---------------------------------------------------------------

    async def run(self, emit: Emit) -> None:
        pause = self.options.reconnect_wait
        while True:
            client = await self.link.wait()
            try:
                subscription = await self._subscribe(client)
            except ConnectionError as exc:
                self.log.warning(
                    "cannot consume from NATS yet; retrying", error=str(exc), retry_in=pause
                )
                await self.context.clock.sleep(pause)
                pause = min(self.options.reconnect_max_wait, pause * 2)
                continue
            pause = self.options.reconnect_wait
            self.log.info("consuming", stream=self.options.stream, durable=self.options.durable)
            await self._consume(client, subscription, emit)

    async def _subscribe(self, client: NATS) -> JetStreamContext.PullSubscription:
        options = self.options
        url = self.link.shown_url
        js = client.jetstream(timeout=max(options.connect_timeout, 2.0))
        await stream_info(js, options.stream, url)
        try:
            try:
                existing = await js.consumer_info(options.stream, options.durable)
            except nats.js.errors.NotFoundError:
                if not options.create_consumer:
                    raise NatsStreamMissing(
                        f"the durable consumer {options.durable!r} does not exist on stream "
                        f"{options.stream!r} at {url}; create it or set create_consumer: true"
                    ) from None
                await js.add_consumer(options.stream, config=self._consumer_config())
            else:
                self._compare(existing.config)
            return await js.pull_subscribe_bind(durable=options.durable, stream=options.stream)
        except ConnectionError:
            raise  # already says what is wrong (ConnectionError is an OSError too)
        except nats.js.errors.APIError as exc:
            raise NatsStreamMissing(
                api_failure(exc, f"setting up consumer {options.durable!r}", url)
            ) from None
        except (nats.errors.Error, OSError, TimeoutError) as exc:
            raise NatsUnavailable(
                api_failure(exc, f"setting up consumer {options.durable!r}", url)
            ) from None

    def _consumer_config(self) -> api.ConsumerConfig:
        options = self.options
        return api.ConsumerConfig(
            durable_name=options.durable,
            ack_policy=api.AckPolicy.EXPLICIT,
            ack_wait=options.ack_wait,
            max_deliver=options.max_deliver or -1,
            max_ack_pending=options.max_ack_pending,
            filter_subject=options.filter_subject,
            deliver_policy=api.DeliverPolicy(options.deliver),
        )

    def _compare(self, config: api.ConsumerConfig) -> None:
        wanted = self._consumer_config()
        differs = {
            name: {"has": getattr(config, name), "options": getattr(wanted, name)}
            for name in ("ack_wait", "max_deliver", "max_ack_pending", "filter_subject")
            if getattr(config, name) != getattr(wanted, name)
        }
        if differs:
            self.log.warning(
                "the durable consumer exists with other settings; they stay as they are "
                "(delete the consumer to apply the options)",
                durable=self.options.durable,
                differs=differs,
            )

    async def _consume(
        self, client: NATS, subscription: JetStreamContext.PullSubscription, emit: Emit
    ) -> None:
        """Fetch and emit until the connection is gone (then the link heals it)."""
        limit = self.options.max_in_flight
        while True:
            await self.acks.below(limit)
            try:
                messages = await subscription.fetch(
                    min(self.options.fetch_batch, limit - self.acks.held),
                    timeout=self.options.fetch_wait,
                )
            except TimeoutError:
                if client.is_closed:
                    break
                continue
            except asyncio.CancelledError:
                task = asyncio.current_task()
                if task is not None and task.cancelling():
                    raise
                break  # nats-py cancelled the fetch because it closed the client
            except (nats.errors.Error, OSError) as exc:
                self.log.info("fetching stopped", error=redact(str(exc)))
                break
            await self._emit_all(self._events(messages), emit)
        self.link.lost(client)

    def _events(self, messages: list[Msg]) -> list[Event]:
        """Each message's event, its delivery held for the answer; bad ones terminated."""
        events = []
        for message in messages:
            meta = message.metadata
            delivery = Delivery(message.reply, meta.sequence.stream, meta.num_delivered)
            try:
                event = from_json(message.data)
            except EventDecodeError as exc:
                body = message.data[:SHOWN_BODY].decode("utf-8", "replace")
                self.log.error(
                    "message is not an fspipeline event; terminating it",
                    subject=message.subject,
                    sequence=delivery.sequence,
                    error=str(exc),
                    body=redact(body),
                )
                self.acks.reject(delivery)
                continue
            event = event.with_meta(
                nats={
                    "stream": meta.stream,
                    "sequence": delivery.sequence,
                    "delivered": delivery.attempt,
                }
            )
            self.acks.hold(event.id, delivery)
            events.append(event)
        return events

    async def _emit_all(self, events: list[Event], emit: Emit) -> None:
        left = deque(events)
        try:
            while left:
                await emit(left[0])
                left.popleft()
        finally:
            if left:
                left.popleft()  # the one being emitted: the engine settles it, or never
                for event in left:
                    self.acks.give_back(event.id)

    # -- pipeline check --connect -------------------------------------------------

    async def probe(self) -> None:
        """Connect, then check that the stream (and, unless created, the consumer) exist."""
        options = self.options
        link = NatsLink(options, name="fspipeline probe", log=self.log, clock=self.context.clock)
        client = await link.connect_once()
        try:
            js = client.jetstream(timeout=max(options.connect_timeout, 2.0))
            await stream_info(js, options.stream, link.shown_url)
            if not options.create_consumer:
                try:
                    await js.consumer_info(options.stream, options.durable)
                except nats.js.errors.NotFoundError:
                    raise NatsStreamMissing(
                        f"the durable consumer {options.durable!r} does not exist on stream "
                        f"{options.stream!r} at {link.shown_url}; create it or set "
                        "create_consumer: true"
                    ) from None
        finally:
            await close_quietly(client)
