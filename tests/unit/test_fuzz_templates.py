"""Fuzzing the placeholder template parser (pipeline/templates.py), shared by the command,
logfile, webhook and broker sinks: any text parses or raises TemplateError, literal text
survives escaping, and event data is never read as template syntax."""

from __future__ import annotations

import os
import re
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline import Event, EventKind
from pipeline.templates import (
    PLACEHOLDERS,
    Template,
    TemplateError,
    bind_constants,
    compile_template,
    placeholders,
)

FUZZ = settings(max_examples=400, deadline=None, derandomize=True)

# Text made of the pieces the parser cares about, so that examples hit every rule.
template_text = st.lists(
    st.sampled_from(
        [
            *("{", "}", "{{", "}}", ":-", ":", ".", "meta.", "-", " ", "a", "_", "$"),
            *(f"{{{name}}}" for name in PLACEHOLDERS),
            *("{meta.a}", "{meta.a.b}", "{meta.a:-x}", "{meta.}", "{meta..a}", "{nope}"),
            *("{path:-}", "{Name}", "{meta.a:-{x}}", "{meta.{a}}", "\\", "%s", "\0", "\udcff"),
        ]
    ),
    max_size=12,
).map("".join) | st.text(max_size=30)

hostile_text = st.text(max_size=20) | st.sampled_from(
    ["{path}", "{{", "}}", "%s%n", "$(rm -rf ~)", "{meta.x:-y}", "-rf", "\udcff\udc80", "\n"]
)
meta_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | hostile_text,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(hostile_text, inner, max_size=3),
    max_leaves=6,
)
events = st.builds(
    lambda kind, name, meta: Event(
        kind, "/in/" + name, "p/t", src_path="/in/" + name + ".part", meta=meta
    ),
    st.sampled_from(list(EventKind)),
    st.binary(min_size=1, max_size=12).filter(lambda b: b"/" not in b).map(os.fsdecode),
    st.dictionaries(st.sampled_from(["a", "b", "root", "relpath", "paths"]), meta_values),
)


def _parsed(text: str) -> Template | None:
    try:
        return compile_template(text)
    except TemplateError as exc:
        assert "column" in str(exc)
        return None


@FUZZ
@given(template_text, events)
def test_any_text_parses_or_raises_template_error_and_renders_or_raises_it(
    text: str, event: Event
) -> None:
    template = _parsed(text)
    if template is None:
        return
    assert set(placeholders(text)) == set(template.fields)
    assert template.render(event, missing="-") is not None
    try:
        rendered = template.render(event)
    except TemplateError as exc:
        assert "meta." in str(exc)  # only a missing {meta.KEY} may fail a render
        return
    if not template.fields:  # literal text: each {{ or }}, left to right, is one brace
        assert rendered == re.sub(r"\{\{|\}\}", lambda m: m[0][0], text)


@FUZZ
@given(st.text(max_size=40))
def test_doubled_braces_make_any_text_literal(text: str) -> None:
    escaped = text.replace("{", "{{").replace("}", "}}")
    template = compile_template(escaped)
    assert not template.fields
    assert template.render(Event(EventKind.CREATED, "/x", "p/t")) == text


@settings(FUZZ, max_examples=150)
@given(events)
def test_event_data_is_never_read_as_template_syntax(event: Event) -> None:
    for name in ("path", "name", "src_path", "relpath", "dir", "stem", "ext", "paths"):
        value = compile_template("{" + name + "}").render(event)
        assert compile_template("<{" + name + "}>").render(event) == f"<{value}>"
        assert value == PLACEHOLDERS[name](event)


@FUZZ
@given(
    template_text,
    st.dictionaries(st.sampled_from(["pipeline", "hostname", "pid"]), hostile_text, min_size=1),
)
def test_bound_constants_are_literal_whatever_they_hold(text: str, values: dict[str, str]) -> None:
    bound = bind_constants(text, values)
    template = _parsed(bound)
    if _parsed(text) is None or template is None:
        return
    event = Event(EventKind.CREATED, "/x", "p/t")
    for name, value in values.items():
        if text == "{" + name + "}":
            assert template.render(event) == value
        whole = compile_template(bind_constants(f"<{{{name}}}>{{path}}", values))
        assert whole.render(event) == f"<{value}>/x"


def test_very_long_and_brace_heavy_templates_parse_quickly() -> None:
    for text in ("{" * 50_000, "{{" * 50_000, "{a" * 20_000, "{meta." + "a" * 50_000 + ":-"):
        _parsed(text)
    many: Any = "{path}" * 10_000
    assert len(compile_template(many).fields) == 1
