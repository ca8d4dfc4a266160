"""The serialized form of an event: CloudEvents 1.0, structured JSON mode.

Text that is not valid UTF-8 (a file name with arbitrary bytes) cannot be carried by
JSON as it is. Such a value is written twice: under its own key in a readable form
(undecodable bytes as ``\\xNN``) and under ``<key>_b64`` as the base64 of its exact
bytes. Readers prefer ``<key>_b64`` when present, so the round trip is lossless.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import re
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from pipeline.event import Event, EventKind

SPEC_VERSION = "1.0"
SOURCE_PREFIX = "fspipeline/"
TYPE_PREFIX = "fs."
_SEPARATORS = "/" + ("\\" if os.sep == "\\" else "")
B64_SUFFIX = "_b64"
_CORE_DATA_KEYS = frozenset({"kind", "path", "src_path", "is_dir"})
_CORE_TWINS = frozenset({"path" + B64_SUFFIX, "src_path" + B64_SUFFIX})
_KIND_TEXT = {kind: kind.value for kind in EventKind}
_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), default=str)
_json_text: Any = json.encoder.encode_basestring  # C-accelerated; quotes and escapes
_SOURCE_TEXT: dict[str, str] = {}


class EventDecodeError(ValueError):
    """A JSON document is not a CloudEvent of this project."""


def _is_utf8_clean(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _put_text(data: dict[str, Any], key: str, value: str) -> None:
    if _is_utf8_clean(value):
        data[key] = value
        return
    raw = os.fsencode(value)
    data[key] = raw.decode("utf-8", "backslashreplace")
    data[key + B64_SUFFIX] = base64.b64encode(raw).decode("ascii")


def _is_text_list(value: Any) -> bool:
    return isinstance(value, list | tuple) and all(isinstance(v, str) for v in value)


def _json_safe(value: Any) -> Any:
    if isinstance(value, str):
        return value if _is_utf8_clean(value) else os.fsencode(value).decode("utf-8", "replace")
    if isinstance(value, Mapping):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_json_safe(v) for v in value]
    return value


_last_time: list[Any] = [None, ""]  # events of one kernel read share one datetime object


def format_time(moment: datetime) -> str:
    """RFC 3339 in UTC with microseconds and a `Z`, as CloudEvents consumers expect."""
    if moment is _last_time[0]:
        return str(_last_time[1])
    text = moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    _last_time[0], _last_time[1] = moment, text
    return text


def subject_of(event: Event) -> str:
    """The path relative to the watched root when the source recorded one, else the path."""
    root = event.meta.get("root")
    if isinstance(root, str) and root:
        base = root.rstrip(_SEPARATORS)
        if event.path in (base, root):
            return "."
        below = len(event.path) > len(base) and event.path[len(base)] in _SEPARATORS
        if below and event.path.startswith(base):
            relative = event.path[len(base) + 1 :].lstrip(_SEPARATORS) or "."
            return relative.replace("\\", "/") if os.sep == "\\" else relative
    return event.path


def to_cloudevent(event: Event) -> dict[str, Any]:
    """Return the CloudEvents structured-mode mapping of `event` (JSON-ready)."""
    kind = _KIND_TEXT[event.kind]
    data: dict[str, Any] = {"kind": kind}
    _put_text(data, "path", event.path)
    if event.src_path is None:
        data["src_path"] = None
    else:
        _put_text(data, "src_path", event.src_path)
    data["is_dir"] = event.is_dir
    for key, value in event.meta.items():
        if key in _CORE_DATA_KEYS:
            continue
        if isinstance(value, str):
            _put_text(data, key, value)
        elif _is_text_list(value) and not all(_is_utf8_clean(v) for v in value):
            # A list of paths (a batch) with a non-UTF-8 one: exact bytes item by item.
            data[key] = [_json_safe(v) for v in value]
            data[key + B64_SUFFIX] = [base64.b64encode(os.fsencode(v)).decode() for v in value]
        else:
            data[key] = _json_safe(value)
    envelope: dict[str, Any] = {
        "specversion": SPEC_VERSION,
        "id": event.id,
        "source": SOURCE_PREFIX + event.source,
        "type": TYPE_PREFIX + kind,
        "time": format_time(event.time),
        # The subject is for display and routing; the lossless path is data.path(_b64).
        "subject": _json_safe(subject_of(event)),
        "datacontenttype": "application/json",
        "data": data,
    }
    return envelope


def to_json(event: Event) -> str:
    """One line of JSON (no newline), UTF-8 safe, keys in contract order."""
    meta = event.meta
    if event.src_path is None and len(meta) == 1:
        root = meta.get("root")
        if isinstance(root, str) and _is_utf8_clean(event.path) and _is_utf8_clean(root):
            return _plain_json(event, root)
    return _ENCODER.encode(to_cloudevent(event))


def _plain_json(event: Event, root: str) -> str:
    """The same text as the general path, written directly for the most common event
    (a UTF-8 path, no src_path, only `root` in meta): a third of a burst's CPU otherwise."""
    kind = _KIND_TEXT[event.kind]
    source = _SOURCE_TEXT.get(event.source)
    if source is None:
        source = _SOURCE_TEXT[event.source] = _json_text(SOURCE_PREFIX + event.source)
    return (
        f'{{"specversion":"1.0","id":{_json_text(event.id)},"source":{source},'
        f'"type":"fs.{kind}","time":"{format_time(event.time)}",'
        f'"subject":{_json_text(subject_of(event))},"datacontenttype":"application/json",'
        f'"data":{{"kind":"{kind}","path":{_json_text(event.path)},"src_path":null,'
        f'"is_dir":{"true" if event.is_dir else "false"},"root":{_json_text(root)}}}}}'
    )


def _take_text(data: Mapping[str, Any], key: str) -> str | None:
    encoded = data.get(key + B64_SUFFIX)
    if encoded is not None:
        try:
            return os.fsdecode(base64.b64decode(encoded, validate=True))
        except (binascii.Error, TypeError, ValueError) as exc:
            raise EventDecodeError(f"{key}{B64_SUFFIX} is not valid base64") from exc
    value = data.get(key)
    if value is None or isinstance(value, str):
        return value
    raise EventDecodeError(f"{key} must be a string, got {type(value).__name__}")


def _take_text_list(data: Mapping[str, Any], key: str) -> list[str]:
    try:
        return [
            os.fsdecode(base64.b64decode(item, validate=True)) for item in data[key + B64_SUFFIX]
        ]
    except (binascii.Error, TypeError, ValueError) as exc:
        raise EventDecodeError(f"{key}{B64_SUFFIX} must be a list of base64 strings") from exc


def _parse_time(value: Any) -> datetime:
    moment = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    # RFC 3339 wants an offset; without one the time is taken as UTC, which is what we write.
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _take_file_name(data: Mapping[str, Any], key: str) -> str | None:
    value = _take_text(data, key)
    if value is not None and "\0" in value:
        raise EventDecodeError(f"data.{key} holds a NUL byte, which no file name can")
    return value


def from_cloudevent(envelope: Mapping[str, Any]) -> Event:
    """Rebuild an event from its CloudEvents mapping; raises EventDecodeError."""
    try:
        data = envelope["data"]
        kind = EventKind(data["kind"])
        event_id = str(envelope["id"])
        source = str(envelope["source"])
        moment = _parse_time(envelope["time"])
    except (KeyError, TypeError, ValueError) as exc:
        raise EventDecodeError(f"not an fspipeline CloudEvent: {exc}") from exc
    if not isinstance(data, Mapping):
        raise EventDecodeError("data must be an object")
    is_dir = data.get("is_dir", False)
    if not isinstance(is_dir, bool):
        raise EventDecodeError(f"data.is_dir must be true or false, got {is_dir!r}")
    path = _take_file_name(data, "path")
    if path is None:
        raise EventDecodeError("data.path is missing")
    src_path = _take_file_name(data, "src_path")
    meta: dict[str, Any] = {}
    for key, value in data.items():
        if key in _CORE_DATA_KEYS or key in _CORE_TWINS:
            continue
        twin = data.get(key[: -len(B64_SUFFIX)]) if key.endswith(B64_SUFFIX) else None
        if isinstance(twin, str) or (isinstance(twin, list) and isinstance(value, list)):
            continue  # the lossless twin of a text value, read with that value
        if isinstance(value, str):
            meta[key] = _take_text(data, key)
        elif isinstance(value, list) and isinstance(data.get(key + B64_SUFFIX), list):
            meta[key] = _take_text_list(data, key)
        else:
            meta[key] = value
    return Event(
        id=event_id,
        kind=kind,
        path=path,
        src_path=src_path,
        is_dir=is_dir,
        time=moment,
        source=source.removeprefix(SOURCE_PREFIX),
        meta=meta,
    )


_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")
_SURROGATE_ESCAPE_BYTES = re.compile(rb"\\u[dD][89a-fA-F]")


def _has_lone_surrogate(value: Any) -> bool:
    if isinstance(value, str):
        return not _is_utf8_clean(value)
    if isinstance(value, Mapping):
        return any(_has_lone_surrogate(k) or _has_lone_surrogate(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_has_lone_surrogate(item) for item in value)
    return False


def from_json(text: str | bytes) -> Event:
    """Parse one JSON document into an event; raises EventDecodeError."""
    try:
        envelope = json.loads(text)
    except ValueError as exc:  # bad JSON, bad UTF-8, an integer of over 4300 digits
        raise EventDecodeError(f"invalid JSON: {exc}") from exc
    except RecursionError:
        raise EventDecodeError("invalid JSON: nested too deeply") from None
    if not isinstance(envelope, Mapping):
        raise EventDecodeError("a CloudEvent must be a JSON object")
    # "\ud800" is valid JSON but not text: such a value could never be written again.
    escaped = (
        _SURROGATE_ESCAPE_BYTES.search(text)
        if isinstance(text, bytes)
        else _SURROGATE_ESCAPE.search(text) or not _is_utf8_clean(text)
    )
    if escaped and _has_lone_surrogate(envelope):
        raise EventDecodeError("a string holds a lone surrogate (like \\ud800), which is not text")
    return from_cloudevent(envelope)
