"""Routes log lines and console output through the rich console of the live status.

A live display redraws the bottom of the terminal; anything else written straight to the
terminal would tear it. These streams hand each complete line to the console, which
prints it above the live display (or plainly when none is shown).
"""

from __future__ import annotations

import sys
import threading
from typing import TextIO, cast

import structlog
from rich.console import Console
from rich.text import Text


class ConsoleStream:
    """A text stream whose lines are printed by a rich console (colours kept)."""

    def __init__(self, console: Console, original: TextIO) -> None:
        self._console = console
        self._original = original
        self._pending = ""
        self._lock = threading.Lock()  # structlog may log from worker threads too

    def write(self, text: str) -> int:
        with self._lock:
            self._pending += text
            *lines, self._pending = self._pending.split("\n")
        for line in lines:
            self._console.print(Text.from_ansi(line), soft_wrap=True, highlight=False)
        return len(text)

    def flush(self) -> None:
        """Lines are printed as they complete; a partial line waits for its end."""

    def isatty(self) -> bool:
        return self._original.isatty()

    def fileno(self) -> int:
        return self._original.fileno()

    @property
    def encoding(self) -> str:
        return self._original.encoding


def status_console() -> Console | None:
    """The console for a live status: stderr, when it is a terminal; else None."""
    if not sys.stderr.isatty():
        return None
    return Console(stderr=True)


def route_output(console: Console) -> None:
    """Send the logs, and standard output when it is the terminal too, through `console`.

    Call it before the pipelines are built: components pick their streams when opened.
    """
    logs = cast("TextIO", ConsoleStream(console, sys.stderr))  # all a print logger uses
    structlog.configure(logger_factory=structlog.PrintLoggerFactory(logs))
    if sys.stdout.isatty():
        sys.stdout = cast("TextIO", ConsoleStream(console, sys.stdout))
