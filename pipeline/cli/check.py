"""`pipeline check CONFIG`: validate a config and list every problem with its location."""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path
from typing import Any

from pipeline.config import load_config
from pipeline.errors import ConfigError
from pipeline.registry import build_registry


def add_parser(commands: Any, common: argparse.ArgumentParser) -> None:
    parser = commands.add_parser(
        "check",
        parents=[common],
        help="validate a config without running it",
        description="Validate CONFIG: YAML syntax, ${VAR} references, pipeline structure, "
        "component types and every option against its schema. Prints one line per problem "
        "as FILE:LINE:COL: dotted.path: message and exits 2, or prints a summary and exits 0.",
    )
    parser.add_argument("config", type=Path, help="YAML config file")
    parser.add_argument(
        "--connect",
        action="store_true",
        help="also probe what each component talks to (brokers, endpoints): reachable, "
        "credentials accepted, queues and streams present; exit 1 if one is not",
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=10.0,
        metavar="SECONDS",
        help="how long each --connect probe may take (default: 10)",
    )
    parser.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    registry = build_registry()
    try:
        plan = load_config(args.config, registry)
    except ConfigError as exc:
        for problem in exc.problems:
            sys.stdout.write(problem + "\n")
        count = len(exc.problems)
        sys.stderr.write(f"{args.config}: {count} problem{'s' if count != 1 else ''}\n")
        return 2
    for pipeline in plan.pipelines:
        steps = [
            " + ".join(c.spec.type_name for c in pipeline.sources),
            *(c.spec.type_name for c in pipeline.stages),
            " + ".join(c.spec.type_name for c in pipeline.sinks),
        ]
        chain = " -> ".join(steps)
        sys.stdout.write(f"{args.config}: pipeline {pipeline.name}: {chain}\n")
    if args.connect:
        from pipeline.cli.probe import probe_all

        failures = asyncio.run(probe_all(plan, args.timeout))
        for line in failures:
            sys.stdout.write(f"{args.config}: {line}\n")
        if failures:
            count = len(failures)
            sys.stderr.write(
                f"{args.config}: {count} component{'s' if count != 1 else ''} cannot connect\n"
            )
            return 1
    sys.stdout.write(f"{args.config}: ok\n")
    return 0
