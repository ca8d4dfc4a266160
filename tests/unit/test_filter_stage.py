"""The filter stage: gitignore-style globs relative to the watched folder, kinds, folders."""

from __future__ import annotations

import asyncio
from pathlib import Path
from types import MappingProxyType
from typing import Any

import pytest
from pydantic import ValidationError

from pipeline import Event, EventKind
from pipeline.stages.filter import FilterStage
from tests.conftest import make_component

ROOT = "/data/landing"
META = MappingProxyType({"root": ROOT})


def passes(tmp_path: Path, events: list[Event], **options: Any) -> list[str]:
    stage = make_component(FilterStage, tmp_path, **options)
    out: list[Event] = []

    async def emit(event: Event) -> None:
        out.append(event)

    async def feed() -> None:
        for event in events:
            await stage.process(event, emit)

    asyncio.run(feed())
    return [e.path.removeprefix(ROOT + "/") for e in out]


def ev(rel: str, kind: EventKind = EventKind.CLOSED_WRITE, *, is_dir: bool = False) -> Event:
    return Event(kind, f"{ROOT}/{rel}", "t/test", is_dir, meta=META)


PATHS = [
    "a.csv",
    "deep/er/b.csv",
    "c.json",
    ".hidden.csv",
    "deep/.git/config",
    "x.tmp",
    "logs/app.log",
]


def test_include_patterns_without_a_slash_match_at_any_depth(tmp_path: Path) -> None:
    assert passes(tmp_path, [ev(p) for p in PATHS], include=["*.csv"]) == [
        "a.csv",
        "deep/er/b.csv",
        ".hidden.csv",
    ]


def test_exclude_dot_and_temp_files_anywhere(tmp_path: Path) -> None:
    result = passes(tmp_path, [ev(p) for p in PATHS], exclude=["**/.*", "*.tmp"])
    assert result == ["a.csv", "deep/er/b.csv", "c.json", "logs/app.log"]


def test_anchored_and_folder_patterns(tmp_path: Path) -> None:
    events = [ev("a.csv"), ev("deep/a.csv"), ev("logs/app.log"), ev("logs", is_dir=True)]
    assert passes(tmp_path, events, include=["/a.csv"]) == ["a.csv"]
    assert passes(tmp_path, events, exclude=["logs/"]) == ["a.csv", "deep/a.csv"]


def test_negation_re_includes(tmp_path: Path) -> None:
    events = [ev("a.tmp"), ev("keep.tmp"), ev("b.csv")]
    assert passes(tmp_path, events, exclude=["*.tmp", "!keep.tmp"]) == ["keep.tmp", "b.csv"]


def test_globs_see_the_path_relative_to_the_watched_root_not_its_parents(tmp_path: Path) -> None:
    # The watched folder itself sits below a dot-folder: its files must not be excluded.
    meta = MappingProxyType({"root": "/home/u/.local/inbox"})
    event = Event(EventKind.CREATED, "/home/u/.local/inbox/a.csv", "t/test", meta=meta)
    stage = make_component(FilterStage, tmp_path, exclude=["**/.*"])
    assert stage.accepts(event)


def test_kinds_and_directories(tmp_path: Path) -> None:
    events = [
        ev("a.csv", EventKind.CREATED),
        ev("a.csv", EventKind.CLOSED_WRITE),
        ev("sub", EventKind.CREATED, is_dir=True),
    ]
    assert passes(tmp_path, events, kinds=["closed_write"]) == ["a.csv"]
    assert passes(tmp_path, events, directories="drop") == ["a.csv", "a.csv"]
    assert passes(tmp_path, events, directories="only") == ["sub"]


def test_overflow_is_never_dropped_by_globs(tmp_path: Path) -> None:
    overflow = Event(EventKind.OVERFLOW, ROOT, "t/test", True, meta=META)
    assert passes(tmp_path, [overflow], include=["*.csv"], directories="drop") == [ROOT]


def test_options_are_validated(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="invalid glob"):
        make_component(FilterStage, tmp_path, include=["a/**b/\\"])
    with pytest.raises(ValidationError):
        make_component(FilterStage, tmp_path, kinds=["closed"])
