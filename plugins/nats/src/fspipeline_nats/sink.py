"""The `nats` sink: each event published to JetStream, stored once, acknowledged."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import nats.errors
import nats.js.errors
from pipeline import ComponentContext, Duration, Event, EventKind, Sink, to_json
from pipeline.redact import redact
from pydantic import Field

from fspipeline_nats.errors import NatsPublishFailed, NatsStreamMissing, NatsUnavailable
from fspipeline_nats.link import NatsLink, close_quietly
from fspipeline_nats.publisher import AckedPublisher, Message, NoStreamStores
from fspipeline_nats.settings import ConnectionOptions, StreamSpec
from fspipeline_nats.streams import ensure_stream, stream_for_subject, stream_info
from fspipeline_nats.subjects import (
    SubjectTemplate,
    check_subject,
    compile_subject,
    render_subject,
    wildcard_of,
)

if TYPE_CHECKING:
    from nats.aio.client import Client as NATS
    from nats.js import JetStreamContext

CONTENT_TYPE = "application/cloudevents+json"
MSG_ID = "Nats-Msg-Id"


class NatsSinkOptions(ConnectionOptions):
    subject: SubjectTemplate = "fs.{pipeline}.{kind}"
    """Subject of each message. Placeholders: {pipeline} (this pipeline's name), {kind},
    {name}, {ext}, {meta.KEY}, ... as in the command sink; each value fills one token
    (`.`, `*`, `>` and spaces in it become `_`)."""
    stream: str | None = Field(default=None, pattern=r"^[^.*>\s]+$")
    """The stream the messages must land in: the server refuses a message whose subject
    that stream does not store (header `Nats-Expected-Stream`). Default: whichever stream
    stores the subject."""
    create_stream: StreamSpec | None = None
    """Create this stream when it does not exist (`{name: FS, subjects: ["fs.>"],
    duplicate_window: 2m, max_age: 7d}`); an existing stream is used as it is."""
    deduplicate: bool = True
    """Send the event id as `Nats-Msg-Id`: the server stores a message published twice
    (a retry after a lost acknowledgement, a re-sent spool) only once, within the stream's
    `duplicate_window`."""
    publish_timeout: Duration = 5.0
    """How long to wait for the server to acknowledge a message (or a whole batch)."""


class NatsSink(Sink[NatsSinkOptions]):
    """Publishes each event to NATS JetStream, de-duplicated by event id, acknowledged.

    The message body is the event's CloudEvents JSON; headers carry `id` (the event id),
    `type` (`fs.<kind>`), `Content-Type: application/cloudevents+json` and, with
    `deduplicate`, `Nats-Msg-Id`. A delivery counts once the server has stored the message
    (its publish acknowledgement). With `batch_size` > 1 a whole batch is published at once
    and its acknowledgements are awaited together: about 4x the events/s of one at a time.

    The server may be down or refuse the credentials when the pipeline starts: the sink
    says so once and keeps reconnecting in the background (the engine retries what could
    not be sent; `spool: true` keeps events on disk meanwhile). `pipeline check --connect`
    reports an unreachable server, rejected credentials and a missing stream.
    """

    type_name = "nats"
    Options = NatsSinkOptions

    def __init__(self, options: NatsSinkOptions, context: ComponentContext) -> None:
        super().__init__(options, context)
        self.subject = compile_subject(options.subject, context.pipeline)
        spec = options.create_stream
        self.expected_stream = options.stream
        self.stream_subjects = (spec.subjects if spec else None) or [
            wildcard_of(options.subject, context.pipeline)
        ]
        self.link = self._make_link()
        self._publishing: AckedPublisher | None = None
        # The default subject depends on the kind alone: render it once per kind.
        self._by_kind: dict[EventKind, str] | None = {} if self.subject.fields <= {"kind"} else None

    def _make_link(self) -> NatsLink:
        return NatsLink.of_component(self.options, self.context, self.log, self._on_connect)

    async def _on_connect(self, client: NATS) -> None:
        if self.options.create_stream is not None:
            await ensure_stream(
                client.jetstream(),
                self.options.create_stream,
                self.stream_subjects,
                self.link.shown_url,
                self.log,
            )

    async def open(self) -> None:
        await self.link.start("the sink")

    async def close(self) -> None:
        if self._publishing is not None:
            await self._publishing.stop()
            self._publishing = None
        await self.link.close()
        self.link = self._make_link()  # a closed link stays closed; open() may come again

    # -- publishing --------------------------------------------------------------

    async def _publisher(self) -> AckedPublisher:
        client = self.link.require()
        if self._publishing is None or self._publishing.client is not client:
            publisher = AckedPublisher(client)
            try:
                await publisher.start()
            except Exception as exc:
                raise self._failure(exc, "") from None
            self._publishing = publisher
        return self._publishing

    def _subject(self, event: Event) -> str:
        if self._by_kind is None:
            return render_subject(self.subject, event)
        subject = self._by_kind.get(event.kind)
        if subject is None:
            subject = self._by_kind[event.kind] = render_subject(self.subject, event)
        return subject

    def _message(self, event: Event) -> Message:
        subject = self._subject(event)
        headers = {"id": event.id, "type": f"fs.{event.kind.value}", "Content-Type": CONTENT_TYPE}
        if self.options.deduplicate:
            headers[MSG_ID] = event.id
        if self.expected_stream:
            headers["Nats-Expected-Stream"] = self.expected_stream
        return subject, to_json(event).encode("utf-8"), headers

    async def send(self, event: Event) -> None:
        await self.send_batch((event,))

    async def send_batch(self, events: Sequence[Event]) -> None:
        messages = [self._message(event) for event in events]
        publisher = await self._publisher()
        try:
            await publisher.publish(messages, self.options.publish_timeout)
        except Exception as exc:
            raise self._failure(exc, messages[0][0]) from None

    def _failure(self, exc: BaseException, subject: str) -> Exception:
        shown = self.link.shown_url
        if isinstance(exc, TimeoutError | nats.errors.TimeoutError):
            return NatsPublishFailed(
                f"NATS at {shown} did not acknowledge within {self.options.publish_timeout:g} s "
                f"(subject {subject!r}); the server may be down or overloaded"
            )
        if isinstance(exc, NoStreamStores):
            return NatsStreamMissing(
                f"no JetStream stream stores the subject {exc.subject!r} on {shown}; create "
                "one whose subjects cover it, or set `create_stream`"
            )
        if isinstance(exc, nats.js.errors.APIError):
            return NatsPublishFailed(redact(f"NATS refused {subject!r}: {exc.description or exc}"))
        if isinstance(exc, nats.errors.Error | OSError):
            if self._publishing is not None:
                self.link.lost(self._publishing.client)
            return NatsUnavailable(redact(f"publishing to NATS at {shown} failed: {exc!r}"))
        if isinstance(exc, ValueError):  # a template that cannot be filled for this event
            return exc
        return NatsPublishFailed(redact(f"publishing {subject!r} failed: {exc!r}"))

    # -- pipeline check --connect -------------------------------------------------

    async def probe(self) -> None:
        """Connect, then check that a stream stores this sink's subjects (or can be made)."""
        link = NatsLink(
            self.options, name="fspipeline probe", log=self.log, clock=self.context.clock
        )
        client = await link.connect_once()
        try:
            js = client.jetstream(timeout=self.options.connect_timeout)
            if self.options.create_stream is not None:
                await _jetstream_enabled(js, link.shown_url)
                return
            if self.options.stream:
                await stream_info(js, self.options.stream, link.shown_url)
                return
            sample = self.stream_subjects[0].replace("*", "x").replace(">", "x")
            problem = check_subject(sample)
            if problem is None:
                await stream_for_subject(js, sample, link.shown_url)
        finally:
            await close_quietly(client)


async def _jetstream_enabled(js: JetStreamContext, url: str) -> None:
    try:
        await js.account_info()
    except nats.errors.NoRespondersError:
        raise NatsStreamMissing(
            f"JetStream is not enabled on the NATS server at {url}; start nats-server with -js"
        ) from None
