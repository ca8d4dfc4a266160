"""The expression language: what users write in `expression:` and `when:`, and its errors."""

from __future__ import annotations

import contextlib
from pathlib import Path
from types import MappingProxyType
from typing import Any

import pydantic
import pytest
from hypothesis import given
from hypothesis import strategies as st

from pipeline import Event, EventKind
from pipeline.config import load_config_data
from pipeline.errors import ConfigError
from pipeline.expr import Expression, ExpressionError, ExpressionText, compile_expression
from pipeline.registry import build_registry

ROOT = "/data/in"


def ev(
    path: str = f"{ROOT}/sub/report.final.csv",
    kind: EventKind = EventKind.CLOSED_WRITE,
    **meta: Any,
) -> Event:
    return Event(kind, path, "p/test", meta=MappingProxyType({"root": ROOT, **meta}))


def value(text: str, event: Event | None = None, now: float | None = None) -> Any:
    return compile_expression(text).evaluate(event or ev(size=2_500_000, mtime=1000.0), now)


def error(text: str) -> ExpressionError:
    with pytest.raises(ExpressionError) as info:
        compile_expression(text)
    return info.value


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("kind", "closed_write"),
        ("path", f"{ROOT}/sub/report.final.csv"),
        ("name", "report.final.csv"),
        ("stem", "report.final"),
        ("ext", ".csv"),
        ("dir", f"{ROOT}/sub"),
        ("subject", "sub/report.final.csv"),
        ("is_dir", False),
        ("src_path", None),
        ("size", 2_500_000),
        ("mtime", 1000.0),
        ("meta.root", ROOT),
        ('meta["root"]', ROOT),
        ("meta.missing", None),
        ("meta.missing.deeper", None),
        ("source", "p/test"),
    ],
)
def test_names_read_the_event(text: str, expected: Any) -> None:
    assert value(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("10KB", 10_000),
        ("10KiB", 10_240),
        ("1.5MB", 1_500_000),
        ("2GiB", 2 * 1024**3),
        ("250ms", 0.25),
        ("5m", 300.0),
        ("1d", 86400.0),
        ("1_000", 1000),
        ('"a\\tb"', "a\tb"),
        ('r"\\d+"', "\\d+"),
        ("'single'", "single"),
        ('"\\u00e9"', "é"),
        ("[1, 'a', null, true]", (1, "a", None, True)),
        ("[]", ()),
        ("7 % 4 + 2 * 3 - 1", 8),
        ("-(2 + 3)", -5),
        ("10 / 4", 2.5),
        ('"ab" + "cd"', "abcd"),
        ("[1] + [2]", (1, 2)),
        ("null + 1", None),
        ("not null", True),
        ('true and ""', False),
        ("0 or [0]", True),
    ],
)
def test_literals_and_arithmetic(text: str, expected: Any) -> None:
    assert value(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('ext == ".csv" and size > 2MB', True),
        ('ext in [".csv", ".tsv"]', True),
        ('ext not in [".csv", ".tsv"]', False),
        ('"final" in name', True),
        ('"root" in meta', True),
        ("size >= 2_500_000 and size <= 2_500_000", True),
        ('kind == "closed_write" or kind == "moved"', True),
        ('"1" == 1', False),  # no coercion
        ("true == 1", False),
        ("1 == 1.0", True),
        ("[1, 2] == [1, 2]", True),
        ("meta.missing > 3", False),  # null is unknown: ordering is false
        ("meta.missing < 3", False),
        ("meta.missing == null", True),
        ("src_path != null", False),
        ("not (size > 1MB) or is_dir", False),
        ('"b" > "a"', True),
    ],
)
def test_comparisons_and_logic(text: str, expected: bool) -> None:
    assert value(text) is expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('glob("*.csv")', True),  # gitignore rules on the subject: any depth
        ('glob("/report.final.csv")', False),  # anchored at the watched folder
        ('glob("sub/")', True),  # a folder and everything below
        ('glob(["*.csv", "!report.*"])', False),  # later negation wins
        ('glob(path, "data/**/*.csv")', True),  # explicit text, leading / ignored
        ('fnmatch(subject, "*.csv")', True),  # fnmatch: * crosses /
        ('fnmatch(name, ["*.tsv", "report*"])', True),
        ('matches(name, r"^report\\.\\w+\\.csv$")', True),
        ('matches(path, "^/data/(in|out)/")', True),
        ('startswith(name, "rep")', True),
        ('endswith(name, [".tsv", ".csv"])', True),
        ('upper(ext) == ".CSV"', True),
        ('lower("ABC") == "abc"', True),
        ('basename(dir) == "sub"', True),
        ('dirname(dir) == "/data/in"', True),
        ("len(name) == 16", True),
        ("len(meta) == 3", True),
        ('startswith(src_path, "/x")', False),  # a predicate on null is false
        ("lower(src_path) == null", True),
    ],
)
def test_functions(text: str, expected: bool) -> None:
    assert value(text) is expected


def test_age_measures_from_meta_mtime_and_now() -> None:
    assert value("age()", now=1060.0) == 60.0
    assert value("age() > 59s and age() < 1m + 1s", now=1060.0) is True
    assert value("age()", ev()) is None  # no mtime on the event: unknown
    assert value("age() > 5m", ev()) is False


def test_matches_is_a_bool_and_follows_truthiness() -> None:
    expression = compile_expression("meta.tags")
    assert expression.matches(ev(tags=["x"])) is True
    assert expression.matches(ev(tags=[])) is False
    assert expression.matches(ev()) is False


def test_compile_is_cached_and_the_result_reusable() -> None:
    first = compile_expression('ext == ".csv"')
    assert compile_expression('ext == ".csv"') is first
    assert isinstance(first, Expression)
    assert [first.matches(ev(p)) for p in ("/a.csv", "/b.txt", "/c.csv")] == [True, False, True]


@pytest.mark.parametrize(
    ("text", "column", "words"),
    [
        ("sise > 3", 1, "unknown name 'sise'; did you mean 'size'?"),
        ("size > 3 and nme == 'a'", 14, "unknown name 'nme'; did you mean 'name'?"),
        ("closed_write", 1, 'kinds are strings: kind == "closed_write"'),
        ("True", 1, "write true"),
        ('kind == "closd_write"', 9, "did you mean 'closed_write'?"),
        ('kind in ["moved", "delete"]', 9, "'delete' is not an event kind"),
        ("name < 3", 6, "cannot compare a string with a number using <"),
        ('ext - "x"', 5, "cannot apply -"),
        ("-name", 1, "cannot negate a string"),
        ("path.x", 5, "only meta"),
        ("size = 3", 6, "use == to compare"),
        ("size > 1 && is_dir", 10, "use `and`"),
        ("size < 1 < 2", 10, "comparisons do not chain"),
        ("size >", 7, "expected a value, found the end of the expression"),
        ("(size > 1", 10, "expected ')'"),
        ("size 3", 6, "is an operator (and, or, ==, ...) missing?"),
        ('"open', 1, "never closed"),
        ('"\\q"', 2, "unknown escape \\q"),
        ("10mbs", 1, "unknown unit 'mbs'"),
        ("10MB5", 5, "unexpected number '5'"),
        ("1x", 1, "unknown unit 'x'"),
        ("lower(size)", 7, "the argument of lower cannot be a number"),
        ("nope(1)", 1, "unknown function nope()"),
        ("glob()", 1, "glob() takes 1 or 2 arguments"),
        ('matches(name, "(unclosed")', 15, "invalid regular expression"),
        ('matches(name, "' + "a" * 1001 + '")', 15, "longer than 1000"),
        ("", 1, "the expression is empty"),
        ("1 / 0", 3, "division by zero"),  # constants are folded at compile time
        ("(" * 60 + "1" + ")" * 60, 51, "nested more than 50 levels deep"),
        (" or ".join(["true"] * 120), 0, "more than 100 operators deep"),
        ("x" * 5000, 4097, "longer than 4096"),
    ],
)
def test_compile_errors_name_the_column(text: str, column: int, words: str) -> None:
    problem = error(text)
    assert words in str(problem)
    if column:
        assert problem.column == column
        assert str(problem).startswith(f"column {column}: ")


def test_type_errors_that_depend_on_the_event_raise_expression_error_at_evaluation() -> None:
    expression = compile_expression("meta.count > 3")
    assert expression.matches(ev(count=4)) is True
    with pytest.raises(ExpressionError) as info:
        expression.matches(ev(count="four"))
    assert str(info.value) == (
        "column 12: cannot compare a string with a number using > in expression 'meta.count > 3'"
    )
    with pytest.raises(ExpressionError, match="needs a list, a string or a mapping"):
        compile_expression("1 in meta.count").matches(ev(count=3))
    with pytest.raises(ExpressionError, match="division by zero"):
        compile_expression("size / meta.zero").evaluate(ev(size=1, zero=0))
    with pytest.raises(ExpressionError, match="the pattern must be a string"):
        compile_expression("glob(meta.pattern)").matches(ev(pattern=3))


def test_patterns_from_the_event_work_too() -> None:
    expression = compile_expression("matches(name, meta.pattern)")
    assert expression.matches(ev(pattern=r"final\.csv$")) is True
    assert expression.matches(ev(pattern="^x")) is False
    with pytest.raises(ExpressionError, match="invalid regular expression"):
        expression.matches(ev(pattern="("))


@pytest.mark.parametrize(
    "text",
    [
        "__import__('os')",
        "meta.__class__",
        "path.__class__",
        "().__class__",
        "[].__class__.__mro__",
        "lower.__globals__",
        'meta["__class__"]',
    ],
)
def test_nothing_reaches_python_objects(text: str) -> None:
    try:
        result = compile_expression(text).evaluate(ev())
    except ExpressionError:
        return
    assert result is None  # a meta key that is not there, never an attribute


def test_expression_text_validates_when_the_model_does() -> None:
    class Options(pydantic.BaseModel):
        when: ExpressionText

    assert Options(when="size > 1KB").when == "size > 1KB"
    with pytest.raises(pydantic.ValidationError, match="column 6: cannot compare a string"):
        Options(when="name < 3")
    assert Options.model_json_schema()["properties"]["when"]["type"] == "string"


def test_pipeline_check_locates_a_bad_expression_at_the_option(tmp_path: Path) -> None:
    registry = build_registry(autoload=False)
    data = {
        "pipelines": {
            "p": {
                "sources": [{"type": "poll", "paths": [str(tmp_path)]}],
                "stages": [{"type": "filter", "expression": "ext == '.csv' and sise > 1MB"}],
                "sinks": [{"type": "console"}],
            }
        }
    }
    with pytest.raises(ConfigError) as info:
        load_config_data(data, registry, source="c.yaml", config_dir=tmp_path)
    [problem] = info.value.problems
    assert "pipelines.p.stages[0].expression: column 19: unknown name 'sise'" in problem


@given(st.text(alphabet=st.sampled_from(list("ab1.()[]\"'=<>!,+-*/% \\nrot_MBs")), max_size=40))
def test_any_text_compiles_or_raises_expression_error(text: str) -> None:
    try:
        expression = compile_expression(text)
    except ExpressionError as exc:
        assert exc.column is None or 1 <= exc.column <= len(text) + 1
        return
    with contextlib.suppress(ExpressionError):  # only ExpressionError may escape
        expression.evaluate(ev(size=1))
