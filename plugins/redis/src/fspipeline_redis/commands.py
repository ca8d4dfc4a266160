"""The stream commands the source sends, with the reply types of a bytes (non-decoding) client.

redis-py types its replies as wide unions (bytes or str, RESP2 or RESP3 shapes); these
wrappers state what our clients actually get, so the rest of the plugin stays typed.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any

from redis.exceptions import ResponseError

from fspipeline_redis.entries import Fields

if TYPE_CHECKING:
    from redis.asyncio import Redis


@dataclasses.dataclass(frozen=True)
class Group:
    """Where a source reads: the stream, its consumer group, this consumer, the dead letters."""

    stream: str
    group: str
    consumer: str
    dead_letter_stream: str


StreamEntry = tuple[bytes, Fields | None]
"""An entry id and its fields; None when the entry was deleted while pending."""


async def create_group(client: Redis, group: Group, start_id: str) -> bool:
    """XGROUP CREATE … MKSTREAM; False when the group already existed."""
    try:
        await client.xgroup_create(group.stream, group.group, id=start_id, mkstream=True)
    except ResponseError as exc:
        if "BUSYGROUP" in str(exc):
            return False
        raise
    return True


async def read_group(
    client: Redis, group: Group, position: bytes | str, count: int, block_ms: int | None = None
) -> list[StreamEntry]:
    """XREADGROUP: `>` for new entries, an id for this consumer's pending ones after it."""
    reply: Any = await client.xreadgroup(
        group.group, group.consumer, {group.stream: position}, count=count, block=block_ms
    )
    if not reply:
        return []
    entries: list[tuple[bytes, Fields | None]] = reply[0][1]
    return entries


async def autoclaim(
    client: Redis, group: Group, idle_ms: int, cursor: bytes | str, count: int
) -> tuple[bytes, list[StreamEntry], list[bytes]]:
    """XAUTOCLAIM: the next cursor, the claimed entries and the ids of deleted ones."""
    reply: Any = await client.xautoclaim(
        group.stream,
        group.group,
        group.consumer,
        min_idle_time=idle_ms,
        start_id=cursor,
        count=count,
    )
    deleted: list[bytes] = reply[2] if len(reply) > 2 else []  # Redis 7 lists them
    claimed = [(entry_id, fields) for entry_id, fields in reply[1] if entry_id is not None]
    return reply[0], claimed, deleted


async def claim_again(client: Redis, group: Group, entry_ids: list[bytes]) -> None:
    """XCLAIM … JUSTID: reset the idle time of entries this consumer still works on."""
    await client.xclaim(
        group.stream,
        group.group,
        group.consumer,
        min_idle_time=0,
        message_ids=list(entry_ids),
        justid=True,
    )


async def key_type(client: Redis, key: str) -> str:
    """`none`, `stream`, `string`, … for `key`."""
    reply: Any = await client.type(key)
    return reply.decode() if isinstance(reply, bytes) else str(reply)
