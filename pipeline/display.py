"""Human-readable rendering of paths and events for terminals (one event, one line)."""

from __future__ import annotations

import os

from pipeline.event import Event, EventKind

_CONTROL = {i: f"\\x{i:02x}" for i in range(32)} | {
    ord("\n"): "\\n",
    ord("\t"): "\\t",
    ord("\r"): "\\r",
    0x7F: "\\x7f",
}

_KIND_COLOURS = {
    EventKind.CREATED: "\x1b[32m",
    EventKind.CLOSED_WRITE: "\x1b[32;1m",
    EventKind.MODIFIED: "\x1b[33m",
    EventKind.ATTRIB: "\x1b[36m",
    EventKind.DELETED: "\x1b[31m",
    EventKind.MOVED: "\x1b[35m",
    EventKind.OVERFLOW: "\x1b[41;1m",
}
_RESET = "\x1b[0m"


def printable(path: str) -> str:
    """One line of text for any path: control characters and undecodable bytes escaped."""
    text = os.fsencode(path).decode("utf-8", "backslashreplace")
    return text.translate(_CONTROL)


def event_line(event: Event, *, colour: bool = False) -> str:
    """`12:00:01.250 closed_write   /inbox/a.csv` (moves show `old -> new`)."""
    stamp = event.time.astimezone().strftime("%H:%M:%S.%f")[:-3]
    kind = f"{event.kind.value:<14}"
    if colour:
        kind = f"{_KIND_COLOURS.get(event.kind, '')}{kind}{_RESET}"
    path = printable(event.path) + ("/" if event.is_dir else "")
    if event.kind is EventKind.MOVED:
        origin = printable(event.src_path) if event.src_path is not None else "(outside)"
        path = f"{origin} -> {path}"
    return f"{stamp} {kind} {path}"
