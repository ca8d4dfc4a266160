"""The serialized form of an event: CloudEvents 1.0 JSON (pipeline/cloudevents.py)."""

from __future__ import annotations

import json
import os
import re
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline import Event, EventDecodeError, EventKind, from_json, to_cloudevent, to_json

MOMENT = datetime(2026, 11, 24, 6, 16, 49, 123456, tzinfo=UTC)
TIME_FORMAT = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$")
CONTRACT_KEYS = [
    "specversion",
    "id",
    "source",
    "type",
    "time",
    "subject",
    "datacontenttype",
    "data",
]


def landing_event(**changes: object) -> Event:
    fields: dict[str, object] = {
        "kind": EventKind.CLOSED_WRITE,
        "path": "/abs/incoming/a.csv",
        "source": "landing/inotify",
        "time": MOMENT,
        "meta": {"root": "/abs", "size": 123},
    }
    fields.update(changes)
    return Event(**fields)  # type: ignore[arg-type]


def as_json(event: Event) -> dict[str, object]:
    line = to_json(event)
    assert "\n" not in line
    line.encode("utf-8")  # a JSON line is valid UTF-8 text
    parsed = json.loads(line)
    assert isinstance(parsed, dict)
    return parsed


# -- the shape of DESIGN.md -------------------------------------------------------------


def test_json_has_the_shape_of_the_contract() -> None:
    event = landing_event()
    doc = as_json(event)

    assert set(doc) == set(CONTRACT_KEYS)
    assert doc["specversion"] == "1.0"
    assert doc["id"] == event.id
    assert doc["source"] == "fspipeline/landing/inotify"
    assert doc["type"] == "fs.closed_write"
    assert doc["time"] == "2026-11-24T06:16:49.123456Z"
    assert doc["subject"] == "incoming/a.csv"
    assert doc["datacontenttype"] == "application/json"
    assert doc["data"] == {
        "kind": "closed_write",
        "path": "/abs/incoming/a.csv",
        "src_path": None,
        "is_dir": False,
        "root": "/abs",
        "size": 123,
    }


def test_to_cloudevent_is_what_to_json_writes() -> None:
    event = landing_event()
    assert to_cloudevent(event) == json.loads(to_json(event))


def test_json_keys_are_in_the_contract_order() -> None:
    # to_json promises "keys in contract order"; people read these lines in log files.
    assert list(as_json(landing_event())) == CONTRACT_KEYS


@pytest.mark.parametrize("kind", list(EventKind))
def test_type_is_fs_dot_kind(kind: EventKind) -> None:
    doc = as_json(landing_event(kind=kind))
    assert doc["type"] == f"fs.{kind.value}"
    assert doc["data"]["kind"] == kind.value  # type: ignore[index]


@pytest.mark.parametrize(
    "moment",
    [
        datetime(2026, 11, 24, 6, 16, 49, tzinfo=UTC),  # no microseconds
        datetime(2026, 11, 24, 8, 16, 49, 123456, tzinfo=timezone(timedelta(hours=2))),
        datetime(2026, 11, 23, 22, 16, 49, 5, tzinfo=timezone(timedelta(hours=-8))),
    ],
)
def test_time_is_utc_with_microseconds_and_z(moment: datetime) -> None:
    text = as_json(landing_event(time=moment))["time"]
    assert isinstance(text, str)
    assert TIME_FORMAT.match(text), text
    assert datetime.fromisoformat(text.replace("Z", "+00:00")) == moment


def test_moved_event_carries_its_src_path_and_is_dir() -> None:
    event = landing_event(
        kind=EventKind.MOVED, path="/abs/done", src_path="/abs/incoming", is_dir=True, meta={}
    )
    data = as_json(event)["data"]
    assert data == {
        "kind": "moved",
        "path": "/abs/done",
        "src_path": "/abs/incoming",
        "is_dir": True,
    }


def test_every_meta_key_is_in_data() -> None:
    meta = {
        "size": 5,
        "mtime": 1.5,
        "inode": 2**40,
        "sha256": "e3b0c442",
        "scan": True,
        "usn": None,
        "reasons": ["DATA_EXTEND", "CLOSE"],
        "owner": {"uid": 1000, "name": "ana"},
    }
    data = as_json(landing_event(meta=meta))["data"]
    assert isinstance(data, dict)
    for key, value in meta.items():
        assert data[key] == value


# -- subject -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("root", "path", "subject"),
    [
        ("/abs", "/abs/incoming/a.csv", "incoming/a.csv"),
        ("/abs/", "/abs/incoming/a.csv", "incoming/a.csv"),
        ("/abs", "/abs", "."),
        (None, "/abs/incoming/a.csv", "/abs/incoming/a.csv"),
    ],
)
def test_subject_is_the_path_relative_to_the_watched_root(
    root: str | None, path: str, subject: str
) -> None:
    meta = {} if root is None else {"root": root}
    assert as_json(landing_event(path=path, meta=meta))["subject"] == subject


def test_subject_of_a_path_outside_the_root_is_not_cut_mid_name() -> None:
    # "/inbox/a.csv" is not below the root "/in": its subject must not be "box/a.csv".
    doc = as_json(landing_event(path="/inbox/a.csv", meta={"root": "/in"}))
    assert doc["subject"] == "/inbox/a.csv"


# -- round trip --------------------------------------------------------------------------


def test_round_trip_preserves_every_field() -> None:
    event = landing_event(
        kind=EventKind.MOVED,
        src_path="/abs/incoming/a.tmp",
        is_dir=False,
        meta={
            "root": "/abs",
            "size": 123,
            "mtime": 1732429009.5,
            "scan": True,
            "usn": None,
            "reasons": ["RENAME_NEW_NAME"],
            "owner": {"uid": 1000},
        },
    )
    back = from_json(to_json(event))

    assert back == event
    assert (back.id, back.kind, back.path, back.src_path, back.is_dir) == (
        event.id,
        event.kind,
        event.path,
        event.src_path,
        event.is_dir,
    )
    assert back.source == "landing/inotify"
    assert back.time == MOMENT
    assert back.time.microsecond == 123456
    assert dict(back.meta) == dict(event.meta)


def test_round_trip_of_a_directory_event_without_meta() -> None:
    event = landing_event(kind=EventKind.CREATED, is_dir=True, meta={})
    assert from_json(to_json(event)) == event


def test_from_json_accepts_bytes() -> None:
    event = landing_event()
    assert from_json(to_json(event).encode("utf-8")) == event


def test_round_trip_keeps_a_meta_key_that_ends_in_b64() -> None:
    # A stage may well store a digest as base64 under a name like this.
    event = landing_event(meta={"sha256_b64": "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU="})
    assert dict(from_json(to_json(event)).meta) == dict(event.meta)


# -- paths that are not UTF-8 ------------------------------------------------------------

NOT_UTF8 = os.fsdecode(b"/in/caf\xe9\n;.csv")


def test_a_non_utf8_path_gives_a_valid_utf8_json_line() -> None:
    event = landing_event(path=NOT_UTF8, meta={"root": "/in"})
    line = to_json(event)
    line.encode("utf-8")
    assert "\n" not in line
    doc = json.loads(line)
    assert doc["data"]["path"] == "/in/caf\\xe9\n;.csv"  # readable, bytes escaped
    assert doc["subject"].startswith("caf")


def test_a_non_utf8_path_round_trips_to_the_same_bytes() -> None:
    event = landing_event(
        kind=EventKind.MOVED,
        path=NOT_UTF8,
        src_path=os.fsdecode(b"/in/\xff\xfe.part"),
        meta={"root": "/in", "original": os.fsdecode(b"/mnt/\x80x")},
    )
    back = from_json(to_json(event))

    assert back == event
    assert os.fsencode(back.path) == b"/in/caf\xe9\n;.csv"
    assert back.src_path is not None
    assert os.fsencode(back.src_path) == b"/in/\xff\xfe.part"
    assert os.fsencode(back.meta["original"]) == b"/mnt/\x80x"


file_names = st.binary(min_size=1, max_size=40).filter(lambda b: b"/" not in b and b"\0" not in b)


@settings(max_examples=300, deadline=None)
@given(name=file_names, old_name=file_names, is_dir=st.booleans())
def test_any_file_name_bytes_round_trip_losslessly(
    name: bytes, old_name: bytes, is_dir: bool
) -> None:
    path_bytes = b"/watched/" + name
    src_bytes = b"/watched/sub/" + old_name
    event = Event(
        kind=EventKind.MOVED,
        path=os.fsdecode(path_bytes),
        src_path=os.fsdecode(src_bytes),
        is_dir=is_dir,
        source="landing/inotify",
        meta={"root": "/watched", "size": len(name)},
    )

    line = to_json(event)
    line.encode("utf-8")  # never raises: the line is valid UTF-8
    assert "\n" not in line
    back = from_json(line)

    assert back == event
    assert os.fsencode(back.path) == path_bytes
    assert back.src_path is not None
    assert os.fsencode(back.src_path) == src_bytes


# -- bad input ---------------------------------------------------------------------------


def _doc(**changes: object) -> str:
    doc = to_cloudevent(landing_event())
    for key, value in changes.items():
        if key.startswith("data_"):
            name = key.removeprefix("data_")
            if value is _DROP:
                del doc["data"][name]
            else:
                doc["data"][name] = value
        elif value is _DROP:
            del doc[key]
        else:
            doc[key] = value
    return json.dumps(doc)


_DROP = object()


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("", id="empty"),
        pytest.param("{not json", id="not-json"),
        pytest.param(b'{"id": "\xff"}', id="bytes-not-utf8"),
        pytest.param("[1, 2]", id="array"),
        pytest.param('"a string"', id="string"),
        pytest.param("null", id="null"),
        pytest.param("{}", id="empty-object"),
        pytest.param(_doc(data=_DROP), id="no-data"),
        pytest.param(_doc(data="x"), id="data-string"),
        pytest.param(_doc(data=[1]), id="data-list"),
        pytest.param(_doc(id=_DROP), id="no-id"),
        pytest.param(_doc(source=_DROP), id="no-source"),
        pytest.param(_doc(time=_DROP), id="no-time"),
        pytest.param(_doc(time="yesterday"), id="bad-time"),
        pytest.param(_doc(time=12), id="time-number"),
        pytest.param(_doc(data_kind=_DROP), id="no-kind"),
        pytest.param(_doc(data_kind="exploded"), id="unknown-kind"),
        pytest.param(_doc(data_path=_DROP), id="no-path"),
        pytest.param(_doc(data_path=42), id="path-number"),
        pytest.param(_doc(data_src_path=["/a"]), id="src-path-list"),
        pytest.param(_doc(data_path_b64="@@not base64@@"), id="bad-base64"),
        pytest.param(_doc(data_path_b64=7), id="base64-number"),
        pytest.param(_doc(data_is_dir="false"), id="is-dir-string"),
    ],
)
def test_bad_input_raises_event_decode_error(text: str | bytes) -> None:
    with pytest.raises(EventDecodeError):
        from_json(text)


def test_event_decode_error_is_a_value_error() -> None:
    # callers that already catch ValueError for bad input keep working
    assert issubclass(EventDecodeError, ValueError)


def test_a_batch_with_a_non_utf8_path_round_trips_item_by_item() -> None:
    from pipeline.cloudevents import from_json, to_json
    from pipeline.event import Event, EventKind

    paths = ["/in/a.csv", os.fsdecode(b"/in/caf\xe9.csv")]
    batch = Event(EventKind.BATCH, "/in", "p/debounce", True, meta={"paths": paths, "count": 2})
    line = to_json(batch)
    line.encode("utf-8")
    back = from_json(line)
    assert list(back.meta["paths"]) == paths
    assert back.meta["count"] == 2
    assert "paths_b64" not in back.meta


@given(
    name=st.text(min_size=1).filter(lambda t: "/" not in t and "\0" not in t),
    is_dir=st.booleans(),
    kind=st.sampled_from(list(EventKind)),
)
@settings(max_examples=300)
def test_the_fast_json_path_writes_exactly_what_the_general_one_does(
    name: str, is_dir: bool, kind: EventKind
) -> None:
    import json as _json

    from pipeline.cloudevents import _ENCODER, to_cloudevent
    from pipeline.event import Event as _Event

    event = _Event(kind, f"/in/{name}", "p/inotify", is_dir, meta={"root": "/in"})
    assert to_json(event) == _ENCODER.encode(to_cloudevent(event))
    assert _json.loads(to_json(event)) == to_cloudevent(event)
