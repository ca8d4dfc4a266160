"""What went wrong talking to NATS, said so that a user knows what to do about it."""

from __future__ import annotations

import socket

import nats.errors
import nats.js.errors
from pipeline.redact import redact

AUTH_HINT = (
    "check the user and password (or token) in `url`, `user`, `password` or `token`, "
    "e.g. the value of ${NATS_PASSWORD}"
)


class NatsUnavailable(ConnectionError):
    """No usable connection to the NATS server (down, unreachable, credentials refused)."""


class NatsStreamMissing(ConnectionError):
    """The JetStream stream a component needs does not exist (or JetStream is off)."""


class NatsPublishFailed(ConnectionError):
    """The server did not store a published message (no acknowledgement, or an error)."""


def connect_failure(exc: BaseException | None, url: str, timeout: float) -> str:
    """Why a connection attempt failed, with what to check; `url` is shown redacted."""
    shown = redact(url)
    text = str(exc) if exc is not None else ""
    if isinstance(exc, nats.errors.AuthorizationError) or "authorization" in text.lower():
        reason = f"NATS at {shown} refused the credentials (Authorization Violation); {AUTH_HINT}"
    elif isinstance(exc, socket.gaierror):
        reason = f"cannot resolve the host of {shown} ({exc.strerror}); check the host name"
    elif isinstance(exc, ConnectionRefusedError):
        reason = (
            f"nothing accepts connections at {shown} (connection refused); is nats-server "
            "running and listening on that address and port?"
        )
    elif isinstance(exc, TimeoutError | nats.errors.TimeoutError):
        reason = (
            f"no answer from {shown} within {timeout:g} s; check the host and port (is it a "
            "NATS server? a firewall?)"
        )
    elif isinstance(exc, nats.errors.SecureConnRequiredError):
        reason = f"NATS at {shown} requires TLS; use a tls:// URL"
    elif isinstance(exc, OSError):
        reason = f"cannot connect to NATS at {shown}: {exc.strerror or text or type(exc).__name__}"
    elif exc is not None:
        reason = f"cannot connect to NATS at {shown}: {text or type(exc).__name__}"
    else:
        reason = f"cannot connect to NATS at {shown}"
    return redact(reason)


def api_failure(exc: BaseException, what: str, url: str) -> str:
    """Why a JetStream API request (stream or consumer info, creation) failed."""
    shown = redact(url)
    if isinstance(exc, nats.errors.NoRespondersError | nats.js.errors.ServiceUnavailableError):
        return (
            f"JetStream is not enabled on the NATS server at {shown} ({what} got no answer); "
            "start nats-server with -js"
        )
    if isinstance(exc, nats.errors.TimeoutError | TimeoutError):
        return f"no answer from JetStream at {shown} to {what}; is the server overloaded?"
    if isinstance(exc, nats.js.errors.APIError):
        return redact(f"{what} failed at {shown}: {exc.description or exc}")
    return redact(f"{what} failed at {shown}: {exc or type(exc).__name__}")
