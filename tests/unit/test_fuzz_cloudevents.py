"""Fuzzing the event JSON codec (pipeline/cloudevents.py), the parser every broker message and
spool record goes through: whatever arrives decodes to an event that can be written again,
or is refused with EventDecodeError; events with any meta round-trip exactly."""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipeline import Event, EventDecodeError, EventKind, from_json, to_cloudevent, to_json

FUZZ = settings(
    max_examples=250,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow],
)

json_scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text()
json_values = st.recursive(
    json_scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
# Text a broker message may carry in JSON: any code point, lone surrogates and NUL included.
hostile_text = st.text(
    alphabet=st.characters(codec=None, blacklist_categories=()), max_size=12
) | st.sampled_from(["\0", "\ud800", "\udcff", "/a\0b", "\udcff\ud800", "../..", ""])


def _decodes_cleanly(text: str | bytes) -> None:
    """The property: an event that can be written back, or an EventDecodeError."""
    try:
        event = from_json(text)
    except EventDecodeError:
        return
    line = to_json(event)  # what a logfile, a dead letter or a broker sink writes
    line.encode("utf-8")
    assert from_json(line) == event, "a decoded event does not survive its own round trip"
    for value in (event.path, event.src_path):
        if value is not None:
            assert "\0" not in value, "a path with a NUL is no file name"
            os.fsencode(value)  # what a command's argv and every os call need
    assert event.time.tzinfo is not None, "a naive time would be read as local time"


def _envelope() -> dict[str, Any]:
    event = Event(
        EventKind.MOVED,
        os.fsdecode(b"/in/caf\xe9.csv"),
        "landing/inotify",
        src_path="/in/old.csv",
        time=datetime(2026, 1, 2, 3, 4, 5, 6, tzinfo=UTC),
        meta={"root": "/in", "size": 3, "paths": ["/in/a", os.fsdecode(b"/in/\xff")]},
    )
    return json.loads(to_json(event))  # type: ignore[no-any-return]


ENVELOPE_PLACES = [
    ("specversion",),
    ("id",),
    ("source",),
    ("type",),
    ("time",),
    ("subject",),
    ("data",),
    ("data", "kind"),
    ("data", "path"),
    ("data", "path_b64"),
    ("data", "src_path"),
    ("data", "src_path_b64"),
    ("data", "is_dir"),
    ("data", "root"),
    ("data", "paths"),
    ("data", "paths_b64"),
    ("data", "extra"),
    ("data", "extra_b64"),
]


@FUZZ
@given(
    st.lists(
        st.tuples(st.sampled_from(ENVELOPE_PLACES), json_values | hostile_text),
        min_size=1,
        max_size=3,
    )
)
def test_a_damaged_envelope_decodes_cleanly_or_is_refused(
    changes: list[tuple[tuple[str, ...], Any]],
) -> None:
    envelope: Any = _envelope()
    for place, value in changes:
        target = envelope
        for key in place[:-1]:
            if not isinstance(target, dict):
                break
            target = target.get(key)
        if isinstance(target, dict):
            target[place[-1]] = value
    _decodes_cleanly(json.dumps(envelope))


@FUZZ
@given(json_values)
def test_any_json_document_decodes_cleanly_or_is_refused(document: Any) -> None:
    _decodes_cleanly(json.dumps(document))


@FUZZ
@given(st.binary(max_size=200))
def test_any_bytes_decode_cleanly_or_are_refused(data: bytes) -> None:
    _decodes_cleanly(data)


def test_a_deeply_nested_or_huge_message_is_refused_not_a_crash() -> None:
    for text in (
        "[" * 100_000,
        '{"a":' * 100_000,
        '{"data": ' + "[" * 100_000 + "]" * 100_000 + "}",
        '{"data": ' + "7" * 5_000 + "}",  # Python refuses ints of over 4300 digits
    ):
        _decodes_cleanly(text)


def test_escaped_nul_and_lone_surrogates_in_paths_are_refused() -> None:
    for path in ("/in/a\\u0000b", "/in/\\ud800", "/in/\\udfff.csv"):
        text = json.dumps(_envelope()).replace('"/in/old.csv"', f'"{path}"')
        assert path in text
        _decodes_cleanly(text)


# -- round trips of events with any meta ---------------------------------------------------

file_text = st.binary(max_size=16).filter(lambda b: b"\0" not in b).map(os.fsdecode)
meta_keys = st.sampled_from(["a", "a_b64", "size", "paths", "root", "x.y", "", "ü"]) | st.text(
    max_size=6
)
clean_json = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**63) | st.floats(allow_nan=False)
    | st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=8),
    lambda inner: st.lists(inner, max_size=3)
    | st.dictionaries(st.text(max_size=4), inner, max_size=3),
    max_leaves=8,
)  # fmt: skip
meta_values = file_text | st.lists(file_text, max_size=4) | clean_json


@st.composite
def events(draw: st.DrawFn) -> Event:
    meta = draw(st.dictionaries(meta_keys, meta_values, max_size=5))
    meta = {k: v for k, v in meta.items() if k not in ("kind", "path", "src_path", "is_dir")}
    # A key `k_b64` is where the exact bytes of a non-UTF-8 `k` go: a value can't have both.
    meta = {k: v for k, v in meta.items() if not (k.endswith("_b64") and k[:-4] in meta)}
    src = draw(st.none() | file_text)
    return Event(
        draw(st.sampled_from(list(EventKind))),
        "/w/" + draw(file_text),
        "p/test",
        is_dir=draw(st.booleans()),
        src_path=None if src is None else "/w/" + src,
        time=datetime(2000, 1, 1, tzinfo=UTC)
        + timedelta(microseconds=draw(st.integers(0, 10**15))),
        meta=meta,
    )


@FUZZ
@given(events())
def test_events_with_any_meta_round_trip_exactly(event: Event) -> None:
    line = to_json(event)
    assert json.loads(line) == json.loads(json.dumps(to_cloudevent(event)))
    assert from_json(line) == event
