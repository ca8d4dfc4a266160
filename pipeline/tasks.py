"""Stopping background tasks for certain, even those that lose a cancellation."""

from __future__ import annotations

import asyncio
from typing import Any

CANCEL_AGAIN_AFTER = 1.0
"""Seconds a cancelled task may run on before it is cancelled once more."""


async def stop_tasks(
    *tasks: asyncio.Task[Any] | None, again_after: float = CANCEL_AGAIN_AFTER
) -> None:
    """Cancel `tasks` (None entries are skipped) and return once every one has ended.

    Use it wherever a component stops a task it started: in `close`, or in a `finally`
    of `run`. A task that caught its cancellation and went on is cancelled again every
    `again_after` seconds, so a stop never hangs on it. That happens with well-behaved
    code too: on Python 3.11, `asyncio.timeout` and `asyncio.wait_for` can drop a
    cancellation that arrives as their own timer fires (client libraries, redis-py among
    them, wrap every read in one).

    The tasks' own exceptions are retrieved, not raised: ask a task for its result if it
    matters. If the caller itself is cancelled meanwhile, that cancellation propagates.
    """
    started = [task for task in tasks if task is not None]
    pending = {task for task in started if not task.done()}
    while pending:
        for task in pending:
            task.cancel()
        _, pending = await asyncio.wait(pending, timeout=again_after)
    for task in started:
        if not task.cancelled():
            task.exception()  # marks it retrieved: no "exception never retrieved" log
