"""Turns what aio-pika raises into one line that says what is wrong and what to do."""

from __future__ import annotations

import asyncio
import re
from urllib.parse import unquote, urlsplit

from aiormq import exceptions as amqp
from pipeline.redact import redact

_REPLY = re.compile(
    r"(NOT_FOUND|ACCESS_REFUSED|PRECONDITION_FAILED|NOT_ALLOWED|RESOURCE_LOCKED)"
    r" - ([^\"]*)"
)


class BrokerError(ConnectionError):
    """RabbitMQ could not be used; the message is safe to log (the password is masked).

    A ConnectionError, so the engine logs a failed delivery without a traceback.
    """


def vhost_of(url: str) -> str:
    """The virtual host a URL names (`/` when it names none)."""
    path = urlsplit(url).path
    return unquote(path[1:]) if len(path) > 1 else "/"


def _broker_reply(exc: BaseException) -> str | None:
    found = _REPLY.search(str(exc))
    return f"{found.group(1)} - {found.group(2).strip()}" if found else None


def explain(exc: BaseException, url: str) -> str:
    """What went wrong talking to the broker at `url`, and what to do about it."""
    where = redact(url)
    reply = _broker_reply(exc)
    if isinstance(exc, amqp.ProbableAuthenticationError | amqp.AuthenticationError):
        return (
            f"RabbitMQ at {where} refused the login (ACCESS_REFUSED): check the user name and "
            "password in `url` (take the password from the environment, e.g. ${AMQP_PASSWORD})"
        )
    if isinstance(exc, amqp.PublishError):
        return unroutable(str(exc.args[0]) if exc.args else "returned", exc)
    if isinstance(exc, amqp.ChannelNotFoundEntity):
        return (
            f"{reply or exc} at {where}: create it, list it under `declare:` so that "
            "fspipeline declares it, or fix the name in the options"
        )
    if isinstance(exc, amqp.ChannelAccessRefused | amqp.ConnectionNotAllowed):
        return f"{reply or exc} at {where}: give the user permission on the vhost, or fix `url`"
    if isinstance(exc, amqp.ChannelPreconditionFailed):
        return (
            f"{reply or exc} at {where}: it exists with other settings than `declare:` asks "
            "for; make them match or delete it"
        )
    if isinstance(exc, amqp.InvalidFrameError) and "Connection.Close" in str(exc):
        return (
            f"RabbitMQ at {where} closed the connection while opening it: the virtual host "
            f"{vhost_of(url)!r} does not exist or the user may not use it"
        )
    if isinstance(exc, amqp.ConnectionClosed):
        return f"RabbitMQ at {where} closed the connection: {_os_reason(exc)}"
    if isinstance(exc, TimeoutError | asyncio.TimeoutError):
        return f"no answer from RabbitMQ at {where} in time; is it running and reachable?"
    if isinstance(exc, amqp.AMQPConnectionError | OSError):
        cause = _os_reason(exc)
        return f"cannot reach RabbitMQ at {where}: {cause}; is it running and is the URL right?"
    if isinstance(exc, amqp.DeliveryError):
        return f"RabbitMQ at {where} did not accept the message (nack): {reply or exc}"
    return redact(f"RabbitMQ at {where}: {type(exc).__name__}: {reply or exc}")


def unroutable(reply_text: str, exc: amqp.PublishError) -> str:
    delivery = exc.message.delivery if exc.message is not None else None
    exchange = getattr(delivery, "exchange", "?")
    routing_key = getattr(delivery, "routing_key", "?")
    return (
        f"RabbitMQ returned the message as unroutable ({reply_text}): no queue is bound to "
        f"exchange {exchange!r} for routing key {routing_key!r}; bind a queue (see `declare:`) "
        "or set `mandatory: false` to let the broker drop such messages"
    )


def _os_reason(exc: BaseException) -> str:
    args: tuple[object, ...] = exc.args
    if len(args) >= 2 and isinstance(args[0], int) and isinstance(args[1], str):
        return args[1]  # (errno, "Connect call failed ('127.0.0.1', 5999)")
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return redact(str(exc)) or type(exc).__name__


def broker_error(exc: BaseException, url: str) -> BrokerError:
    """A BrokerError explaining `exc`; raise it `from exc`."""
    return BrokerError(explain(exc, url))
