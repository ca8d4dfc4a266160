"""The functions an expression may call: glob, fnmatch, matches, startswith, lower, age, ...

Every function is built at compile time from its compiled arguments, so a constant
pattern (a glob, a regular expression) is compiled once, and a bad one is a compile
error located at its column. A null text gives false from a predicate and null otherwise.
"""

from __future__ import annotations

import dataclasses
import fnmatch as _fnmatch
import functools
import os.path
import re
from collections.abc import Callable
from typing import Any

import pathspec

from pipeline.cloudevents import subject_of
from pipeline.expr.code import Code, Fn, fold
from pipeline.expr.errors import ExpressionError
from pipeline.expr.scope import Scope
from pipeline.expr.values import BOOL, LIST, MAP, NULL, NUM, STR, TYPE_NAMES, tag

MAX_PATTERN = 1000
"""Longest regular expression `matches` accepts (a bound on catastrophic backtracking)."""


@dataclasses.dataclass(frozen=True)
class Function:
    name: str
    signature: str
    doc: str
    arity: tuple[int, int]
    build: Callable[[list[Code], int], Code]


FUNCTIONS: dict[str, Function] = {}


def _function(signature: str, doc: str, arity: tuple[int, int]) -> Callable[[Any], Any]:
    def register(build: Callable[[list[Code], int], Code]) -> Callable[[list[Code], int], Code]:
        name = signature.split("(", maxsplit=1)[0]
        FUNCTIONS[name] = Function(name, signature, doc, arity, build)
        return build

    return register


def _text(value: Any, what: str, col: int) -> str | None:
    if value is None or isinstance(value, str):
        return value
    raise ExpressionError(f"{what} must be a string, not {TYPE_NAMES[tag(value)]}", col)


def _texts(value: Any, what: str, col: int) -> tuple[str, ...]:
    items = value if isinstance(value, list | tuple) else (value,)
    if not all(isinstance(item, str) for item in items):
        raise ExpressionError(f"{what} must be a string or a list of strings", col)
    return tuple(items)


def _check_arg(code: Code, allowed: frozenset[str], what: str) -> None:
    possible = code.types - {NULL}
    if possible and not possible & (allowed | {"other"}):
        shown = " or ".join(TYPE_NAMES[t] for t in sorted(possible))
        raise ExpressionError(f"{what} cannot be {shown}", code.col)


def _matcher(
    args: list[Code], col: int, compile_: Callable[[tuple[str, ...]], Callable[[str], bool]]
) -> Code:
    """Shared shape of glob/fnmatch/matches: (text, pattern), a constant pattern compiled once."""
    text, pattern = args
    _check_arg(text, frozenset({STR}), "the text to match")
    read_text = text.fn
    run: Fn
    if pattern.const:
        test = compile_(_texts(pattern.value, "the pattern", pattern.col))

        def run(scope: Scope) -> bool:
            value = _text(read_text(scope), "the text to match", text.col)
            return False if value is None else test(value)

    else:
        cached = functools.lru_cache(maxsize=256)(compile_)
        read_pattern = pattern.fn

        def run(scope: Scope) -> bool:
            value = _text(read_text(scope), "the text to match", text.col)
            wanted = read_pattern(scope)
            if value is None or wanted is None:
                return False
            return cached(_texts(wanted, "the pattern", pattern.col))(value)

    return fold(Code(run, frozenset({BOOL}), col), text, pattern)


def _glob_spec(patterns: tuple[str, ...]) -> Callable[[str], bool]:
    try:
        spec = pathspec.GitIgnoreSpec.from_lines(patterns)
    except ValueError as exc:
        raise ExpressionError(f"invalid glob {patterns!r}: {exc}") from exc
    return lambda text: spec.match_file(text.lstrip("/"))


@_function(
    "glob([text,] pattern)",
    ".gitignore rules (like the filter's include): `*.csv` matches at any depth, `/x` only at "
    "the top, `dir/` a folder and all below; a list of patterns may negate with `!`. The text "
    "(default: subject, the path below the watched folder) is taken as a relative path.",
    (1, 2),
)
def _glob(args: list[Code], col: int) -> Code:
    if len(args) == 1:
        args = [Code(lambda s: subject_of(s.event), frozenset({STR}), col), args[0]]
    return _located_patterns(args, col, _glob_spec)


def _fnmatch_spec(patterns: tuple[str, ...]) -> Callable[[str], bool]:
    compiled = [re.compile(_fnmatch.translate(p)) for p in patterns]
    return lambda text: any(c.match(text) for c in compiled)


@_function(
    "fnmatch(text, pattern)",
    "Shell-style match of the whole text, case-sensitive, where `*` also crosses `/` "
    "(Python's fnmatch.fnmatchcase); the pattern may be a list (any of them).",
    (2, 2),
)
def _fnmatch_fn(args: list[Code], col: int) -> Code:
    return _located_patterns(args, col, _fnmatch_spec)


def _regex_spec(patterns: tuple[str, ...]) -> Callable[[str], bool]:
    compiled = []
    for pattern in patterns:
        if len(pattern) > MAX_PATTERN:
            raise ExpressionError(f"regular expression longer than {MAX_PATTERN} characters")
        try:
            compiled.append(re.compile(pattern))
        except (re.error, OverflowError, RecursionError) as exc:  # a{4294967296}: Overflow
            raise ExpressionError(f"invalid regular expression {pattern!r}: {exc}") from exc
    return lambda text: any(c.search(text) for c in compiled)


@_function(
    "matches(text, regex)",
    "Python regular expression searched anywhere in the text (anchor with ^ and $); write it "
    'as a raw string r"\\d+". No timeout: a pattern with nested repeats like (a+)+ can take '
    "very long on a hostile name, so keep patterns simple.",
    (2, 2),
)
def _matches(args: list[Code], col: int) -> Code:
    return _located_patterns(args, col, _regex_spec)


def _located_patterns(
    args: list[Code], col: int, compile_: Callable[[tuple[str, ...]], Callable[[str], bool]]
) -> Code:
    pattern = args[1]
    _check_arg(pattern, frozenset({STR, LIST}), "the pattern")

    def at_pattern(patterns: tuple[str, ...]) -> Callable[[str], bool]:
        try:
            return compile_(patterns)
        except ExpressionError as exc:
            raise ExpressionError(exc.reason, pattern.col) from None

    return _matcher(args, col, at_pattern)


def _affix(method: str) -> Callable[[list[Code], int], Code]:
    def build(args: list[Code], col: int) -> Code:
        text, affix = args
        _check_arg(text, frozenset({STR}), "the text")
        _check_arg(affix, frozenset({STR, LIST}), f"the {method[:-4]}fix")
        read, read_affix = text.fn, affix.fn

        def run(scope: Scope) -> bool:
            value = _text(read(scope), "the text", text.col)
            wanted = read_affix(scope)
            if value is None or wanted is None:
                return False
            return bool(getattr(value, method)(_texts(wanted, "the affix", affix.col)))

        return fold(Code(run, frozenset({BOOL}), col), text, affix)

    return build


_function(
    "startswith(text, prefix)", "Whether text starts with prefix (or any in a list).", (2, 2)
)(_affix("startswith"))
_function("endswith(text, suffix)", "Whether text ends with suffix (or any in a list).", (2, 2))(
    _affix("endswith")
)


def _text_to_text(name: str, convert: Callable[[str], str]) -> Callable[[list[Code], int], Code]:
    def build(args: list[Code], col: int) -> Code:
        [text] = args
        _check_arg(text, frozenset({STR}), f"the argument of {name}")
        read = text.fn

        def run(scope: Scope) -> str | None:
            value = _text(read(scope), f"the argument of {name}", text.col)
            return None if value is None else convert(value)

        return fold(Code(run, frozenset({STR, NULL}), col), text)

    return build


for _name, _convert, _doc in (
    ("lower", str.lower, "The text in lower case."),
    ("upper", str.upper, "The text in upper case."),
    ("basename", os.path.basename, "The last part of a path: basename(src_path)."),
    ("dirname", os.path.dirname, "A path without its last part."),
):
    _function(f"{_name}(text)", _doc, (1, 1))(_text_to_text(_name, _convert))


@_function("len(value)", "Length of a string, list or mapping (null for null).", (1, 1))
def _len(args: list[Code], col: int) -> Code:
    [value] = args
    _check_arg(value, frozenset({STR, LIST, MAP}), "the argument of len")
    read = value.fn

    def run(scope: Scope) -> int | None:
        found = read(scope)
        if found is None:
            return None
        if tag(found) not in (STR, LIST, MAP):
            raise ExpressionError(f"len of {TYPE_NAMES[tag(found)]}", value.col)
        return len(found)

    return fold(Code(run, frozenset({NUM, NULL}), col), value)


@_function(
    "age()",
    "Seconds since the file was last modified (now minus meta.mtime), or null when the event has "
    "no meta.mtime. Compare with durations: age() > 5m.",
    (0, 0),
)
def _age(args: list[Code], col: int) -> Code:
    def run(scope: Scope) -> float | None:
        mtime = scope.event.meta.get("mtime")
        if not isinstance(mtime, int | float) or isinstance(mtime, bool):
            return None
        return scope.now - float(mtime)

    return Code(run, frozenset({NUM, NULL}), col)


def describe() -> list[tuple[str, str]]:
    """(signature, doc) of every function, for help texts."""
    return [(f.signature, f.doc) for f in FUNCTIONS.values()]
