"""`pipeline docs`: write the component reference pages, or check that they are current."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from pipeline.refdocs import is_first_party, render_pages
from pipeline.registry import build_registry


def add_parser(commands: Any, common: argparse.ArgumentParser) -> None:
    parser = commands.add_parser(
        "docs",
        parents=[common],
        help="generate the component reference (one page per component)",
        description="Write one Markdown page per component, generated from its docstring and "
        "options schema, plus an index. By default only fspipeline's own distributions "
        "(fspipeline, fspipeline-*) are documented; --all adds every installed plugin.",
    )
    parser.add_argument("--format", choices=("markdown",), default="markdown")
    parser.add_argument(
        "--output",
        type=Path,
        default=Path("docs/reference"),
        help="folder (default: docs/reference)",
    )
    parser.add_argument("--all", action="store_true", help="document third-party plugins too")
    parser.add_argument(
        "--check",
        action="store_true",
        help="write nothing; exit 1 and name the stale pages if the folder is not current",
    )
    parser.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    specs = [s for s in build_registry() if args.all or is_first_party(s)]
    pages = render_pages(specs)
    out: Path = args.output
    if args.check:
        stale = _stale(out, pages)
        for name in stale:
            sys.stdout.write(f"{out / name}: stale\n")
        if stale:
            sys.stderr.write("run `pipeline docs` to regenerate the reference\n")
            return 1
        sys.stdout.write(f"{out}: {len(pages)} pages up to date\n")
        return 0
    for name, text in pages.items():
        path = out / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    for name in _extra(out, pages):
        (out / name).unlink()
    sys.stdout.write(f"{out}: wrote {len(pages)} pages\n")
    return 0


def _stale(out: Path, pages: dict[str, str]) -> list[str]:
    stale = [
        name
        for name, text in pages.items()
        if not (out / name).is_file() or (out / name).read_text(encoding="utf-8") != text
    ]
    return sorted(stale + _extra(out, pages))


def _extra(out: Path, pages: dict[str, str]) -> list[str]:
    """Pages in the folder that no longer belong to a component."""
    if not out.is_dir():
        return []
    return [
        p.relative_to(out).as_posix()
        for p in out.rglob("*.md")
        if p.relative_to(out).as_posix() not in pages
    ]
