"""Helpers for the qt plugin's tests: build and run the source, place files whole."""

from __future__ import annotations

import asyncio
import os
import tempfile
from collections.abc import Coroutine
from pathlib import Path
from typing import Any

from pipeline import Event
from tests.conftest import make_component

from fspipeline_qt.source import QtSource


def qt_source(tmp_path: Path, state_dir: Path | None = None, **options: Any) -> QtSource:
    """A qt source on tmp_path/inbox unless `paths` says otherwise."""
    options.setdefault("paths", [str(tmp_path / "inbox")])
    source: QtSource = make_component(QtSource, tmp_path, state_dir=state_dir, **options)
    return source


def run(scenario: Coroutine[Any, Any, None]) -> None:
    asyncio.run(scenario)


def place(path: Path, data: bytes = b"x") -> None:
    """Make a file appear whole: written in tmp_path/spare, beside the watched folder, then
    renamed in, so that no read of its folder can find it half written."""
    spare = next(parent / "spare" for parent in path.parents if (parent / "spare").is_dir())
    handle, temp = tempfile.mkstemp(dir=spare)
    os.write(handle, data)
    os.close(handle)
    os.rename(temp, path)


def summary(events: list[Event], root: Path) -> list[tuple[str, str, str | None]]:
    """(kind, path, src_path) of each event, paths relative to `root`."""

    def rel(path: str | None) -> str | None:
        return None if path is None else os.path.relpath(path, root)

    return [(e.kind.value, rel(e.path) or "", rel(e.src_path)) for e in events]
