"""Hot reload: swap the pipelines whose config changed, without losing or repeating events.

For a changed pipeline the new runtime is built and started beside the old one. Parts
whose config did not change are handed over rather than rebuilt: the sources keep
watching (nothing falls into a gap), and each unchanged sink keeps its queue, spool and
delivery tasks. Then the sources are re-pointed at the new chain in one step; the old
stages are flushed into the old sinks, which drain what they hold, then close. Changed
sources are stopped before the new ones start; a source with `state_dir` catches up on
what changed in between.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import signal
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import structlog

from pipeline.engine.signals import on_signal
from pipeline.errors import ConfigError, PipelineError

if TYPE_CHECKING:
    from pipeline.config.plan import Plan
    from pipeline.engine.runner import Observer, Runner
    from pipeline.registry import Registry

log = structlog.get_logger("pipeline.reload")

CONFIG_POLL_INTERVAL = 0.25
"""How often the config file is checked for changes (it takes effect within a second)."""


@dataclasses.dataclass(frozen=True)
class Reuse:
    """What a changed pipeline's new runtime takes over from the old one."""

    sources: bool
    sinks: frozenset[str]
    """Labels of the sinks to keep (their queues and tasks included)."""


@dataclasses.dataclass(frozen=True)
class Changes:
    keep: tuple[str, ...]
    swap: dict[str, Reuse]
    add: tuple[str, ...]
    remove: tuple[str, ...]

    def __bool__(self) -> bool:
        return bool(self.swap or self.add or self.remove)


def _pipelines(plan: Plan) -> Mapping[str, Any]:
    pipelines = plan.data.get("pipelines")
    return pipelines if isinstance(pipelines, Mapping) else {}


def diff(old: Plan, new: Plan) -> Changes:
    """Which pipelines to keep, swap (and what each keeps), add and remove."""
    settings_changed = {k: v for k, v in old.data.items() if k != "pipelines"} != {
        k: v for k, v in new.data.items() if k != "pipelines"
    }
    before, after = _pipelines(old), _pipelines(new)
    keep, add, swap = [], [], {}
    for name in (p.name for p in new.pipelines):
        if name not in before:
            add.append(name)
        elif before[name] == after[name] and not settings_changed:
            keep.append(name)
        else:
            swap[name] = (
                Reuse(False, frozenset())
                if settings_changed
                else _reuse(before[name], after[name], name)
            )
    remove = tuple(name for name in before if name not in after)
    return Changes(tuple(keep), swap, tuple(add), remove)


def _reuse(before: Mapping[str, Any], after: Mapping[str, Any], name: str) -> Reuse:
    sources = before.get("sources") == after.get("sources")
    if before.get("dead_letter") != after.get("dead_letter"):
        return Reuse(sources, frozenset())  # every sink dead-letters somewhere new
    old_sinks, new_sinks = before.get("sinks") or [], after.get("sinks") or []
    kept = frozenset(
        f"{name}.sinks[{i}]"
        for i, sink in enumerate(new_sinks)
        if i < len(old_sinks) and old_sinks[i] == sink
    )
    return Reuse(sources, kept)


async def reload_from(path: Path, runner: Runner, registry: Registry) -> bool:
    """Load `path` and apply it; on a bad config log every located problem and keep going."""
    from pipeline.config import load_config

    try:
        plan = load_config(path, registry)
    except ConfigError as exc:
        log.error(
            "config change not applied: the new config has problems; still running the old one",
            config=str(path),
            problems=exc.problems,
        )
        for problem in exc.problems:
            log.error(problem)
        return False
    try:
        await runner.reload(plan)
    except PipelineError as exc:
        log.error("config change not applied", config=str(path), error=str(exc))
        return False
    return True


def _signature(path: Path) -> tuple[int, int, int, int] | None:
    try:
        info = path.stat()
    except OSError:
        return None
    return (info.st_ino, info.st_size, info.st_mtime_ns, info.st_ctime_ns)


def config_watcher(path: Path, registry: Registry) -> Observer:
    """An observer that reloads on SIGHUP and when `path` changes on disk.

    Call it right after loading the config: a change made while the pipelines start
    counts too."""
    loaded = _signature(path)

    async def watch(runner: Runner) -> None:
        hup = asyncio.Event()
        hangup = getattr(signal, "SIGHUP", None)  # none on Windows: file changes only
        undo = on_signal(hangup, hup.set) if hangup is not None else None
        seen = loaded
        try:
            while True:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(hup.wait(), CONFIG_POLL_INTERVAL)
                now = _signature(path)
                if hup.is_set() or (now != seen and now is not None):
                    why = "SIGHUP" if hup.is_set() else "the file changed"
                    hup.clear()
                    seen = now
                    log.info("reloading the config", config=str(path), because=why)
                    await reload_from(path, runner, registry)
        finally:
            if undo is not None:
                undo()

    return watch
