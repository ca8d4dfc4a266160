"""Connecting to RabbitMQ, declaring the topology, and checking that names exist."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterable

import aio_pika
from aio_pika.abc import AbstractChannel, AbstractConnection, ExchangeType

from fspipeline_amqp.errors import BrokerError, broker_error
from fspipeline_amqp.options import ConnectionOptions, Topology

CLIENT_LOGGERS = ("aiormq", "aio_pika")


def quiet_client_logs() -> None:
    """Leave the client library's own log records out, unless someone configured them.

    Every failure they log (a refused connection, a connection the broker closed) reaches
    the components as an exception, which they log as one structured line saying what to
    do; the library's records repeat it as plain text with tracebacks.
    """
    for name in CLIENT_LOGGERS:
        logger = logging.getLogger(name)
        if logger.level == logging.NOTSET:
            logger.setLevel(logging.CRITICAL)


async def connect(options: ConnectionOptions, name: str) -> AbstractConnection:
    """A new connection (not a self-healing one: the components reconnect themselves, so
    they know which deliveries a lost channel took with it). Raises BrokerError."""
    try:
        return await aio_pika.connect(
            options.url,
            timeout=options.connect_timeout,
            client_properties={"connection_name": name},
        )
    except asyncio.CancelledError:
        raise
    except Exception as exc:
        raise broker_error(exc, options.url) from exc


async def close_quietly(connection: AbstractConnection | None) -> None:
    """Close a connection that may already be broken."""
    if connection is not None and not connection.is_closed:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(connection.close(), timeout=5)


async def declare(channel: AbstractChannel, topology: Topology, url: str) -> None:
    """Declare every exchange, then every queue with its bindings. Raises BrokerError."""
    try:
        for spec in topology.exchanges:
            await channel.declare_exchange(
                spec.name,
                ExchangeType(spec.type),
                durable=spec.durable,
                auto_delete=spec.auto_delete,
                arguments=spec.arguments or None,
            )
        for queue_spec in topology.queues:
            queue = await channel.declare_queue(
                queue_spec.name,
                durable=queue_spec.durable,
                arguments=queue_spec.queue_arguments() or None,
            )
            for binding in queue_spec.bindings:
                await queue.bind(binding.exchange, routing_key=binding.routing_key)
    except asyncio.CancelledError:
        raise
    except Exception as exc:
        raise broker_error(exc, url) from exc


async def check_exist(
    connection: AbstractConnection,
    url: str,
    *,
    exchanges: Iterable[str] = (),
    queues: Iterable[str] = (),
) -> None:
    """Passively declare each name: raises BrokerError naming the first that is missing.

    A failed passive declaration closes its channel, so each check gets a fresh one.
    """
    checks = [("exchange", name) for name in exchanges] + [("queue", name) for name in queues]
    for what, name in checks:
        channel = await connection.channel(publisher_confirms=False)
        try:
            if what == "exchange":
                await channel.get_exchange(name, ensure=True)
            else:
                await channel.get_queue(name, ensure=True)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            raise broker_error(exc, url) from exc
        finally:
            if not channel.is_closed:
                with contextlib.suppress(Exception):
                    await channel.close()


async def probe(
    options: ConnectionOptions,
    name: str,
    *,
    exchanges: Iterable[str] = (),
    queues: Iterable[str] = (),
) -> None:
    """Connect, check that what the options name exists (unless `declare:` creates it).

    The exchanges that declared queues are bound to or dead-letter to are checked too:
    RabbitMQ accepts a dead-letter exchange that does not exist and then drops the messages.
    """
    topology = options.declare or Topology()
    wanted = list(exchanges)
    for queue in topology.queues:
        wanted += [binding.exchange for binding in queue.bindings]
        if queue.dead_letter_exchange:
            wanted.append(queue.dead_letter_exchange)
    connection = await connect(options, name)
    try:
        await check_exist(
            connection,
            options.url,
            exchanges=dict.fromkeys(e for e in wanted if e and not topology.declares_exchange(e)),
            queues=[q for q in queues if not topology.declares_queue(q)],
        )
    finally:
        await close_quietly(connection)


__all__ = [
    "BrokerError",
    "check_exist",
    "close_quietly",
    "connect",
    "declare",
    "probe",
    "quiet_client_logs",
]
