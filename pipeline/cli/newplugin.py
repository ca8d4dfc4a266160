"""`pipeline new-plugin NAME`: scaffold a plugin distribution that passes its own tests."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from pipeline.errors import PipelineError
from pipeline.scaffold import KINDS, ScaffoldError, check_name, write


def add_parser(commands: Any, common: argparse.ArgumentParser) -> None:
    parser = commands.add_parser(
        "new-plugin",
        parents=[common],
        help="create a new plugin distribution (component, options, tests)",
        description="Write a plugin distribution for a new component: pyproject.toml with the "
        "`fspipeline` entry point, the component with an options schema, and tests that use "
        "pipeline.testing. `pip install -e DIR` then `pytest DIR` pass out of the box.",
    )
    parser.add_argument("name", help="the component's type name, e.g. slack_notify")
    parser.add_argument("--kind", choices=KINDS, default="sink", help="default: sink")
    parser.add_argument("--output", type=Path, help="folder to create (default: ./fspipeline-NAME)")
    parser.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    try:
        name = check_name(args.name)
        folder: Path = args.output or Path(f"fspipeline-{name.replace('_', '-')}")
        written = write(name, args.kind, folder)
    except ScaffoldError as exc:
        error = PipelineError(str(exc))
        error.exit_code = 2
        raise error from None
    for path in written:
        sys.stdout.write(f"created {path}\n")
    sys.stdout.write(
        f"\nnext:\n  pip install -e '{folder}[test]'\n  pytest {folder}\n"
        f"  pipeline plugins {name}\n"
    )
    return 0
