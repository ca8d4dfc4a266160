"""The filter stage: gitignore-style globs relative to the watched folder, kinds, folders."""

from __future__ import annotations

import asyncio
import os
import re
import time
from pathlib import Path
from types import MappingProxyType
from typing import Any

import pytest
import structlog
from pydantic import ValidationError

from pipeline import ComponentContext, Event, EventKind, FakeClock
from pipeline.expr import ExpressionError
from pipeline.stages.filter import FilterStage
from tests.conftest import make_component

ROOT = "/data/landing"
META = MappingProxyType({"root": ROOT})


def passes(tmp_path: Path, events: list[Event], **options: Any) -> list[str]:
    passed = run_through(make_component(FilterStage, tmp_path, **options), events)
    return [path.removeprefix(ROOT + "/") for path in passed]


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


# -- ignore files, regex, expression, size and age -------------------------------------


def build(tmp_path: Path, clock: FakeClock | None = None, **options: Any) -> FilterStage:
    validated = FilterStage.Options.model_validate(options, context={"config_dir": tmp_path})
    context = ComponentContext(
        "t", "t.stages[0]", tmp_path, None, structlog.get_logger(), clock or FakeClock()
    )
    return FilterStage(validated, context)


def run_through(stage: FilterStage, events: list[Event]) -> list[str]:
    out: list[Event] = []

    async def emit(event: Event) -> None:
        out.append(event)

    async def feed() -> None:
        for event in events:
            await stage.process(event, emit)

    asyncio.run(feed())
    return [e.path for e in out]


def in_tree(root: Path, rel: str, kind: EventKind = EventKind.CLOSED_WRITE, **meta: Any) -> Event:
    path = root / rel
    return Event(kind, str(path), "t/test", rel.endswith("/"), meta={"root": str(root), **meta})


def test_ignore_files_apply_below_their_folder_and_deeper_ones_override(tmp_path: Path) -> None:
    root = tmp_path / "tree"
    (root / "a" / "b").mkdir(parents=True)
    (root / ".gitignore").write_text("*.log\nbuild/\n")
    (root / "a" / ".fspipelineignore").write_text("!keep.log\n*.csv\n")
    stage = build(tmp_path, ignore_files=[".gitignore", ".fspipelineignore"])
    rels = [
        "x.csv",  # the *.csv rule lives in a/, not at the top
        "x.log",
        "a/x.csv",
        "a/b/y.csv",
        "a/keep.log",  # re-included by the deeper file
        "a/b/keep.log",
        "a/other.log",
        "build/out.txt",  # below an ignored folder
        "a/build/deep/out.txt",
        "notes.txt",
    ]
    passed = run_through(stage, [in_tree(root, rel) for rel in rels])
    assert [p.removeprefix(str(root) + "/") for p in passed] == [
        "x.csv",
        "a/keep.log",
        "a/b/keep.log",
        "notes.txt",
    ]


def test_a_changed_ignore_file_is_read_again(tmp_path: Path) -> None:
    root = tmp_path / "tree"
    root.mkdir()
    ignore = root / ".gitignore"
    ignore.write_text("*.tmp\n")
    clock = FakeClock()
    stage = build(tmp_path, clock, ignore_files=[".gitignore"], ignore_recheck="10s")

    assert run_through(stage, [in_tree(root, "a.tmp"), in_tree(root, "a.csv")]) == [
        str(root / "a.csv")
    ]
    ignore.write_text("*.csv\n")
    os.utime(ignore, ns=(1, 1))  # a different mtime even on a coarse clock
    # Before the recheck interval the cached rules still hold...
    assert run_through(stage, [in_tree(root, "b.tmp")]) == []
    # ...but an event about the ignore file itself re-reads it at once.
    passed = run_through(stage, [in_tree(root, ".gitignore"), in_tree(root, "b.tmp")])
    assert passed == [str(ignore), str(root / "b.tmp")]
    assert run_through(stage, [in_tree(root, "b.csv")]) == []

    # Without such an event, the mtime is checked once `ignore_recheck` has passed.
    ignore.write_text("nothing\n")
    os.utime(ignore, ns=(2, 2))
    assert run_through(stage, [in_tree(root, "c.csv")]) == []
    asyncio.run(clock.advance(10))
    assert run_through(stage, [in_tree(root, "c.csv")]) == [str(root / "c.csv")]


def test_regex_is_searched_in_the_absolute_path(tmp_path: Path) -> None:
    stage = build(tmp_path, regex=r"/20\d\d-\d\d-\d\d/")
    events = [ev("2026-01-31/a.csv"), ev("latest/a.csv"), ev("x/2026-02-01/y/b.csv")]
    assert [p.removeprefix(ROOT + "/") for p in run_through(stage, events)] == [
        "2026-01-31/a.csv",
        "x/2026-02-01/y/b.csv",
    ]


def test_expression_selects_events(tmp_path: Path) -> None:
    stage = build(tmp_path, expression='ext in [".csv", ".tsv"] and not startswith(name, "draft")')
    events = [ev("a.csv"), ev("draft-b.csv"), ev("c.json"), ev("d/e.tsv")]
    assert [p.removeprefix(ROOT + "/") for p in run_through(stage, events)] == ["a.csv", "d/e.tsv"]


def test_an_expression_that_fails_on_an_event_raises_so_the_engine_dead_letters_it(
    tmp_path: Path,
) -> None:
    stage = build(tmp_path, expression="meta.priority > 3")
    good = Event(EventKind.CREATED, "/a", "t/test", meta={"priority": 5})
    bad = Event(EventKind.CREATED, "/b", "t/test", meta={"priority": "high"})
    assert run_through(stage, [good]) == ["/a"]
    with pytest.raises(ExpressionError, match="cannot compare a string with a number"):
        run_through(stage, [bad])


def test_size_and_age_come_from_meta_when_the_source_gives_them(tmp_path: Path) -> None:
    stage = build(tmp_path, min_size="1KB", max_size="1MiB", min_age="1m", max_age="1h")
    stage.now = lambda: 10_000.0
    stage.stat = lambda path: pytest.fail("must not stat when meta has size and mtime")
    events = [
        ev_meta("small", size=999, mtime=9_000.0),
        ev_meta("ok", size=1000, mtime=9_000.0),
        ev_meta("big", size=1024**2 + 1, mtime=9_000.0),
        ev_meta("fresh", size=5000, mtime=9_990.0),
        ev_meta("stale", size=5000, mtime=5_000.0),
        ev_meta("max", size=1024**2, mtime=10_000.0 - 3600),
    ]
    assert [p.removeprefix(ROOT + "/") for p in run_through(stage, events)] == ["ok", "max"]


def ev_meta(rel: str, **meta: Any) -> Event:
    return Event(EventKind.MODIFIED, f"{ROOT}/{rel}", "t/test", meta={"root": ROOT, **meta})


def test_size_and_age_stat_the_file_when_meta_lacks_them(tmp_path: Path) -> None:
    (tmp_path / "empty.csv").write_bytes(b"")
    (tmp_path / "data.csv").write_bytes(b"x" * 100)
    (tmp_path / "old.csv").write_bytes(b"x" * 100)
    old = time.time() - 7200
    os.utime(tmp_path / "old.csv", (old, old))
    (tmp_path / "folder").mkdir()
    stage = build(tmp_path, min_size=1, max_age="1h")
    events = [
        in_tree(tmp_path, "empty.csv"),
        in_tree(tmp_path, "data.csv"),
        in_tree(tmp_path, "old.csv"),
        in_tree(tmp_path, "gone.csv"),  # a file that no longer exists fails size checks
        in_tree(tmp_path, "gone.csv", EventKind.DELETED),  # deletions are not sized
        in_tree(tmp_path, "folder/"),  # nor are folders
    ]
    assert [p.removeprefix(str(tmp_path) + "/") for p in run_through(stage, events)] == [
        "data.csv",
        "gone.csv",
        "folder",
    ]


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"min_size": "10XB"}, "unknown size unit 'XB'"),
        ({"min_size": "2MB", "max_size": "1MB"}, "min_size is larger than max_size"),
        ({"min_age": "1h", "max_age": "1m"}, "min_age is longer than max_age"),
        ({"regex": "(unclosed"}, "invalid regular expression"),
        ({"expression": "name < 3"}, "column 6: cannot compare a string with a number"),
        ({"ignore_files": ["sub/.gitignore"]}, "give a file name like .gitignore"),
    ],
)
def test_new_options_are_validated(tmp_path: Path, options: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=re.escape(message)):
        build(tmp_path, **options)


def test_expression_age_uses_the_wall_clock(tmp_path: Path) -> None:
    stage = build(tmp_path, expression="age() >= 5m")
    stage.now = lambda: 10_000.0
    events = [ev_meta("old", mtime=10_000.0 - 300), ev_meta("new", mtime=9_999.0), ev_meta("none")]
    assert [p.removeprefix(ROOT + "/") for p in run_through(stage, events)] == ["old"]


def test_a_move_from_an_excluded_name_is_an_arrival() -> None:
    import asyncio

    from pipeline.stages.filter import FilterStage
    from pipeline.testing import StageRun, make_component, make_event

    stage = make_component(FilterStage, {"exclude": ["*.tmp"]})

    async def scenario() -> list[tuple[str | None, object]]:
        async with StageRun(stage) as run:
            await run.send(make_event("moved", "/in/x.csv", src_path="/in/x.csv.tmp"))
            await run.send(make_event("moved", "/in/y.csv", src_path="/in/old.csv"))
            return [(e.src_path, e.meta.get("src_filtered")) for e in run.events]

    assert asyncio.run(scenario()) == [(None, "/in/x.csv.tmp"), ("/in/old.csv", None)]
