"""Fuzzing the expression language (pipeline/expr) with expressions built from its grammar:
any text compiles or raises ExpressionError, and a compiled expression evaluated on events
with hostile values (from a broker message: huge numbers, odd types, any text) returns a
value or raises ExpressionError, never anything else."""

from __future__ import annotations

import math
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline import Event, EventKind
from pipeline.expr import Expression, ExpressionError, compile_expression
from pipeline.expr.functions import FUNCTIONS

FUZZ = settings(max_examples=250, deadline=None, derandomize=True)

NAMES = [
    "kind", "path", "src_path", "name", "stem", "ext", "dir", "is_dir", "size", "mtime",
    "meta", "subject", "id", "source", "meta.x", "meta.y", 'meta["z"]', "meta.x.y",
]  # fmt: skip
LITERALS = [
    '"a"', "'.csv'", 'r"\\d+"', "3", "2.5", "10MB", "2GiB", "5m", "250ms", "true", "false",
    "null", "[]", '[".csv", ".tsv"]', "0", "-1", "1e308", '"a{4294967296}"', '"(a+)+$"',
    '"["', '"**/x"', '"!x"', '""', "99999999999999999999",
]  # fmt: skip
OPERATORS = ["and", "or", "==", "!=", "<", "<=", ">", ">=", "in", "not in", "+", "-", "*", "/", "%"]


def call(name: str, args: list[str]) -> str:
    return f"{name}({', '.join(args)})"


atoms = st.sampled_from(NAMES + LITERALS)
expressions = st.recursive(
    atoms,
    lambda inner: st.one_of(
        st.tuples(inner, st.sampled_from(OPERATORS), inner).map(" ".join),
        inner.map(lambda e: f"not {e}"),
        inner.map(lambda e: f"-{e}"),
        inner.map(lambda e: f"({e})"),
        st.lists(inner, max_size=3).map(lambda items: f"[{', '.join(items)}]"),
        st.tuples(st.sampled_from(sorted(FUNCTIONS)), st.lists(inner, max_size=3)).map(
            lambda pair: call(*pair)
        ),
        st.tuples(inner, inner).map(lambda pair: f"{pair[0]}[{pair[1]}]"),
    ),
    max_leaves=8,
)

hostile = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.sampled_from([10**400, -(10**400), 2**63, 0, -0.0])
    | st.floats()
    | st.text(max_size=20)
    | st.sampled_from(["(", "a{4294967296}", "**/", "\udcff", ".csv", "[!"]),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner),
    max_leaves=6,
)
events = st.builds(
    lambda kind, path, meta: Event(kind, path, "p/mqtt", meta=meta),
    st.sampled_from(list(EventKind)),
    st.sampled_from(["/in/a.csv", "/in/-rf", "/", "relative", "/in/\udcff.x", ""]),
    st.fixed_dictionaries(
        {},
        optional={
            "x": hostile,
            "y": hostile,
            "z": hostile,
            "size": hostile,
            "mtime": hostile,
            "root": hostile,
            "relpath": hostile,
        },
    ),
)


def _compiled(text: str) -> Expression | None:
    try:
        return compile_expression(text)
    except ExpressionError as exc:
        assert exc.column is None or 0 <= exc.column <= len(text) + 1
        return None


@FUZZ
@given(expressions, st.lists(events, min_size=1, max_size=3))
def test_grammatical_expressions_compile_and_evaluate_or_raise_expression_error(
    text: str, on: list[Event]
) -> None:
    expression = _compiled(text)
    if expression is None:
        return
    for event in on:
        try:
            result = expression.evaluate(event, now=1_700_000_000.0)
        except ExpressionError:
            continue
        if isinstance(result, float):
            assert not math.isnan(result) or "nan" not in text  # a value, not a crash
        expression.matches(event, now=1_700_000_000.0)


@FUZZ
@given(st.text(max_size=60))
def test_any_text_at_all_compiles_or_raises_expression_error(text: str) -> None:
    _compiled(text)


def test_patterns_python_refuses_with_another_error_are_expression_errors() -> None:
    for text in ('matches(name, "a{4294967296}")', 'matches(name, "x{99999999999999999999}")'):
        assert _compiled(text) is None
    dynamic = compile_expression("matches(name, meta.x)")
    event = Event(EventKind.CREATED, "/in/a", "p/mqtt", meta={"x": "a{4294967296}"})
    try:
        dynamic.evaluate(event)
    except ExpressionError as exc:
        assert "regular expression" in str(exc)


def test_arithmetic_on_huge_numbers_from_an_event_is_an_expression_error() -> None:
    event = Event(EventKind.CREATED, "/in/a", "p/mqtt", meta={"x": 10**400, "y": 1e308})
    for text in ("meta.x / 3", "meta.x * 1.5", "meta.x + 0.5", "meta.y * 10 > 1", "meta.x % 2.5"):
        expression = compile_expression(text)
        try:
            value: Any = expression.evaluate(event)
        except ExpressionError:
            continue
        assert value is not None
