"""Options the mqtt sink and source share: the broker URL, protocol version and session."""

from __future__ import annotations

import os
import re
import socket
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pipeline import (
    ComponentOptions,
    ConfigPath,
    Duration,
    bind_constants,
    compile_template,
    process_constants,
    redact,
)
from pydantic import AfterValidator, BeforeValidator, Field, WithJsonSchema

DEFAULT_URL = "mqtt://127.0.0.1:1883"
SCHEMES = {"mqtt": 1883, "tcp": 1883, "mqtts": 8883, "ssl": 8883}
"""URL schemes and their default ports; `mqtts`/`ssl` connect with TLS."""


def _validate_url(url: str) -> str:
    parts = urlsplit(url)
    if parts.scheme not in SCHEMES or not parts.hostname:
        raise ValueError(
            f"{redact(url)!r} is not an MQTT broker URL; write it like "
            "mqtt://user:password@host:1883 (mqtts:// for TLS)"
        )
    try:
        parts.port  # noqa: B018 - raises for a port that is not a number
    except ValueError as exc:
        raise ValueError(f"{redact(url)!r}: {exc}") from None
    return url


def _validate_topic_template(text: str) -> str:
    compile_template(bind_constants(text, process_constants("pipeline")))
    if "+" in text or "#" in text:
        raise ValueError(
            f"{text!r}: a topic to publish to cannot hold the wildcards + or #; "
            "those belong in a source's topic filters"
        )
    return text


def _validate_topic_filter(text: str) -> str:
    levels = text.split("/")
    for index, level in enumerate(levels):
        if "#" in level and (level != "#" or index != len(levels) - 1):
            raise ValueError(f"{text!r}: # must be a whole level, and the last one (fs/#)")
        if "+" in level and level != "+":
            raise ValueError(f"{text!r}: + must be a whole level (fs/+/closed_write)")
    if not text:
        raise ValueError("a topic filter cannot be empty; `fs/#` takes every fs/ topic")
    return text


def _protocol(value: Any) -> Any:
    # YAML reads `protocol: 5` as a number and `protocol: 3.1.1` as text.
    return str(value) if isinstance(value, int | float) and not isinstance(value, bool) else value


BrokerUrl = Annotated[str, AfterValidator(_validate_url)]
TopicTemplate = Annotated[
    str,
    AfterValidator(_validate_topic_template),
    WithJsonSchema({"type": "string", "format": "fspipeline-template", "examples": ["fs/{kind}"]}),
]
"""A topic to publish to: the event placeholders plus `{pipeline}`, `{hostname}`, `{pid}`."""
TopicFilter = Annotated[str, AfterValidator(_validate_topic_filter)]
Protocol = Annotated[Literal["3.1.1", "5"], BeforeValidator(_protocol)]
QoS = Literal[0, 1, 2]


class ConnectionOptions(ComponentOptions):
    """How to reach the broker; the base of the sink's and the source's options."""

    url: BrokerUrl = DEFAULT_URL
    """Broker URL, `mqtt://user:password@host:1883` (`mqtts://` for TLS, default port 8883).
    Take the password from the environment: `mqtt://ingest:${MQTT_PASSWORD}@broker/`.
    It is masked in logs and errors."""
    protocol: Protocol = "5"
    """MQTT version: `5` (message properties carry the event id and type) or `3.1.1`
    (only the body does)."""
    client_id: str | None = Field(default=None, max_length=65535)
    """Client identifier. A persistent session belongs to it, so every running instance
    needs its own. Default: `fspipeline-<host name>-<component>`, plus the process id
    without a persistent session."""
    keepalive: Duration = Field(default=30.0, ge=1, le=65535)
    """Longest silence before the client pings the broker; a dead link is noticed within
    1.5 times this."""
    connect_timeout: Duration = Field(default=5.0, gt=0)
    """Longest wait for the broker to accept a connection (TCP and CONNACK)."""
    session_expiry: Duration = Field(default=7 * 86400.0, ge=0, le=2**32 - 1)
    """MQTT 5, with a persistent session: how long the broker keeps the session (and the
    messages queued for it) after a disconnect. MQTT 3.1.1 leaves this to the broker."""
    tls_ca_file: ConfigPath | None = None
    """With `mqtts://`: a PEM file of the certificate authorities to trust instead of the
    system's."""
    tls_insecure: bool = False
    """With `mqtts://`: skip checking that the certificate names the host (tests only)."""

    @property
    def uses_tls(self) -> bool:
        return SCHEMES[urlsplit(self.url).scheme] == 8883

    def default_client_id(self, label: str, *, per_process: bool) -> str:
        """The client id to use: the configured one, or one made of host and component."""
        if self.client_id:
            return self.client_id
        name = re.sub(r"[^A-Za-z0-9_-]+", "-", f"{socket.gethostname()}-{label}").strip("-")
        suffix = f"-{os.getpid()}" if per_process else ""
        return f"fspipeline-{name}{suffix}"
