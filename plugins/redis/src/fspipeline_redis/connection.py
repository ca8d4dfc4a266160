"""Connecting to Redis: the connection options, the client, and errors a user can act on."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from pipeline import ComponentOptions, ConfigPath, Duration, PipelineError
from pipeline.redact import redact
from pydantic import field_validator
from redis.asyncio import Redis
from redis.asyncio.connection import Connection, ConnectionPool, parse_url
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import (
    AuthenticationError,
    AuthenticationWrongNumberOfArgsError,
    NoPermissionError,
    RedisError,
    ResponseError,
)

from fspipeline_redis.commands import key_type
from fspipeline_redis.packing import FASTER

SCHEMES = ("redis", "rediss", "unix")
FAILURES = (RedisError, OSError)
"""What a Redis call raises when the server is unreachable, refuses, or errs."""


class RedisConnectionOptions(ComponentOptions):
    """The options every Redis component shares: where the server is and how to reach it."""

    url: str = "redis://127.0.0.1:6379/0"
    """`redis://[[user]:password@]host[:port][/db]`, `rediss://…` for TLS, or
    `unix:///path/redis.sock`. Keep the password out of the file:
    `redis://:${REDIS_PASSWORD}@host:6379/0`. Logs and errors show it as `***`."""
    timeout: Duration = 5.0
    """How long connecting, and each call to Redis (a whole batch, for the sink), may take
    before the attempt counts as failed."""
    tls_ca_file: ConfigPath | None = None
    """With `rediss://`: the CA bundle that signed the server's certificate (default: the
    system's trusted CAs)."""

    @field_validator("url")
    @classmethod
    def _known_scheme(cls, url: str) -> str:
        scheme = urlsplit(url).scheme
        if scheme not in SCHEMES:
            raise ValueError(
                f"{redact(url)!r} is not a Redis URL; write it like redis://host:6379/0, "
                "redis://:PASSWORD@host:6379/0 or rediss://host:6380/0 (TLS)"
            )
        return url


class RedisUnavailable(PipelineError, ConnectionError):
    """Redis could not be reached, or refused the credentials; retried with backoff."""


class RedisCommandError(PipelineError):
    """Redis answered a command with an error (wrong key type, missing permission, …)."""


def make_client(options: RedisConnectionOptions, *, reply_timeout: float | None) -> Redis:
    """A client for `options.url`; it connects on first use, not here.

    `reply_timeout` bounds each reply; None leaves it to the caller to bound a whole
    call (a pipeline of many commands then skips a timer per reply).
    """
    settings: dict[str, Any] = {
        "socket_connect_timeout": options.timeout,
        "socket_timeout": reply_timeout,
        # One immediate retry replaces a pooled connection a restarted server dropped;
        # waiting between attempts is the engine's job (sinks) or the source's own loop.
        "retry": Retry(NoBackoff(), 1),
        # RESP2: the reply shapes every redis-py release and Redis server agree on (redis-py
        # 8 would speak RESP3), and a plain NOAUTH when a password is missing.
        "protocol": 2,
    }
    if options.tls_ca_file is not None:
        settings["ssl_ca_certs"] = str(options.tls_ca_file)
    settings.update(parse_url(options.url))  # host, port, db, credentials, TLS or socket
    chosen = settings.get("connection_class", Connection)
    settings["connection_class"] = FASTER.get(chosen, chosen)
    return Redis.from_pool(ConnectionPool(**settings))


def explain(exc: BaseException, options: RedisConnectionOptions) -> str:
    """What went wrong, where (the URL, password masked) and what to do about it."""
    where = redact(options.url)
    text = redact(str(exc).strip()) or type(exc).__name__
    if isinstance(exc, AuthenticationError | AuthenticationWrongNumberOfArgsError) or any(
        marker in text for marker in ("WRONGPASS", "NOAUTH", "without any password")
    ):
        return (
            f"Redis at {where} refused the credentials ({text}); check the user and "
            "password in `url` (or the ${VAR} it is read from)"
        )
    if isinstance(exc, NoPermissionError):
        return f"the Redis user of {where} may not do this ({text}); grant it with ACL SETUSER"
    if isinstance(exc, TimeoutError) or "Timeout" in type(exc).__name__:
        return (
            f"Redis at {where} did not answer within {options.timeout:g}s ({text}); check "
            "the host and port, and that no firewall drops the connection"
        )
    if isinstance(exc, ResponseError):
        return f"Redis at {where} refused a command: {text}"
    return (
        f"cannot reach Redis at {where} ({text}); check that redis-server runs there and "
        "that the host and port are right"
    )


def translate(exc: BaseException, options: RedisConnectionOptions) -> PipelineError:
    """The error to raise instead of `exc`: its message says what to do, without secrets."""
    message = explain(exc, options)
    if isinstance(exc, ResponseError) and not isinstance(exc, AuthenticationWrongNumberOfArgsError):
        if any(marker in message for marker in ("WRONGPASS", "NOAUTH", "without any password")):
            return RedisUnavailable(message)
        return RedisCommandError(message)
    return RedisUnavailable(message)


def opened(client: Redis | None, component: str) -> Redis:
    """The client of an open component (`component`, e.g. "the redis sink")."""
    if client is None:
        raise RedisCommandError(f"{component} is not open")
    return client


async def probe_stream(options: RedisConnectionOptions, stream: str | None, advice: str) -> None:
    """`check --connect`: reach Redis and, for a `stream` name, check that its key holds a
    stream or nothing yet (`advice`: what to do when it holds something else)."""
    client = make_client(options, reply_timeout=options.timeout)
    try:
        await client.ping()
        if stream is not None:
            kind = await key_type(client, stream)
            if kind not in ("none", "stream"):
                raise RedisCommandError(
                    f"key {stream!r} at {redact(options.url)} holds a {kind}, not a stream; "
                    + advice
                )
    except FAILURES as exc:
        raise translate(exc, options) from exc
    finally:
        await client.aclose()
