"""`pipeline watch PATH…`: print each event as it happens, like `inotifywait -m -r`."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from pathlib import Path
from typing import Any

from pipeline.components import ComponentKind
from pipeline.config import load_config_data
from pipeline.engine import run_plan
from pipeline.event import EventKind
from pipeline.registry import build_registry

BUILTIN_SOURCE_MODULES = {
    "inotify": "pipeline.sources.inotify",
    "fanotify": "pipeline.sources.fanotify",
    "poll": "pipeline.sources.poll",
    "watchdog": "pipeline.sources.watchdog_observer",
    "windows": "pipeline.sources.windows",
    "usn": "pipeline.sources.usn",
}
"""Which built-in module registers each built-in source (others: every plugin is loaded)."""


def add_parser(commands: Any, common: argparse.ArgumentParser) -> None:
    parser = commands.add_parser(
        "watch",
        parents=[common],
        help="print events under PATHs as they happen (like inotifywait -m -r)",
        description="Watch PATHs (recursively) and print every event on standard output as "
        "one CloudEvents JSON line, flushed at once, until Ctrl-C. Logs go to standard "
        "error, so `pipeline watch DIR | jq .data.path` works.",
    )
    parser.add_argument("paths", nargs="+", metavar="PATH", help="folders or files to watch")
    parser.add_argument(
        "--source", default="inotify", help="source type to watch with (default: inotify)"
    )
    parser.add_argument(
        "--events",
        metavar="K,…",
        help="only these kinds, comma-separated: " + ", ".join(k.value for k in EventKind),
    )
    parser.add_argument("--no-recursive", action="store_true", help="watch only the top level")
    parser.add_argument(
        "--format", choices=("json", "text"), default="json", help="json (default) or text lines"
    )
    parser.set_defaults(handler=handle)


def _kinds(text: str | None) -> list[str] | None:
    if text is None:
        return None
    kinds = [k.strip() for k in text.split(",") if k.strip()]
    known = {k.value for k in EventKind}
    unknown = [k for k in kinds if k not in known]
    if unknown:
        raise SystemExit(
            f"pipeline watch: unknown event kind {', '.join(unknown)}; "
            f"known: {', '.join(sorted(known))}"
        )
    return kinds


def handle(args: argparse.Namespace) -> int:
    for path in args.paths:
        if not os.path.exists(path):
            sys.stderr.write(f"pipeline watch: {path} does not exist\n")
            return 2
    try:
        kinds = _kinds(args.events)
    except SystemExit as exc:
        sys.stderr.write(f"{exc}\n")
        return 2
    source: dict[str, Any] = {
        "type": args.source,
        "paths": [str(Path(p).absolute()) for p in args.paths],
    }
    if kinds is not None:
        source["events"] = kinds
    if args.no_recursive:
        source["recursive"] = False
    data = {
        "shutdown_timeout": "2s",
        "pipelines": {
            "watch": {
                "sources": [source],
                # A burst is written in one go; a lone event is still printed at once.
                "sinks": [{"type": "console", "format": args.format, "batch_size": 1024}],
            }
        },
    }
    # A built-in source needs only its own module and the console's: a faster start.
    module = BUILTIN_SOURCE_MODULES.get(args.source)
    if module is not None:
        registry = build_registry(autoload=False, builtins=[module, "pipeline.sinks.console"])
    if module is None or registry.get(ComponentKind.SOURCE, args.source) is None:
        registry = build_registry()
    plan = load_config_data(data, registry, source="pipeline watch", config_dir=Path.cwd())
    asyncio.run(run_plan(plan, registry))
    return 0
