"""`pipeline plugins [NAME]`: list the installed components, or show one's options."""

from __future__ import annotations

import argparse
import json
import sys
import textwrap
from typing import Any

from pipeline.config.plan import DeliveryPolicy
from pipeline.optiondocs import option_docs
from pipeline.registry import ComponentSpec, Registry, build_registry


def add_parser(commands: Any, common: argparse.ArgumentParser) -> None:
    parser = commands.add_parser(
        "plugins",
        parents=[common],
        help="list sources, stages and sinks, or show one's options",
        description="Without NAME: every installed component with its kind, type name, "
        "distribution and summary. With NAME: its description and options (type, default, "
        "meaning), as used under `type: NAME` in a config.",
    )
    parser.add_argument("name", nargs="?", help="a component type name, e.g. inotify")
    parser.add_argument(
        "--json", action="store_true", help="machine-readable output (JSON Schema for options)"
    )
    parser.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    registry = build_registry()
    if args.name is None:
        return _list(registry, as_json=args.json)
    specs = registry.find(args.name)
    if not specs:
        import difflib

        names = sorted({spec.type_name for spec in registry})
        close = difflib.get_close_matches(args.name, names, n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        sys.stderr.write(
            f"pipeline: no component named {args.name!r}.{hint} Known: {', '.join(names)}\n"
        )
        return 2
    for spec in specs:
        if args.json:
            sys.stdout.write(json.dumps(_spec_json(spec), indent=2) + "\n")
        else:
            sys.stdout.write(_describe(spec))
    return 0


def _spec_json(spec: ComponentSpec) -> dict[str, Any]:
    return {
        "kind": spec.kind.value,
        "type": spec.type_name,
        "distribution": spec.distribution,
        "summary": spec.summary,
        "description": spec.cls.description(),
        "options": spec.options_model.model_json_schema(),
    }


def _list(registry: Registry, *, as_json: bool) -> int:
    specs = list(registry)
    if as_json:
        rows = [{k: v for k, v in _spec_json(s).items() if k != "options"} for s in specs]
        sys.stdout.write(json.dumps(rows, indent=2) + "\n")
        return 0
    header = ("KIND", "TYPE", "DISTRIBUTION", "SUMMARY")
    table = [header, *((s.kind.value, s.type_name, s.distribution, s.summary) for s in specs)]
    widths = [max(len(row[i]) for row in table) for i in range(3)]
    for row in table:
        sys.stdout.write("  ".join(cell.ljust(w) for cell, w in zip(row[:3], widths, strict=True)))
        sys.stdout.write("  " + row[3] + "\n")
    sys.stdout.write("\n`pipeline plugins NAME` shows a component's options.\n")
    return 0


def _options_text(model: Any) -> str:
    out = ""
    for option in option_docs(model):
        status = "required" if option.required else f"default: {option.default}"
        out += f"  {option.name} ({option.type}; {status})\n"
        if option.doc:
            out += textwrap.indent(textwrap.fill(option.doc, 76), "      ") + "\n"
    return out


def _describe(spec: ComponentSpec) -> str:
    out = f"{spec.type_name} ({spec.kind.value}, from {spec.distribution})\n\n"
    out += f"  {spec.summary}\n"
    description = spec.cls.description()
    if description:
        out += "\n" + textwrap.indent(description, "  ") + "\n"
    out += "\nOptions:\n" + (_options_text(spec.options_model) or "  (none)\n")
    if spec.kind.value == "sink":
        out += "\nDelivery options (handled by the engine, allowed on every sink):\n"
        out += _options_text(DeliveryPolicy)
    out += f"\nExample:\n  - type: {spec.type_name}\n"
    for option in option_docs(spec.options_model):
        if option.required:
            out += f"    {option.name}: ...\n"
    return out + "\n"
