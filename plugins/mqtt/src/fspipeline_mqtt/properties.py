"""The MQTT 5 properties of an event's message, encoded once per message by hand.

paho's generic `Properties` encoder looks every name up in tables on each call; for the
three properties a message carries it cost more than the rest of a publish. The wire
format (MQTT 5.0 section 2.2.2) is small: a variable byte integer length, then each
property as its identifier byte and its value (strings as 2-byte length + UTF-8).
"""

from __future__ import annotations

from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties, VariableByteIntegers

CONTENT_TYPE = "application/cloudevents+json"
_CONTENT_TYPE = 0x03
_USER_PROPERTY = 0x26


def _text(value: str) -> bytes:
    data = value.encode("utf-8")
    return len(data).to_bytes(2, "big") + data


_CONTENT = bytes([_CONTENT_TYPE]) + _text(CONTENT_TYPE)
_ID_KEY = bytes([_USER_PROPERTY]) + _text("id")
_TYPE_KEY = bytes([_USER_PROPERTY]) + _text("type")


class EventProperties(Properties):
    """PUBLISH properties: content type `application/cloudevents+json` and the user
    properties `id` and `type`, already encoded; paho only calls `pack()`."""

    def __init__(self, event_id: str, event_type: str) -> None:
        # Properties.__setattr__ accepts only property names: set ours past it.
        object.__setattr__(self, "packetType", PacketTypes.PUBLISH)
        body = _CONTENT + _ID_KEY + _text(event_id) + _TYPE_KEY + _text(event_type)
        length: bytes = VariableByteIntegers.encode(len(body))  # type: ignore[no-untyped-call]
        object.__setattr__(self, "_packed", length + body)
        object.__setattr__(self, "_shown", f"[ContentType: {CONTENT_TYPE}, id: {event_id}]")

    def pack(self) -> bytes:
        packed: bytes = object.__getattribute__(self, "_packed")
        return packed

    def __str__(self) -> str:
        shown: str = object.__getattribute__(self, "_shown")
        return shown

    __repr__ = __str__
