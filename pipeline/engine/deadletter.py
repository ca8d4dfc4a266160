"""Where events go when they cannot be delivered, so that none is silently lost."""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import structlog

from pipeline.cloudevents import format_time, to_cloudevent
from pipeline.redact import redact

if TYPE_CHECKING:
    import pluggy

    from pipeline.components import Sink
    from pipeline.event import Event

DEAD_LETTER_FILE = "dead-letter.jsonl"
log = structlog.get_logger("pipeline.deadletter")


class DeadLetters:
    """Takes each given-up event with its reason, and keeps it somewhere durable.

    With a `dead_letter:` sink configured for the pipeline, the event goes there with
    `meta.dead_letter = {reason, component}`. Otherwise, or when that sink fails too, it
    is appended to `<state_dir>/dead-letter.jsonl`; without a state_dir the full event is
    written into the error log line, which is then the only record of it.
    """

    def __init__(
        self,
        state_dir: Path | None,
        hooks: pluggy.HookRelay,
        sink: Sink[Any] | None = None,
    ) -> None:
        self.path = state_dir / DEAD_LETTER_FILE if state_dir else None
        self.hooks = hooks
        self.sink = sink
        self.count = 0

    async def put(self, event: Event, component: str, reason: str) -> None:
        reason = redact(reason)  # often a client's exception text, quoting its URL
        self.count += 1
        if not (self.sink is not None and await self._to_sink(event, component, reason)):
            self._to_file(event, component, reason)
        try:
            self.hooks.pipeline_event_dead_lettered(event=event, component=component, reason=reason)
        except Exception as exc:
            log.error("pipeline_event_dead_lettered hook failed", error=repr(exc))

    async def _to_sink(self, event: Event, component: str, reason: str) -> bool:
        assert self.sink is not None
        marked = event.with_meta(dead_letter={"reason": reason, "component": component})
        try:
            await self.sink.send(marked)
        except Exception as exc:
            log.error(
                "the dead-letter sink failed too; using the dead-letter file",
                component=component,
                error=f"{type(exc).__name__}: {exc}",
            )
            return False
        log.error(
            "event dead-lettered",
            component=component,
            reason=reason,
            path=event.path,
            id=event.id,
            to=self.sink.context.label,
        )
        return True

    def _to_file(self, event: Event, component: str, reason: str) -> None:
        envelope = to_cloudevent(event)
        if self.path is None:
            log.error(
                "event dead-lettered", component=component, reason=reason, cloudevent=envelope
            )
            return
        record = {
            "time": format_time(datetime.now(UTC)),
            "component": component,
            "reason": reason,
            "event": envelope,
        }
        line = json.dumps(record, ensure_ascii=False, default=str) + "\n"
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            try:
                os.write(fd, line.encode("utf-8"))
            finally:
                os.close(fd)
        except OSError as exc:
            log.error(
                "event dead-lettered; the dead-letter file is not writable",
                component=component,
                reason=reason,
                file=str(self.path),
                error=str(exc),
                cloudevent=envelope,
            )
            return
        log.error(
            "event dead-lettered",
            component=component,
            reason=reason,
            path=event.path,
            id=event.id,
            file=str(self.path),
        )
