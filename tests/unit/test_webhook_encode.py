"""Events as HTTP requests, and what an HTTP answer means for the delivery."""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime

import httpx

from pipeline import Event, EventKind, from_json, to_json
from pipeline.sinks import webhook_encode as encode
from pipeline.sinks.webhook_http import parse_retry_after, refusal, shown_url

EVENT = Event(
    EventKind.MOVED,
    '/in/€ "q" 100%.csv',
    "landing/inotify",
    src_path="/in/tmp.part",
    meta={"root": "/in", "size": 3},
)


def test_structured_body_is_the_cloudevents_json() -> None:
    payload = encode.structured(EVENT)
    assert payload.body.decode() == to_json(EVENT)
    assert from_json(payload.body) == EVENT
    assert payload.headers["content-type"] == "application/cloudevents+json"
    assert payload.headers["ce-type"] == "fs.moved"


def test_binary_headers_are_percent_encoded_as_the_http_binding_says() -> None:
    payload = encode.binary(EVENT)
    assert payload.headers["ce-subject"] == "%E2%82%AC%20%22q%22%20100%25.csv"
    assert payload.headers["ce-source"] == "fspipeline/landing/inotify"
    assert all(value.isascii() and " " not in value for value in payload.headers.values())
    assert json.loads(payload.body) == {
        "kind": "moved",
        "path": EVENT.path,
        "src_path": "/in/tmp.part",
        "is_dir": False,
        "root": "/in",
        "size": 3,
    }


def test_batch_is_a_json_array_of_events() -> None:
    other = EVENT.evolve(id="other", path="/in/b")
    payload = encode.batch([EVENT, other])
    assert payload.headers["content-type"] == "application/cloudevents-batch+json"
    assert [from_json(json.dumps(item)) for item in json.loads(payload.body)] == [EVENT, other]


def test_url_values_keep_their_exact_bytes() -> None:
    assert encode.url_value(os.fsdecode(b"/a b/\xff?#&.csv")) == "/a%20b/%FF%3F%23%26.csv"


def test_retry_after_in_seconds_or_as_a_date() -> None:
    now = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)
    assert parse_retry_after("120") == 120.0
    assert parse_retry_after("Thu, 01 Jan 2026 12:00:30 GMT", now) == 30.0
    assert parse_retry_after("Thu, 01 Jan 2026 11:00:00 GMT", now) == 0.0
    assert parse_retry_after("soon") is None
    assert parse_retry_after(None) is None


def test_shown_url_masks_password_and_query_values() -> None:
    url = "https://bob:s3cret@h.example/p?token=abc&flag&b=2"
    assert shown_url(url) == "https://bob:***@h.example/p?token=***&flag&b=***"


def answer(status: int, body: bytes = b"", headers: dict[str, str] | None = None) -> httpx.Response:
    return httpx.Response(status, content=body, headers=headers)


def test_an_answer_says_whether_a_retry_can_help() -> None:
    assert refusal(answer(400), "u", ()).permanent
    assert refusal(answer(403), "u", ()).permanent
    assert not refusal(answer(408), "u", ()).permanent
    assert not refusal(answer(502), "u", ()).permanent
    throttled = refusal(answer(429, headers={"retry-after": "7"}), "u", ())
    assert (throttled.permanent, throttled.retry_after, throttled.status) == (False, 7.0, 429)


def test_the_reason_holds_the_body_on_one_line_with_secrets_masked() -> None:
    error = refusal(answer(422, b'{"bad": "field"},\n  "token": "abcd1234"'), "u", ["abcd1234"])
    assert str(error) == 'u answered 422 Unprocessable Entity: {"bad": "field"}, "token": "***"'
