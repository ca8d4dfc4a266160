"""Options the NATS sink and source share: where the server is and how to log in."""

from __future__ import annotations

from typing import Literal
from urllib.parse import urlsplit

from pipeline import ComponentOptions, Duration
from pipeline.redact import redact
from pydantic import Field, SecretStr, field_validator

DEFAULT_URL = "nats://127.0.0.1:4222"


class ConnectionOptions(ComponentOptions):
    """How to reach the NATS server; the base of the sink's and the source's options."""

    url: str = DEFAULT_URL
    """Server URL, `nats://[user:password@]host:port` (or `tls://`); several, comma-separated,
    for a cluster. Put secrets in the environment: `nats://app:${NATS_PASSWORD}@host:4222`.
    Passwords never appear in logs or errors."""
    user: str | None = None
    """User name, when it is not in `url`."""
    password: SecretStr | None = None
    """Password for `user`, e.g. `${NATS_PASSWORD}`."""
    token: SecretStr | None = None
    """Authentication token (instead of user and password), e.g. `${NATS_TOKEN}`."""
    connect_timeout: Duration = 2.0
    """How long one connection attempt may take."""
    reconnect_wait: Duration = 0.5
    """Pause before reconnecting after the connection was lost or refused; doubled after
    each failed attempt, up to `reconnect_max_wait`."""
    reconnect_max_wait: Duration = 5.0
    """Longest pause between two reconnection attempts."""

    @field_validator("url")
    @classmethod
    def _check_urls(cls, value: str) -> str:
        for url in server_urls(value):
            parts = urlsplit(url)
            if parts.scheme not in ("nats", "tls", "ws", "wss") or not parts.hostname:
                raise ValueError(
                    f"{redact(url)!r} is not a NATS server URL; write it like "
                    "nats://127.0.0.1:4222 or nats://user:${NATS_PASSWORD}@host:4222"
                )
        return value

    def servers(self) -> list[str]:
        return server_urls(self.url)


def server_urls(text: str) -> list[str]:
    """The URLs of a comma-separated `url` option; a bare `host:port` gets `nats://`."""
    urls = [part.strip() for part in text.split(",") if part.strip()]
    return [url if "://" in url else f"nats://{url}" for url in urls] or [DEFAULT_URL]


class StreamSpec(ComponentOptions):
    """A JetStream stream the sink creates when it does not exist yet."""

    name: str = Field(pattern=r"^[^.*>\s]+$")
    """Stream name (no `.`, `*`, `>` or spaces), e.g. `FS`."""
    subjects: list[str] | None = None
    """Subjects the stream captures, e.g. `["fs.>"]`. Default: the sink's subject with
    each placeholder as a `*` wildcard (`fs.landing.*` for `fs.{pipeline}.{kind}`)."""
    duplicate_window: Duration = 120.0
    """How long the server remembers message ids (`Nats-Msg-Id`, the event id) to drop a
    message published twice: a retried publish inside this window is stored once."""
    max_age: Duration | None = None
    """Drop messages older than this; null: keep them until another limit applies."""
    max_msgs: int | None = Field(default=None, ge=1)
    """Keep at most this many messages (the oldest go first); null: no limit."""
    max_bytes: int | None = Field(default=None, ge=1)
    """Keep at most this many bytes of messages; null: no limit."""
    storage: Literal["file", "memory"] = "file"
    """`file`: messages survive a restart of the server. `memory`: faster, lost on restart."""
    replicas: int = Field(default=1, ge=1, le=5)
    """Copies kept in a JetStream cluster."""
