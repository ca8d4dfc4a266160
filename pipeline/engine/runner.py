"""Runs a Plan until asked to stop, then shuts down in order within the deadline."""

from __future__ import annotations

import asyncio
import contextlib
import signal
from typing import TYPE_CHECKING

import structlog

from pipeline.clock import Clock, SystemClock
from pipeline.engine.pipeline import PipelineRuntime

if TYPE_CHECKING:
    from pipeline.config.plan import Plan
    from pipeline.registry import Registry

log = structlog.get_logger("pipeline.engine")


class Runner:
    """Owns the pipelines of one plan. `run()` returns True when shutdown was clean."""

    def __init__(self, plan: Plan, registry: Registry, clock: Clock | None = None) -> None:
        self.plan = plan
        self.hooks = registry.manager.hook
        self.clock = clock or SystemClock()
        self.pipelines = [PipelineRuntime(p, plan, self.hooks, self.clock) for p in plan.pipelines]
        self.stopping = asyncio.Event()
        self.hurry = asyncio.Event()

    def request_stop(self) -> None:
        """First call: drain and stop. Second call: stop without waiting for the drain."""
        if self.stopping.is_set():
            log.warning("second stop request: not waiting for queues to drain")
            self.hurry.set()
        self.stopping.set()

    async def run(self) -> bool:
        names = [p.name for p in self.pipelines]
        try:
            for runtime in self.pipelines:
                await runtime.open()
        except BaseException:
            await self._shutdown(deadline=0.0)
            raise
        for runtime in self.pipelines:
            runtime.start()
            log.info("pipeline ready", pipeline=runtime.name)
        self.hooks.pipeline_startup(pipelines=names, config=self.plan.data)
        log.info("running; press Ctrl-C to stop", pipelines=names)
        await self.stopping.wait()
        clean = await self._shutdown(self.plan.shutdown_timeout)
        self.hooks.pipeline_shutdown(pipelines=names, clean=clean)
        return clean

    async def _shutdown(self, deadline: float) -> bool:
        log.info("stopping: sources closed, draining queues", deadline_s=deadline)
        for runtime in self.pipelines:
            await runtime.stop_sources()

        async def flush_and_drain() -> None:
            for runtime in self.pipelines:
                await runtime.flush_stages()
            for runtime in self.pipelines:
                await runtime.drain()

        drain = asyncio.create_task(flush_and_drain())
        hurry = asyncio.create_task(self.hurry.wait())
        done, _ = await asyncio.wait(
            {drain, hurry}, timeout=deadline, return_when="FIRST_COMPLETED"
        )
        clean = drain in done
        for task in (drain, hurry):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        left = 0
        for runtime in self.pipelines:
            left += await runtime.stop_sinks()
        if left:
            log.error("shutdown deadline passed; undelivered events were dead-lettered", count=left)
        dead = sum(runtime.dead_letters.count for runtime in self.pipelines)
        log.info("stopped", clean=clean and not left, dead_lettered=dead)
        return clean and not left


async def run_plan(plan: Plan, registry: Registry, *, handle_signals: bool = True) -> bool:
    """Run `plan` until SIGINT/SIGTERM; return True when every queue drained in time."""
    runner = Runner(plan, registry)
    loop = asyncio.get_running_loop()
    if handle_signals:
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, runner.request_stop)
    try:
        return await runner.run()
    finally:
        if handle_signals:
            for signum in (signal.SIGINT, signal.SIGTERM):
                loop.remove_signal_handler(signum)
