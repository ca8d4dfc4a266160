"""Events as HTTP requests: the CloudEvents HTTP binding's structured, binary and batch modes."""

from __future__ import annotations

import dataclasses
import json
import os
import string
from collections.abc import Mapping, Sequence
from urllib.parse import quote

from pipeline.cloudevents import to_cloudevent, to_json
from pipeline.event import Event
from pipeline.security import no_dot_segments

STRUCTURED_TYPE = "application/cloudevents+json"
BATCH_TYPE = "application/cloudevents-batch+json"
BINARY_TYPE = "application/json"

# The binding: header values keep printable ASCII except space, '"' and '%'; the rest is
# percent-encoded UTF-8 (quote() never keeps a space, it is not in this set).
_HEADER_SAFE = "".join(c for c in string.printable[:94] if c not in '"%')
_DATA_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), default=str)


@dataclasses.dataclass(frozen=True, slots=True)
class Payload:
    """One request's body and the headers that describe it."""

    body: bytes
    headers: Mapping[str, str]


def header_value(text: str) -> str:
    """An attribute as an HTTP header value, percent-encoded as the HTTP binding says."""
    return quote(text, safe=_HEADER_SAFE, errors="replace")


def url_value(text: str) -> str:
    """A placeholder's value inside a URL: its exact bytes, percent-encoded, `/` kept.

    A value with a `..` segment raises PathEscapeError: clients and servers fold `a/../b`,
    so `{relpath}` could otherwise reach any path of the server.
    """
    return quote(os.fsencode(no_dot_segments(text)), safe="/")


def structured(event: Event) -> Payload:
    """The whole event as CloudEvents JSON; `ce-id`/`ce-type` too, to route without parsing."""
    return Payload(
        to_json(event).encode("utf-8"),
        {
            "content-type": STRUCTURED_TYPE,
            "ce-id": header_value(event.id),
            "ce-type": "fs." + event.kind.value,
        },
    )


def binary(event: Event) -> Payload:
    """The attributes as `ce-*` headers and the `data` object as the JSON body."""
    envelope = to_cloudevent(event)
    data = envelope.pop("data")
    envelope.pop("datacontenttype")  # it is the Content-Type header in this mode
    headers = {"content-type": BINARY_TYPE}
    headers.update((f"ce-{key}", header_value(str(value))) for key, value in envelope.items())
    return Payload(_DATA_ENCODER.encode(data).encode("utf-8"), headers)


def batch(events: Sequence[Event]) -> Payload:
    """Several events as one JSON array (the JSON batch format)."""
    body = "[" + ",".join(to_json(event) for event in events) + "]"
    return Payload(body.encode("utf-8"), {"content-type": BATCH_TYPE})
