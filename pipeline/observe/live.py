"""The live status on a terminal, and the periodic summary line without one."""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING, Any

import structlog
from rich.console import Console
from rich.live import Live

from pipeline.engine.progress import ScanBoard
from pipeline.observe.render import status_view
from pipeline.observe.snapshot import ComponentStatus, RateMeter, readiness, snapshot

if TYPE_CHECKING:
    from pipeline.engine.runner import Runner

log = structlog.get_logger("pipeline.status")

REFRESH = 0.5
"""Seconds between redraws of the live status."""


class LiveStatus:
    """Redraws a compact status table at the bottom of the terminal until cancelled.

    Use it as a `run_plan` observer, with the logs routed through the same console
    (`pipeline.observe.terminal.route_output`) so that they scroll above it.
    """

    def __init__(
        self, console: Console, *, refresh: float = REFRESH, jobs: ScanBoard | None = None
    ) -> None:
        self.console = console
        self.refresh = refresh
        self.jobs = jobs
        self.started = time.monotonic()

    def render(self, runner: Runner, meter: RateMeter) -> Any:
        return status_view(
            snapshot(runner, meter),
            ready=readiness(runner),
            uptime=time.monotonic() - self.started,
            jobs=(self.jobs or runner.progress).jobs(),
        )

    async def __call__(self, runner: Runner) -> None:
        meter = RateMeter()
        # Redrawn from the event loop, not rich's refresh thread: the counters are only
        # ever read where they are written.
        with Live(
            console=self.console,
            auto_refresh=False,
            redirect_stdout=False,
            redirect_stderr=False,
        ) as live:
            try:
                while True:
                    live.update(self.render(runner, meter), refresh=True)
                    await asyncio.sleep(self.refresh)
            finally:
                live.update(self.render(runner, meter), refresh=True)


class PeriodicSummary:
    """Logs one `status` line every `interval` seconds, and a last one at the end."""

    def __init__(self, interval: float) -> None:
        self.interval = interval

    async def __call__(self, runner: Runner) -> None:
        meter = RateMeter(window=self.interval)
        snapshot(runner, meter)  # the first sample, so the first line has rates
        try:
            while True:
                await asyncio.sleep(self.interval)
                self.write(runner, meter)
        finally:
            self.write(runner, meter, final=True)

    @staticmethod
    def write(runner: Runner, meter: RateMeter, *, final: bool = False) -> None:
        fields: dict[str, Any] = {"final": True}
        if not final:  # at the end, readiness only says "stopping"
            ok, reason = readiness(runner)
            fields = {"ready": ok} if ok else {"ready": ok, "reason": reason}
        log.info("status", components=summary(snapshot(runner, meter)), **fields)


def summary(rows: list[ComponentStatus]) -> dict[str, dict[str, Any]]:
    """The numbers of each component that matter for its kind, keyed by its label."""
    out: dict[str, dict[str, Any]] = {}
    for row in rows:
        numbers: dict[str, Any] = {"type": row.type_name}
        if row.kind != "source":
            numbers["in"] = row.events_in
        if row.kind == "sink":
            numbers |= {
                "delivered": row.delivered,
                "queue": row.queue_depth,
                "retries": row.retries,
                "dead_lettered": row.dead_lettered,
            }
        else:
            numbers["out"] = row.events_out
        numbers["rate"] = row.rate
        if row.kind == "source" and row.restarts:
            numbers["restarts"] = row.restarts
        if row.last_error:
            numbers["last_error"] = row.last_error
        out[row.label] = numbers
    return out
