"""redis-py asyncio connections that encode commands with hiredis, like its sync client.

redis-py's synchronous client packs commands with `hiredis.pack_command` (C) when hiredis
is installed; its asyncio connections always use the pure-Python packer, the largest
cost of the sink per event (an XADD of an event: 13 µs to pack in Python, under 2 µs
with hiredis). These subclasses pack with hiredis (redis-py's own
`HiredisRespSerializer` for the rare command with a multi-word name or a buffer
argument); replies, errors and pooling stay redis-py's.
"""

from __future__ import annotations

from typing import Any

import hiredis
from redis.asyncio.connection import (
    AbstractConnection,
    Connection,
    SSLConnection,
    UnixDomainSocketConnection,
)
from redis.connection import HiredisRespSerializer

_SERIALIZER = HiredisRespSerializer()


class _HiredisPacking(AbstractConnection):
    def pack_command(self, *args: Any) -> list[bytes]:
        name = args[0]
        if isinstance(name, str) and " " not in name:
            try:
                return [hiredis.pack_command(args)]  # the common case, without copies
            except TypeError:
                pass  # a bytearray or memoryview argument: the serializer converts it
        packed: list[bytes] = _SERIALIZER.pack(*args)
        return packed


class HiredisConnection(_HiredisPacking, Connection):
    """TCP (`redis://`)."""


class HiredisSSLConnection(_HiredisPacking, SSLConnection):
    """TLS (`rediss://`)."""


class HiredisUnixConnection(_HiredisPacking, UnixDomainSocketConnection):
    """A Unix socket (`unix://`)."""


FASTER: dict[type[AbstractConnection], type[AbstractConnection]] = {
    Connection: HiredisConnection,
    SSLConnection: HiredisSSLConnection,
    UnixDomainSocketConnection: HiredisUnixConnection,
}
"""The connection class redis-py picks for a URL -> the one packing with hiredis."""
