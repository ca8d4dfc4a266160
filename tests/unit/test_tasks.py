"""stop_tasks: a stop never hangs on a task that lost its cancellation."""

from __future__ import annotations

import asyncio
import time

import pytest

from pipeline import stop_tasks


async def stubborn(swallowed: list[int], times: int) -> None:
    """Catches its first `times` cancellations and carries on, as a library might."""
    while True:
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            if len(swallowed) == times:
                raise
            swallowed.append(1)


def test_a_task_that_swallowed_its_cancellation_is_cancelled_again() -> None:
    async def scenario() -> None:
        swallowed: list[int] = []
        task = asyncio.create_task(stubborn(swallowed, times=2))
        await asyncio.sleep(0)
        started = time.monotonic()
        await stop_tasks(task, again_after=0.05)
        assert task.cancelled()
        assert len(swallowed) == 2
        assert time.monotonic() - started < 2

    asyncio.run(scenario())


def test_failures_and_none_entries_are_taken_without_raising() -> None:
    async def fails() -> None:
        raise ValueError("boom")

    async def scenario() -> None:
        failed = asyncio.create_task(fails())
        await asyncio.sleep(0)
        sleeping = asyncio.create_task(asyncio.sleep(3600))
        await stop_tasks(failed, None, sleeping)
        assert isinstance(failed.exception(), ValueError)
        assert sleeping.cancelled()

    asyncio.run(scenario())


def test_the_callers_own_cancellation_is_not_swallowed() -> None:
    async def stopper(target: asyncio.Task[None]) -> None:
        await stop_tasks(target, again_after=10)

    async def scenario() -> None:
        swallowed: list[int] = []
        target = asyncio.create_task(stubborn(swallowed, times=1))
        await asyncio.sleep(0)
        stopping = asyncio.create_task(stopper(target))
        await asyncio.sleep(0.05)
        stopping.cancel()
        with pytest.raises(asyncio.CancelledError):
            await stopping
        target.cancel()
        with pytest.raises(asyncio.CancelledError):
            await target

    asyncio.run(scenario())
