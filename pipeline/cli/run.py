"""`pipeline run [CONFIG]`: run every pipeline of a config until SIGINT/SIGTERM."""

from __future__ import annotations

import argparse
import asyncio
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pipeline.config import load_config
from pipeline.engine import run_plan
from pipeline.engine.reload import config_watcher
from pipeline.engine.runner import Observer
from pipeline.errors import ConfigError
from pipeline.observe.address import TOKEN_ENV, HttpAddress, parse_http_address
from pipeline.options import parse_duration
from pipeline.registry import build_registry

if TYPE_CHECKING:
    from pipeline.config.plan import Plan
    from pipeline.observe.server import HttpEndpoint
    from pipeline.registry import Registry

DEFAULT_CONFIG = "config.yaml"
DEFAULT_STATUS_INTERVAL = "60s"


def add_parser(commands: Any, common: argparse.ArgumentParser) -> None:
    parser = commands.add_parser(
        "run",
        parents=[common],
        help="run every pipeline of a config until Ctrl-C",
        description="Run every pipeline of CONFIG until SIGINT or SIGTERM, then stop the "
        "sources, flush held events, drain every sink's queue (within the config's "
        "shutdown_timeout, default 10s) and exit 0. A second Ctrl-C stops without waiting; "
        "what was not delivered is dead-lettered, never silently lost.",
    )
    parser.add_argument(
        "config",
        nargs="?",
        default=DEFAULT_CONFIG,
        type=Path,
        help="YAML config (default: ./config.yaml)",
    )
    parser.add_argument(
        "--no-reload",
        action="store_true",
        help="do not apply config changes while running (by default a changed config file "
        "or SIGHUP swaps the changed pipelines; an invalid change is logged and ignored)",
    )
    status = parser.add_argument_group("status")
    status.add_argument(
        "--no-status",
        action="store_true",
        help="on a terminal, log a summary line every --status-interval instead of the live "
        "status table (without a terminal that is what happens anyway)",
    )
    status.add_argument(
        "--status-interval",
        type=_interval,
        default=DEFAULT_STATUS_INTERVAL,
        metavar="DURATION",
        help=f"how often the summary line is logged, like 30s or 5m "
        f"(default: {DEFAULT_STATUS_INTERVAL})",
    )
    http = parser.add_argument_group("http endpoint")
    http.add_argument(
        "--http",
        type=_address,
        metavar="[HOST:]PORT",
        help="serve /healthz, /readyz, /metrics (Prometheus), /api/stats, /events (live tail) "
        "and a dashboard at / on this address; a bare port listens on 127.0.0.1 only, "
        "port 0 picks a free one",
    )
    http.add_argument(
        "--http-token",
        metavar="TOKEN",
        help=f"require 'Authorization: Bearer TOKEN' (or ?token=TOKEN) on every request; "
        f"better set {TOKEN_ENV}, since other users can see a command line",
    )
    parser.set_defaults(handler=handle)


def _interval(text: str) -> float:
    try:
        seconds = parse_duration(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    if seconds <= 0:
        raise argparse.ArgumentTypeError(f"{text!r}: the interval must be more than 0")
    return seconds


def _address(text: str) -> HttpAddress:
    try:
        return parse_http_address(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def handle(args: argparse.Namespace) -> int:
    endpoint = _endpoint(args)
    observers: list[Observer] = [_status_view(args)]  # before the pipelines pick streams
    registry = build_registry()
    plan = load_config(args.config, registry)
    if not args.no_reload:
        observers.append(config_watcher(args.config, registry))
    asyncio.run(_run(plan, registry, observers, endpoint))
    return 0


def _status_view(args: argparse.Namespace) -> Observer:
    """A live table on a terminal, else a periodic summary line in the log."""
    from pipeline.observe.live import LiveStatus, PeriodicSummary
    from pipeline.observe.terminal import route_output, status_console

    console = None if args.no_status else status_console()
    if console is None:
        return PeriodicSummary(args.status_interval)
    route_output(console)
    return LiveStatus(console)


def _endpoint(args: argparse.Namespace) -> HttpEndpoint | None:
    token = args.http_token or os.environ.get(TOKEN_ENV) or None
    if args.http is None:
        if args.http_token:
            raise ConfigError(["pipeline run: --http-token needs --http [HOST:]PORT"])
        return None
    from pipeline.observe.server import HttpEndpoint

    return HttpEndpoint(args.http, token=token)


async def _run(
    plan: Plan, registry: Registry, observers: list[Observer], endpoint: HttpEndpoint | None
) -> bool:
    if endpoint is None:
        return await run_plan(plan, registry, observers=observers)
    await endpoint.start()  # listening before the sources open: /readyz says "starting"
    try:
        return await run_plan(plan, registry, observers=[*observers, endpoint.attach])
    finally:
        await endpoint.stop()
