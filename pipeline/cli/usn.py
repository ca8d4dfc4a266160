"""`pipeline usn dump FILE`: print a copied NTFS change journal ($UsnJrnl:$J) as events."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any, TextIO

from pipeline.cloudevents import to_json
from pipeline.display import printable
from pipeline.event import Event, EventKind
from pipeline.windows.usn_events import USN_KINDS

TEXT_HEADER = f"{'USN':>12}  {'TIME (UTC)':<26}  {'KIND':<12}  {'REASONS':<40}  PATH"


def add_parser(commands: Any, common: argparse.ArgumentParser) -> None:
    parser = commands.add_parser(
        "usn",
        parents=[common],
        help="work with NTFS change journals ($UsnJrnl:$J files)",
        description="Tools for the NTFS change journal that the `usn` source reads.",
    )
    actions = parser.add_subparsers(dest="usn_command", metavar="ACTION", required=True)
    dump = actions.add_parser(
        "dump",
        parents=[common],
        help="print a $UsnJrnl:$J file as events",
        description="Decode a $UsnJrnl:$J file copied from an NTFS volume or image and print "
        "the events the `usn` source would report for it, in journal order: one CloudEvents "
        "JSON line each (like `pipeline watch`), or a table with the USN, the journal's time, "
        "the kind, the record's reasons and the path. Damaged records are reported on "
        "standard error and skipped.",
    )
    dump.add_argument("file", type=Path, metavar="FILE", help="the $UsnJrnl:$J file")
    dump.add_argument(
        "--format", choices=("json", "text"), default="json", help="json (default) or text"
    )
    dump.add_argument(
        "--root",
        default="C:",
        help="what the volume's root is called in paths (default: C:), e.g. /mnt/image",
    )
    dump.add_argument(
        "--events",
        metavar="K,…",
        help="only these kinds, comma-separated: " + ", ".join(sorted(USN_KINDS)),
    )
    dump.set_defaults(handler=handle_dump)


def _kinds(text: str | None) -> frozenset[EventKind]:
    if text is None:
        return USN_KINDS
    kinds = {k.strip() for k in text.split(",") if k.strip()}
    unknown = sorted(kinds - set(USN_KINDS))
    if unknown:
        raise ValueError(
            f"unknown event kind {', '.join(unknown)}; known: {', '.join(sorted(USN_KINDS))}"
        )
    return frozenset(EventKind(k) for k in kinds)


def text_line(event: Event) -> str:
    """One row of the text table."""
    meta = event.meta
    usn = meta.get("usn", "")
    moment = meta.get("timestamp") or event.time.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    reasons = "|".join(meta.get("reasons", ()))
    path = printable(event.path)
    if event.kind is EventKind.MOVED:
        origin = printable(event.src_path) if event.src_path is not None else "(outside)"
        path = f"{origin} -> {path}"
    return f"{usn:>12}  {moment:<26}  {event.kind.value:<12}  {reasons:<40}  {path}"


def dump(
    file: Path, *, out: TextIO, err: TextIO, root: str, kinds: frozenset[EventKind], text: bool
) -> tuple[int, int]:
    """Write the events of journal `file` to `out`; returns the records and damaged ones."""
    # Imported here: every `pipeline` command builds this parser, few dump a journal.
    from pipeline.windows.usn_offline import JournalReader
    from pipeline.windows.usn_records import UsnDecodeError
    from pipeline.windows.usn_replay import interpreter_for

    interpreter = interpreter_for(root, [], "usn-dump/usn", kinds)
    render = text_line if text else to_json
    records = damaged = 0
    if text:
        out.write(TEXT_HEADER + "\n")
    with JournalReader(file) as reader:
        for item in reader.read_all():
            if isinstance(item, UsnDecodeError):
                damaged += 1
                err.write(f"pipeline usn dump: skipped a damaged record: {item}\n")
                continue
            records += 1
            for event in interpreter.feed(item):
                out.write(render(event) + "\n")
    for event in interpreter.flush():
        out.write(render(event) + "\n")
    return records, damaged


def handle_dump(args: argparse.Namespace) -> int:
    file: Path = args.file
    if not file.is_file():
        sys.stderr.write(f"pipeline usn dump: {file} is not a file; give a copied $UsnJrnl:$J\n")
        return 2
    try:
        kinds = _kinds(args.events)
    except ValueError as exc:
        sys.stderr.write(f"pipeline usn dump: {exc}\n")
        return 2
    try:
        records, damaged = dump(
            file,
            out=sys.stdout,
            err=sys.stderr,
            root=args.root,
            kinds=kinds,
            text=args.format == "text",
        )
        sys.stdout.flush()
    except BrokenPipeError:
        # The reader went away (`| head`): stop quietly, as Unix tools do.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except OSError as exc:
        sys.stderr.write(f"pipeline usn dump: cannot read {file}: {exc.strerror or exc}\n")
        return 1
    if damaged and not records:
        sys.stderr.write(
            f"pipeline usn dump: {file} holds no valid USN record; is it a $UsnJrnl:$J stream?\n"
        )
        return 1
    return 0
