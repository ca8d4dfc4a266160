"""One running pipeline: its components, the stage chain and the fan-out to sinks."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import structlog

from pipeline.components import Component, ComponentContext, Emit, Sink, Source, Stage
from pipeline.engine.deadletter import DeadLetters
from pipeline.engine.progress import ScanBoard
from pipeline.engine.queues import DeliveryQueue, MemoryQueue, SpoolQueue
from pipeline.engine.sinkworker import SinkWorker
from pipeline.engine.sinkworker import reason_of as _reason
from pipeline.engine.stats import ComponentStats
from pipeline.errors import PipelineError
from pipeline.receipts import CURRENT, Receipt, current_share, fail_current
from pipeline.tasks import stop_tasks

if TYPE_CHECKING:
    import pluggy

    from pipeline.clock import Clock
    from pipeline.config.plan import ComponentPlan, DeliveryPolicy, PipelinePlan, Plan
    from pipeline.engine.reload import Reuse
    from pipeline.event import Event
    from pipeline.expr import Expression

SPOOL_FILE = "spool.sqlite3"

SOURCE_RESTART_MIN = 1.0
SOURCE_RESTART_MAX = 30.0


def build_component(
    plan: ComponentPlan,
    pipeline: str,
    root: Plan,
    clock: Clock,
    progress: ScanBoard | None = None,
) -> Component[Any]:
    """One component of a plan, with its context, not yet opened."""
    reporter = {"progress": progress.reporter(plan.label)} if progress is not None else {}
    context = ComponentContext(
        pipeline=pipeline,
        label=plan.label,
        config_dir=root.config_dir,
        state_dir=root.state_dir / plan.label if root.state_dir else None,
        log=structlog.get_logger("pipeline").bind(
            pipeline=pipeline, component=plan.label, type=plan.spec.type_name
        ),
        clock=clock,
        **reporter,
    )
    return plan.spec.cls(plan.options, context)


def _queue(label: str, policy: DeliveryPolicy, root: Plan, shards: int) -> DeliveryQueue:
    if policy.spool:
        assert root.state_dir is not None  # the config loader refuses a spool without one
        return SpoolQueue(root.state_dir / SPOOL_FILE, label, shards, policy.spool_max)
    return MemoryQueue(policy.queue_size, shards)


class PipelineRuntime:
    """Builds, opens, runs and stops the components of one pipeline."""

    def __init__(
        self,
        plan: PipelinePlan,
        root: Plan,
        hooks: pluggy.HookRelay,
        clock: Clock,
        *,
        previous: PipelineRuntime | None = None,
        reuse: Reuse | None = None,
        progress: ScanBoard | None = None,
    ) -> None:
        """Build the components of `plan`; with `previous` (a hot reload), take over the
        sources and the sink workers that `reuse` names from it instead of building them."""
        self.name = plan.name
        self.plan = plan
        self.root = root
        self.clock = clock
        self.progress = progress
        self.log = structlog.get_logger("pipeline").bind(pipeline=plan.name)
        self._opened: list[Component[Any]] = []
        self.sources: list[Source[Any]]
        self.source_stats: list[ComponentStats]
        if previous is not None and reuse is not None and reuse.sources:
            self.sources, self.source_stats = previous.sources, previous.source_stats
            self._opened += previous.sources
        else:
            self.sources = [self._build(p) for p in plan.sources]  # type: ignore[misc]
            self.source_stats = [_stats_of(s) for s in self.sources]
        self.stages: list[Stage[Any]] = [self._build(p) for p in plan.stages]  # type: ignore[misc]
        self._stage_conditions = [p.when for p in plan.stages]
        self.stage_stats = [_stats_of(s) for s in self.stages]
        self.dead_letter_sink: Sink[Any] | None
        self.dead_letters: DeadLetters
        if previous is not None and reuse is not None and reuse.sinks:
            self.dead_letter_sink = previous.dead_letter_sink
            self.dead_letters = previous.dead_letters
            self._opened += [previous.dead_letter_sink] if previous.dead_letter_sink else []
        else:
            self.dead_letter_sink = self._build(plan.dead_letter) if plan.dead_letter else None  # type: ignore[assignment]
            self.dead_letters = DeadLetters(root.state_dir, hooks, self.dead_letter_sink)
        self.adopted: set[str] = set()
        """Labels of the sink workers taken over from the previous runtime."""
        self.workers = [self._worker(p, previous, reuse) for p in plan.sinks]
        self.taps: list[Callable[[Event], None]] = list(previous.taps) if previous else []
        """Called with every event that leaves the stages (the dashboard's live tail)."""
        self._source_tasks: list[asyncio.Task[None]] = []
        self._stage_tasks: list[asyncio.Task[None]] = []
        self._worker_tasks: dict[str, list[asyncio.Task[None]]] = {}
        if previous is not None:
            for label in self.adopted:
                self._worker_tasks[label] = previous._worker_tasks.pop(label, [])
            if reuse is not None and reuse.sources:
                self._source_tasks, previous._source_tasks = previous._source_tasks, []
        self._emits = self._chain()
        self._head = self._emits[0]
        """Where the sources' events enter; a hot reload re-points it at the new chain."""

    def _build(self, part: ComponentPlan) -> Component[Any]:
        return build_component(part, self.name, self.root, self.clock, self.progress)

    def _worker(
        self, plan: ComponentPlan, previous: PipelineRuntime | None, reuse: Reuse | None
    ) -> SinkWorker:
        assert plan.delivery is not None
        if previous is not None and reuse is not None and plan.label in reuse.sinks:
            worker = next(w for w in previous.workers if w.label == plan.label)
            self.adopted.add(worker.label)
            self._opened.append(worker.sink)
            return worker
        sink: Sink[Any] = self._build(plan)  # type: ignore[assignment]
        # A sink that takes overlapping sends gets one arrival-order lane, read by many.
        shards = 1 if sink.concurrent_sends() else plan.delivery.concurrency
        return SinkWorker(
            sink,
            plan.label,
            plan.delivery,
            queue=_queue(plan.label, plan.delivery, self.root, shards),
            dead_letters=self.dead_letters,
            clock=self.clock,
            when=plan.when,
        )

    # -- the chain ---------------------------------------------------------------

    def stats(self) -> list[ComponentStats]:
        """Every component's counters: sources, stages, then sinks, in config order."""
        return [*self.source_stats, *self.stage_stats, *(w.stats for w in self.workers)]

    def _chain(self) -> list[Emit]:
        """emits[i] hands an event to stage i (emits[len(stages)] fans out to the sinks)."""
        emits: list[Emit] = [self._fan_out]
        self._outs: list[Emit] = []
        """outs[i]: what stage i emits into, counted (for its timers and its flush too)."""
        for stage, when, stats in zip(
            reversed(self.stages),
            reversed(self._stage_conditions),
            reversed(self.stage_stats),
            strict=True,
        ):
            emits.insert(0, self._stage_entry(stage, emits[0], when, stats))
        return emits

    @staticmethod
    def _counted(after: Emit, stats: ComponentStats) -> Emit:
        async def downstream(event: Event) -> None:
            stats.events_out += 1
            await after(event)

        return downstream

    def _stage_entry(
        self, stage: Stage[Any], after: Emit, when: Expression | None, stats: ComponentStats
    ) -> Emit:
        downstream = self._counted(after, stats)
        self._outs.insert(0, downstream)

        async def enter(event: Event) -> None:
            stats.events_in += 1
            try:
                if when is not None and not when.matches(event):
                    await downstream(event)  # not for this stage: it passes by unchanged
                    return
                await stage.process(event, downstream)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                stage.log.error("stage failed on an event", path=event.path, exc_info=True)
                stats.error(_reason(exc))
                fail_current()
                await self.dead_letters.put(event, stage.context.label, _reason(exc))

        return enter

    async def _fan_out(self, event: Event) -> None:
        for tap in self.taps:
            tap(event)
        for worker in self.workers:
            when = worker.when
            if when is not None:
                try:
                    wanted = when.matches(event)
                except Exception as exc:
                    fail_current()
                    await self.dead_letters.put(event, worker.label, f"when: {_reason(exc)}")
                    continue
                if not wanted:
                    continue
            worker.stats.events_in += 1
            await worker.queue.put(event, current_share())

    # -- lifecycle ---------------------------------------------------------------

    async def open(self) -> None:
        """Open sinks, then stages, then sources; a failure closes what was opened."""
        components: list[Component[Any]] = [
            *([self.dead_letter_sink] if self.dead_letter_sink else []),
            *(w.sink for w in self.workers),
            *self.stages,
            *self.sources,
        ]
        taken_over = list(self._opened)
        for component in components:
            if component in taken_over:
                continue
            try:
                await component.open()
            except PipelineError:
                raise
            except Exception as exc:
                raise PipelineError(
                    f"{self.name}: {component.context.label} ({component.type_name}) failed "
                    f"to start: {_reason(exc)}"
                ) from exc
            finally:
                self._opened.append(component)

    def start(self) -> None:
        """Start the delivery lanes, the stages' timers and the sources not yet running."""
        for worker in self.workers:
            if worker.label in self.adopted:
                continue
            self._worker_tasks[worker.label] = [
                asyncio.create_task(worker.run_lane(lane), name=f"{worker.label}#{lane}")
                for lane in worker.lanes()
            ]
        for index, stage in enumerate(self.stages):
            task = asyncio.create_task(stage.run(self._outs[index]), name=stage.context.label)
            self._stage_tasks.append(task)
        if not self._source_tasks:
            for source, stats in zip(self.sources, self.source_stats, strict=True):
                task = asyncio.create_task(
                    self._supervise(source, stats), name=source.context.label
                )
                self._source_tasks.append(task)

    def redirect(self, successor: PipelineRuntime) -> None:
        """Hot reload: from now on, events of this runtime's sources enter `successor`."""
        self._head = successor._head
        if successor.sources is self.sources:
            for source in self.sources:
                if source in self._opened:
                    self._opened.remove(source)
        for label in successor.adopted:
            worker = next(w for w in self.workers if w.label == label)
            if worker.sink in self._opened:
                self._opened.remove(worker.sink)
        shared = successor.dead_letters is self.dead_letters
        if shared and self.dead_letter_sink is not None and self.dead_letter_sink in self._opened:
            self._opened.remove(self.dead_letter_sink)

    def _source_emit(self, source: Source[Any], stats: ComponentStats) -> Emit:
        """What a source emits into: the first stage, with a receipt if the source tracks."""
        runtime = self  # read `_head` per event: a hot reload may re-point it

        if not source.tracks_delivery:

            async def emit(event: Event) -> None:
                stats.events_out += 1
                await runtime._head(event)

            return emit

        async def emit_tracked(event: Event) -> None:
            stats.events_out += 1
            receipt = Receipt(source, event)
            token = CURRENT.set(receipt)
            try:
                await runtime._head(event)
            finally:
                CURRENT.reset(token)
                receipt.release()  # the chain call is done; the sink queues hold the rest

        return emit_tracked

    async def _supervise(self, source: Source[Any], stats: ComponentStats) -> None:
        """Run a source; if it crashes, log it and restart it with a growing pause."""
        delay = SOURCE_RESTART_MIN
        emit = self._source_emit(source, stats)
        while True:
            try:
                await source.run(emit)
                return
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                stats.error(_reason(exc))
                stats.failing = True
                stats.restarts += 1
                source.log.error(
                    "source failed; restarting it",
                    retry_in=delay,
                    error=_reason(exc),
                    exc_info=True,
                )
            await self.clock.sleep(delay)
            delay = min(SOURCE_RESTART_MAX, delay * 2)
            with contextlib.suppress(Exception):
                await source.close()
            try:
                await source.open()
                stats.failing = False
            except Exception as exc:
                stats.error(_reason(exc))
                source.log.error("source could not reopen", error=_reason(exc))

    async def stop_sources(self) -> None:
        """Stop the sources' tasks and close them; a delivery-tracking source stays open
        until `stop_sinks`, so that what the drain delivers is still acknowledged."""
        await _cancel(self._source_tasks)
        for source in self.sources:
            if not source.tracks_delivery:
                await self._close(source)

    async def flush_stages(self) -> None:
        """Stop stage timers, then flush stages in order so held events move downstream."""
        await _cancel(self._stage_tasks)
        for index, stage in enumerate(self.stages):
            try:
                await stage.flush(self._outs[index])
            except Exception:
                stage.log.error("stage failed to flush", exc_info=True)

    def _own_workers(self) -> list[SinkWorker]:
        """The workers this runtime still runs (not handed over to a successor)."""
        return [w for w in self.workers if w.label in self._worker_tasks]

    async def drain(self) -> None:
        """Return once every sink queue is empty and nothing is in flight."""
        for worker in self._own_workers():
            await worker.queue.join()

    async def stop_sinks(self) -> int:
        """Cancel the delivery tasks; dead-letter what they still held. Returns that count."""
        workers = self._own_workers()
        for label in list(self._worker_tasks):
            await _cancel(self._worker_tasks.pop(label))
        left = 0
        for worker in workers:
            left += await worker.abandon("not delivered before the shutdown deadline")
            worker.queue.close()
        sinks = [w.sink for w in workers]
        for component in [
            *self.stages,
            *sinks,
            *([self.dead_letter_sink] if self.dead_letter_sink else []),
            *(s for s in self.sources if s.tracks_delivery),
        ]:
            await self._close(component)
        return left

    async def _close(self, component: Component[Any]) -> None:
        if component not in self._opened:
            return
        self._opened.remove(component)
        try:
            await component.close()
        except Exception:
            component.log.error("failed to close", exc_info=True)


def _stats_of(component: Component[Any]) -> ComponentStats:
    context = component.context
    return ComponentStats(
        context.pipeline, context.label, component.kind.value, component.type_name
    )


async def _cancel(tasks: list[asyncio.Task[None]]) -> None:
    await stop_tasks(*tasks)
    tasks.clear()
