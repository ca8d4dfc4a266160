"""Where events go when they cannot be delivered, so that none is silently lost."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING

import structlog

from pipeline.cloudevents import format_time, to_cloudevent

if TYPE_CHECKING:
    import pluggy

    from pipeline.event import Event

DEAD_LETTER_FILE = "dead-letter.jsonl"
log = structlog.get_logger("pipeline.deadletter")


class DeadLetters:
    """Appends each given-up event, with its reason, to `<state_dir>/dead-letter.jsonl`.

    Without a state_dir the full event is written into the error log line instead, which
    is then the only record of it.
    """

    def __init__(self, state_dir: Path | None, hooks: pluggy.HookRelay) -> None:
        self.path = state_dir / DEAD_LETTER_FILE if state_dir else None
        self.hooks = hooks
        self.count = 0

    def put(self, event: Event, component: str, reason: str) -> None:
        self.count += 1
        envelope = to_cloudevent(event)
        if self.path is None:
            log.error("event dead-lettered", component=component, reason=reason, event=envelope)
        else:
            record = {
                "time": format_time(event.time.now(event.time.tzinfo)),
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
                log.error(
                    "event dead-lettered",
                    component=component,
                    reason=reason,
                    path=event.path,
                    id=event.id,
                    file=str(self.path),
                )
            except OSError as exc:
                log.error(
                    "event dead-lettered; the dead-letter file is not writable",
                    component=component,
                    reason=reason,
                    file=str(self.path),
                    error=str(exc),
                    event=envelope,
                )
        try:
            self.hooks.pipeline_event_dead_lettered(event=event, component=component, reason=reason)
        except Exception as exc:
            log.error("pipeline_event_dead_lettered hook failed", error=repr(exc))
