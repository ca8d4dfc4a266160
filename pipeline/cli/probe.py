"""`pipeline check --connect`: probe every component of a plan, all at once, under a timeout."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from pipeline.clock import SystemClock
from pipeline.engine.pipeline import build_component
from pipeline.engine.sinkworker import reason_of
from pipeline.redact import redact

if TYPE_CHECKING:
    from pipeline.components import Component
    from pipeline.config.plan import Plan


async def probe_all(plan: Plan, timeout: float) -> list[str]:
    """One line per component that cannot reach what it talks to: `label (type): why`."""
    components: list[Component[Any]] = []
    for pipeline in plan.pipelines:
        parts = [*pipeline.sources, *pipeline.stages, *pipeline.sinks]
        if pipeline.dead_letter is not None:
            parts.append(pipeline.dead_letter)
        components += [build_component(p, pipeline.name, plan, SystemClock()) for p in parts]
    results = await asyncio.gather(*(_probe(c, timeout) for c in components))
    return [line for line in results if line is not None]


async def _probe(component: Component[Any], timeout: float) -> str | None:
    where = f"{component.context.label} ({component.type_name})"
    try:
        await asyncio.wait_for(component.probe(), timeout)
    except TimeoutError:
        return f"{where}: no answer within {timeout:g} s; is the host reachable?"
    except Exception as exc:
        return redact(f"{where}: {reason_of(exc)}")
    return None
