"""The names an expression reads from an event (`path`, `name`, `size`, `meta`, ...)."""

from __future__ import annotations

import os.path
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from pipeline.cloudevents import subject_of
from pipeline.expr.values import BOOL, MAP, NULL, NUM, STR

if TYPE_CHECKING:
    from pipeline.event import Event


class Scope:
    """One evaluation: the event, and the wall-clock time `age()` measures from."""

    __slots__ = ("_now", "event")

    def __init__(self, event: Event, now: float | None) -> None:
        self.event = event
        self._now = now

    @property
    def now(self) -> float:
        if self._now is None:
            self._now = time.time()
        return self._now


def _meta_number(key: str) -> Callable[[Scope], Any]:
    def read(scope: Scope) -> Any:
        value = scope.event.meta.get(key)
        return value if isinstance(value, int | float) and not isinstance(value, bool) else None

    return read


def _stem(scope: Scope) -> str:
    return os.path.splitext(os.path.basename(scope.event.path))[0]


def _ext(scope: Scope) -> str:
    return os.path.splitext(scope.event.path)[1] if not scope.event.is_dir else ""


NAMES: dict[str, tuple[Callable[[Scope], Any], frozenset[str], str]] = {
    "kind": (lambda s: s.event.kind.value, frozenset({STR}), 'what happened: "created", ...'),
    "path": (lambda s: s.event.path, frozenset({STR}), "absolute path (for moved: the new one)"),
    "src_path": (lambda s: s.event.src_path, frozenset({STR, NULL}), "moved: the old path"),
    "name": (lambda s: os.path.basename(s.event.path), frozenset({STR}), "file name: a.csv"),
    "stem": (_stem, frozenset({STR}), "file name without its extension: a"),
    "ext": (_ext, frozenset({STR}), 'extension with its dot: ".csv" ("" if none)'),
    "dir": (lambda s: os.path.dirname(s.event.path), frozenset({STR}), "folder of the path"),
    "is_dir": (lambda s: s.event.is_dir, frozenset({BOOL}), "whether the path is a folder"),
    "size": (_meta_number("size"), frozenset({NUM, NULL}), "meta.size in bytes, or null"),
    "mtime": (_meta_number("mtime"), frozenset({NUM, NULL}), "meta.mtime (Unix seconds), or null"),
    "meta": (lambda s: s.event.meta, frozenset({MAP}), "the event's meta mapping"),
    "subject": (lambda s: subject_of(s.event), frozenset({STR}), "path below the watched folder"),
    "id": (lambda s: s.event.id, frozenset({STR}), "the event id"),
    "source": (lambda s: s.event.source, frozenset({STR}), "<pipeline>/<source type>"),
}
"""Every name: how to read it, the types it may have, and a one-line description."""
