"""`pipeline run [CONFIG]`: run every pipeline of a config until SIGINT/SIGTERM."""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path
from typing import Any

from pipeline.config import load_config
from pipeline.engine import run_plan
from pipeline.engine.reload import config_watcher
from pipeline.engine.runner import Observer
from pipeline.registry import build_registry

DEFAULT_CONFIG = "config.yaml"


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
    parser.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    registry = build_registry()
    plan = load_config(args.config, registry)
    observers: list[Observer] = []
    if not args.no_reload:
        observers.append(config_watcher(args.config, registry))
    asyncio.run(run_plan(plan, registry, observers=observers))
    return 0
