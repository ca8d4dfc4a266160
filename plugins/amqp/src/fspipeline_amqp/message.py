"""An event as an AMQP message and back: CloudEvents JSON body, id and type as properties."""

from __future__ import annotations

import os

from aio_pika import DeliveryMode, Message
from pipeline import Event, from_json, to_json
from pipeline.redact import redact

CONTENT_TYPE = "application/cloudevents+json"
APP_ID = "fspipeline"
MAX_SHORT_STRING = 255
"""AMQP 0-9-1 short strings (exchange names, routing keys) hold at most 255 bytes."""
SHOWN_BODY = 200
"""Characters of an undecodable body shown in the log line about it."""


def to_message(event: Event, *, persistent: bool) -> Message:
    """The message for `event`: consumers can route on `type` and de-duplicate on
    `message_id` without parsing the body."""
    return Message(
        to_json(event).encode("utf-8"),
        content_type=CONTENT_TYPE,
        delivery_mode=DeliveryMode.PERSISTENT if persistent else DeliveryMode.NOT_PERSISTENT,
        message_id=event.id,
        type=f"fs.{event.kind.value}",
        timestamp=event.time,
        app_id=APP_ID,
    )


def to_event(body: bytes) -> Event:
    """The event a message body holds, with its original id; raises EventDecodeError."""
    return from_json(body)


def short_string(value: str, what: str) -> str:
    """`value` if AMQP can carry it as a short string; else ValueError naming the problem."""
    try:
        size = len(value.encode("utf-8"))
    except UnicodeEncodeError:
        raise ValueError(
            f"{what} {os.fsencode(value).decode('utf-8', 'backslashreplace')!r} is not UTF-8 "
            "(a file name with such bytes?); AMQP names must be UTF-8: build it from other "
            "placeholders"
        ) from None
    if size > MAX_SHORT_STRING:
        raise ValueError(
            f"{what} is {size} bytes long; AMQP allows {MAX_SHORT_STRING} "
            f"(starts {value[:60]!r}): build it from shorter placeholders"
        )
    return value


def preview(body: bytes) -> str:
    """The start of a body, for a log line: printable, passwords masked."""
    text = body[:SHOWN_BODY].decode("utf-8", "backslashreplace")
    more = f"... ({len(body)} bytes)" if len(body) > SHOWN_BODY else ""
    return redact(text) + more
