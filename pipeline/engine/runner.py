"""Runs a Plan until asked to stop, then shuts down in order within the deadline."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import signal
import sys
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING

import structlog

from pipeline.clock import Clock, SystemClock
from pipeline.engine.pipeline import PipelineRuntime
from pipeline.engine.progress import ScanBoard
from pipeline.engine.signals import on_signal
from pipeline.errors import PipelineError
from pipeline.tasks import stop_tasks

if TYPE_CHECKING:
    from pipeline.config.plan import PipelinePlan, Plan
    from pipeline.engine.reload import Changes, Reuse
    from pipeline.engine.stats import ComponentStats
    from pipeline.event import Event
    from pipeline.registry import Registry

log = structlog.get_logger("pipeline.engine")


class Runner:
    """Owns the pipelines of one plan. `run()` returns True when shutdown was clean."""

    def __init__(self, plan: Plan, registry: Registry, clock: Clock | None = None) -> None:
        self.plan = plan
        self.hooks = registry.manager.hook
        self.clock = clock or SystemClock()
        self.progress = ScanBoard()
        """Long jobs the components report (walks, rescans, catch-ups), for the status views."""
        self._taps: list[Callable[[str, Event], None]] = []
        self.pipelines = [self._runtime(p, plan) for p in plan.pipelines]
        self.stopping = asyncio.Event()
        self.hurry = asyncio.Event()
        self.started = asyncio.Event()
        """Set once every pipeline is open and running."""
        self._reloading = asyncio.Lock()

    def stats(self) -> list[ComponentStats]:
        """Every component's counters, pipeline by pipeline."""
        return [stats for runtime in self.pipelines for stats in runtime.stats()]

    @property
    def ready(self) -> bool:
        """Running, with every source watching (none crashed and waiting to restart)."""
        return (
            self.started.is_set()
            and not self.stopping.is_set()
            and not any(s.failing for r in self.pipelines for s in r.source_stats)
        )

    def _runtime(
        self,
        part: PipelinePlan,
        plan: Plan,
        previous: PipelineRuntime | None = None,
        reuse: Reuse | None = None,
    ) -> PipelineRuntime:
        runtime = PipelineRuntime(
            part,
            plan,
            self.hooks,
            self.clock,
            previous=previous,
            reuse=reuse,
            progress=self.progress,
        )
        if previous is None:
            runtime.taps = [functools.partial(tap, part.name) for tap in self._taps]
        return runtime

    def add_tap(self, tap: Callable[[str, Event], None]) -> None:
        """Call `tap(pipeline, event)` for every event that leaves the stages of a pipeline
        (pipelines a hot reload adds included)."""
        self._taps.append(tap)
        for runtime in self.pipelines:
            runtime.taps.append(functools.partial(tap, runtime.name))

    async def reload(self, plan: Plan) -> None:
        """Apply a new plan to the running pipelines (see pipeline.engine.reload)."""
        from pipeline.engine.reload import diff

        async with self._reloading:
            changes = diff(self.plan, plan)
            if changes:
                await self._apply(plan, changes)
            else:
                log.info("config reloaded: nothing changed")
            self.plan = plan

    async def _apply(self, plan: Plan, changes: Changes) -> None:
        by_name = {runtime.name: runtime for runtime in self.pipelines}
        fresh: dict[str, PipelineRuntime] = {}
        for part in plan.pipelines:
            if part.name in changes.swap or part.name in changes.add:
                fresh[part.name] = self._runtime(
                    part, plan, by_name.get(part.name), changes.swap.get(part.name)
                )
        try:
            for runtime in fresh.values():
                await runtime.open()
        except BaseException:
            for runtime in fresh.values():
                await runtime.stop_sinks()
            raise
        for name, runtime in fresh.items():
            old = by_name.get(name)
            if old is not None and not changes.swap[name].sources:
                await old.stop_sources()  # changed sources: the old stop before the new start
            runtime.start()
            if old is not None:
                old.redirect(runtime)
        retiring = [by_name[name] for name in (*changes.swap, *changes.remove)]
        for old in retiring:
            await old.stop_sources()  # a no-op for sources handed over
            await old.flush_stages()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(
                asyncio.gather(*(old.drain() for old in retiring)), self.plan.shutdown_timeout
            )
        for old in retiring:
            await old.stop_sinks()
        self.pipelines = [fresh.get(p.name) or by_name[p.name] for p in plan.pipelines]
        log.info(
            "config reloaded",
            kept=list(changes.keep),
            swapped={
                name: {"sources_kept": reuse.sources, "sinks_kept": sorted(reuse.sinks)}
                for name, reuse in changes.swap.items()
            },
            added=list(changes.add),
            removed=list(changes.remove),
        )

    def _drop_privileges(self, user: str) -> None:
        """Become `user` now that every privileged open is done, keeping only the
        capabilities the components still need; the state_dir becomes theirs."""
        if sys.platform != "linux":
            raise PipelineError("run_as works on Linux only; remove it from the config")
        import shutil

        from pipeline.linux.privileges import PrivilegeError, drop_to, lookup

        keep = sorted(
            {
                capability
                for runtime in self.pipelines
                for component in [
                    *runtime.sources,
                    *runtime.stages,
                    *(w.sink for w in runtime.workers),
                ]
                for capability in component.capabilities_after_start
            }
        )
        try:
            account = lookup(user)
            if self.plan.state_dir is not None and os.geteuid() == 0:
                self.plan.state_dir.mkdir(parents=True, exist_ok=True)  # made later as the user
                for folder, _, files in os.walk(self.plan.state_dir):
                    shutil.chown(folder, account.pw_uid, account.pw_gid)
                    for name in files:
                        shutil.chown(os.path.join(folder, name), account.pw_uid, account.pw_gid)
            drop_to(user, keep)
        except (PrivilegeError, OSError) as exc:
            raise PipelineError(f"run_as {user}: {exc}") from exc
        log.info("dropped privileges", user=account.pw_name, uid=account.pw_uid, kept=keep or None)

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
        if self.plan.run_as is not None:
            try:
                self._drop_privileges(self.plan.run_as)
            except BaseException:
                await self._shutdown(deadline=0.0)
                raise
        for runtime in self.pipelines:
            runtime.start()
            log.info("pipeline ready", pipeline=runtime.name)
        self.started.set()
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
        await stop_tasks(drain, hurry)
        left = 0
        for runtime in self.pipelines:
            left += await runtime.stop_sinks()
        if left:
            log.error("shutdown deadline passed; undelivered events were dead-lettered", count=left)
        dead = sum(runtime.dead_letters.count for runtime in self.pipelines)
        log.info("stopped", clean=clean and not left, dead_lettered=dead)
        return clean and not left


Observer = Callable[["Runner"], Awaitable[None]]
"""Runs beside the pipelines once they started (live status, HTTP endpoint); cancelled at
the end of the run."""


async def run_plan(
    plan: Plan,
    registry: Registry,
    *,
    handle_signals: bool = True,
    observers: Sequence[Observer] = (),
) -> bool:
    """Run `plan` until SIGINT/SIGTERM; return True when every queue drained in time."""
    runner = Runner(plan, registry)
    undo = (
        [on_signal(signum, runner.request_stop) for signum in (signal.SIGINT, signal.SIGTERM)]
        if handle_signals
        else []
    )
    watching = [asyncio.create_task(_observe(runner, observer)) for observer in observers]
    try:
        return await runner.run()
    finally:
        await stop_tasks(*watching)
        for restore in undo:
            restore()


async def _observe(runner: Runner, observer: Observer) -> None:
    await runner.started.wait()
    try:
        await observer(runner)
    except asyncio.CancelledError:
        raise
    except Exception:
        log.error("an observer failed; the pipelines go on", exc_info=True)
