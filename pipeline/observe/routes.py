"""The HTTP endpoint's routes: health, readiness, metrics, stats, the live tail, the page."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import time
from importlib import resources
from typing import TYPE_CHECKING

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry

from pipeline.cloudevents import to_json
from pipeline.observe.auth import loopback_host_only, require_token
from pipeline.observe.metrics import exposition, metrics_registry
from pipeline.observe.snapshot import RateMeter, readiness, snapshot
from pipeline.observe.tail import EventTail

if TYPE_CHECKING:
    from pipeline.engine.runner import Runner

HEARTBEAT = 15.0
"""Seconds of silence after which the live tail sends a comment, so proxies keep it open."""
COALESCE = 0.05
"""Seconds a live-tail follower waits after a wake-up, so a burst goes out in one write."""
HISTORY = 100
"""Events a new live-tail follower gets from before it connected."""

PAGE_HEADERS = {
    "Cache-Control": "no-store",
    "X-Content-Type-Options": "nosniff",
    # Everything the page needs is inline or from this endpoint: nothing else may load.
    "Content-Security-Policy": "default-src 'none'; script-src 'unsafe-inline'; "
    "style-src 'unsafe-inline'; connect-src 'self'; img-src data:",
}


@dataclasses.dataclass
class EndpointState:
    """What the handlers read; `runner` is set once the pipelines have started."""

    tail: EventTail
    meter: RateMeter = dataclasses.field(default_factory=RateMeter)
    runner: Runner | None = None
    started: float = dataclasses.field(default_factory=time.monotonic)
    registry: CollectorRegistry = dataclasses.field(init=False)

    def __post_init__(self) -> None:
        self.registry = metrics_registry(lambda: self.runner)


STATE = web.AppKey("state", EndpointState)
DASHBOARD = web.AppKey("dashboard", bytes)


def build_app(
    state: EndpointState, token: str | None = None, *, loopback: bool = False
) -> web.Application:
    middlewares = [loopback_host_only()] if loopback else []
    app = web.Application(middlewares=[*middlewares, *([require_token(token)] if token else [])])
    app[STATE] = state
    app[DASHBOARD] = resources.files("pipeline.observe").joinpath("dashboard.html").read_bytes()
    app.router.add_get("/", dashboard)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/api/stats", stats)
    app.router.add_get("/events", events)
    return app


async def healthz(request: web.Request) -> web.Response:
    return web.Response(text="ok\n")


async def readyz(request: web.Request) -> web.Response:
    ok, reason = readiness(request.app[STATE].runner)
    return web.Response(text=reason + "\n", status=200 if ok else 503)


async def metrics(request: web.Request) -> web.Response:
    body = exposition(request.app[STATE].registry)
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})


async def stats(request: web.Request) -> web.Response:
    state = request.app[STATE]
    ok, reason = readiness(state.runner)
    rows = snapshot(state.runner, state.meter) if state.runner else []
    pipelines: dict[str, list[dict[str, object]]] = {}
    for row in rows:
        pipelines.setdefault(row.pipeline, []).append(row.as_dict())
    body = {
        "ready": ok,
        "reason": reason,
        "uptime_seconds": round(time.monotonic() - state.started, 3),
        "events_seen": state.tail.latest,
        "pipelines": [{"name": name, "components": parts} for name, parts in pipelines.items()],
    }
    return web.json_response(body, headers={"Cache-Control": "no-store"})


async def dashboard(request: web.Request) -> web.Response:
    return web.Response(
        body=request.app[DASHBOARD], content_type="text/html", charset="utf-8",
        headers=PAGE_HEADERS,
    )  # fmt: skip


def _count(text: str) -> int | None:
    """A client's whole number, or None: `isdigit` alone takes "²" and 5000-digit strings."""
    return int(text) if text.isascii() and text.isdigit() and len(text) <= 18 else None


def _first_cursor(request: web.Request, tail: EventTail) -> int:
    """Resume after `Last-Event-ID` (a reconnecting EventSource), else send some history."""
    last = _count(request.headers.get("Last-Event-ID", ""))
    history = _count(request.query.get("history", ""))
    if last is not None:
        cursor = last
    else:
        cursor = tail.latest - (history if history is not None else HISTORY)
    return min(max(cursor, 0), tail.latest)  # an id from an earlier process starts over


async def events(request: web.Request) -> web.StreamResponse:
    """Server-sent events: each event that left the stages, as CloudEvents JSON.

    A follower too slow for the stream gets `event: dropped` with the count it missed.
    """
    tail = request.app[STATE].tail
    response = web.StreamResponse(
        headers={
            "Content-Type": "text/event-stream",
            "Cache-Control": "no-store",
            "X-Accel-Buffering": "no",
        }
    )
    await response.prepare(request)
    cursor = _first_cursor(request, tail)
    try:
        await response.write(b"retry: 2000\n\n")
        while not tail.closed:
            entries, missed = tail.since(cursor)
            parts = []
            if missed:
                parts.append(f"event: dropped\ndata: {json.dumps({'count': missed})}\n\n")
            parts += [f"id: {number}\ndata: {to_json(event)}\n\n" for number, event in entries]
            cursor = tail.latest if missed or entries else cursor
            await response.write("".join(parts).encode() if parts else b": keepalive\n\n")
            await tail.wait_after(cursor, HEARTBEAT)
            await asyncio.sleep(COALESCE)
    except ConnectionError:
        pass  # the page was closed
    return response
