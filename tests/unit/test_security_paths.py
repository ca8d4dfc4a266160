"""Paths built from event data stay where the config points (pipeline/security.py), and the
transform stage's `path_template` uses that guard."""

from __future__ import annotations

import asyncio
import posixpath
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline import Event, EventKind
from pipeline.security import PathEscapeError, confine, no_dot_segments
from pipeline.stages.transform import TransformStage
from tests.conftest import make_component

segments = st.sampled_from(["a", "b c", "..", ".", "", "..x", "x..", "...", "-rf", "\0"])


@settings(max_examples=300, deadline=None, derandomize=True)
@given(st.lists(segments, max_size=6).map("/".join), st.booleans())
def test_a_value_that_passes_the_guard_never_climbs(value: str, absolute: bool) -> None:
    base = "/srv/in"
    template_result = f"{base}/{value}"
    try:
        no_dot_segments(value)
    except PathEscapeError:
        assert ".." in value.split("/") or "\0" in value
        return
    folded = posixpath.normpath(template_result)
    assert folded == base or folded.startswith(base + "/")
    assert confine(template_result, base) == folded


@settings(max_examples=300, deadline=None, derandomize=True)
@given(st.lists(segments, max_size=6).map("/".join), st.sampled_from(["/", "/srv", "/srv/in/"]))
def test_confine_accepts_exactly_the_paths_at_or_below_its_base(path: str, base: str) -> None:
    folded_base = posixpath.normpath(base)
    target = posixpath.normpath(posixpath.join(folded_base, path))
    inside = target == folded_base or target.startswith(folded_base.rstrip("/") + "/")
    if inside:
        assert confine(path, base) == target
    else:
        with pytest.raises(PathEscapeError, match="outside"):
            confine(path, base)


def test_the_guard_names_the_value() -> None:
    with pytest.raises(PathEscapeError, match=r"'\.\./etc' has a '\.\.' segment"):
        no_dot_segments("../etc")
    assert no_dot_segments("..hidden/a..b") == "..hidden/a..b"


# -- the transform stage: path_template with values from the event -------------------------


def rewrite(tmp_path: Path, event: Event, template: str) -> Event:
    stage: TransformStage = make_component(TransformStage, tmp_path, path_template=template)
    out: list[Event] = []

    async def emit(item: Event) -> None:
        out.append(item)

    asyncio.run(stage.process(event, emit))
    [result] = out
    return result


def event(path: str = "/srv/in/sub/a.csv", **meta: Any) -> Event:
    return Event(EventKind.CLOSED_WRITE, path, "p/redis", meta={"root": "/srv/in", **meta})


@pytest.mark.parametrize(
    ("template", "meta"),
    [
        ("{dir}/{meta.dest}/{name}", {"dest": "../../../etc"}),
        ("done/{meta.batch}{ext}", {"batch": "../../../../etc/cron.d/x"}),
        ("{relpath}.done", {"relpath": "../../../root/.ssh/authorized_keys"}),
    ],
)
def test_event_data_cannot_move_a_path_out_of_its_folder(
    tmp_path: Path, template: str, meta: dict[str, str]
) -> None:
    with pytest.raises(PathEscapeError, match=r"'\.\.' segment"):
        rewrite(tmp_path, event(**meta), template)


def test_a_template_that_climbs_by_itself_is_the_users_choice(tmp_path: Path) -> None:
    result = rewrite(tmp_path, event(batch="7"), "../done/{stem}.{meta.batch}{ext}")
    assert result.path == "/srv/in/done/a.7.csv"
