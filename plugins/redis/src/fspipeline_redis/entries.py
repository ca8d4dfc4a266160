"""An event as the fields of a stream entry, and back."""

from __future__ import annotations

from collections.abc import Mapping

from pipeline import Event, EventDecodeError, from_json, to_json
from pipeline.redact import redact
from redis.typing import EncodableT, FieldT

ID = "id"
TYPE = "type"
CONTENT_TYPE = "content-type"
BODY = "body"
CLOUDEVENTS_JSON = "application/cloudevents+json"
SHOWN_BODY = 200
"""Characters of an undecodable body that a log line or dead letter shows."""

Fields = dict[bytes, bytes]
"""A stream entry as redis-py returns it: field name to value, both bytes."""
NewFields = dict[FieldT, EncodableT]
"""A stream entry as XADD takes it."""


def fields_of(event: Event) -> NewFields:
    """The fields of the entry for `event`: routing keys first, then the CloudEvents JSON."""
    return {
        ID: event.id,
        TYPE: "fs." + event.kind.value,
        CONTENT_TYPE: CLOUDEVENTS_JSON,
        BODY: to_json(event),
    }


def event_of(fields: Mapping[bytes, bytes]) -> Event:
    """The event an entry carries, with its original id; raises EventDecodeError."""
    body = fields.get(BODY.encode())
    if body is None:
        names = ", ".join(sorted(name.decode("utf-8", "replace") for name in fields))
        raise EventDecodeError(f"the entry has no {BODY!r} field (it has: {names or 'none'})")
    return from_json(body)


def shown(fields: Mapping[bytes, bytes]) -> str:
    """A short, redacted rendering of an entry's body for logs."""
    body = fields.get(BODY.encode(), b"")
    text = redact(body.decode("utf-8", "replace"))
    return text if len(text) <= SHOWN_BODY else text[:SHOWN_BODY] + "…"
