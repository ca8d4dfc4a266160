"""Turns a syntax tree into nested closures, checking names, calls and types on the way."""

from __future__ import annotations

import difflib
from typing import Any

from pipeline.event import EventKind
from pipeline.expr import values as v
from pipeline.expr.code import Code, Fn, constant, fold
from pipeline.expr.errors import ExpressionError
from pipeline.expr.functions import FUNCTIONS
from pipeline.expr.parser import (
    COMPARISONS,
    Attr,
    Binary,
    Call,
    Const,
    Index,
    ListOf,
    Name,
    Node,
    Unary,
)
from pipeline.expr.scope import NAMES, Scope

_KINDS = frozenset(k.value for k in EventKind)
_SPELLINGS = {"True": "true", "False": "false", "None": "null", "nil": "null", "NULL": "null"}


def _unknown_name(node: Name) -> ExpressionError:
    name = node.name
    if name in _SPELLINGS:
        hint = f"write {_SPELLINGS[name]}"
    elif name in _KINDS:
        hint = f'kinds are strings: kind == "{name}"'
    elif name in FUNCTIONS:
        hint = f"{name} is a function: {FUNCTIONS[name].signature}"
    else:
        close = difflib.get_close_matches(name, list(NAMES), n=1, cutoff=0.6)
        hint = f"did you mean {close[0]!r}?" if close else 'quote text as a string: "..."'
    return ExpressionError(f"unknown name {name!r}; {hint} (names: {', '.join(NAMES)})", node.col)


def _check_kinds(left: Node, right: Code) -> None:
    """`kind == "closd_write"` can never be true: say so at compile time."""
    if not (isinstance(left, Name) and left.name == "kind" and right.const):
        return
    wanted = right.value if isinstance(right.value, tuple) else (right.value,)
    for value in wanted:
        if isinstance(value, str) and value not in _KINDS:
            close = difflib.get_close_matches(value, sorted(_KINDS), n=1)
            hint = f"did you mean {close[0]!r}? " if close else ""
            kinds = ", ".join(k.value for k in EventKind)
            raise ExpressionError(
                f"{value!r} is not an event kind; {hint}kinds: {kinds}", right.col
            )


MAX_TREE_DEPTH = 100
"""Deepest syntax tree compiled (a chain like `a or b or ...` nests one level per operator)."""


class Compiler:
    def __init__(self) -> None:
        self.depth = 0

    def compile(self, node: Node) -> Code:
        self.depth += 1
        try:
            if self.depth > MAX_TREE_DEPTH:
                raise ExpressionError(f"more than {MAX_TREE_DEPTH} operators deep", node.col)
            method = getattr(self, "_" + type(node).__name__.lower())
            code: Code = method(node)
            return code
        finally:
            self.depth -= 1

    def _const(self, node: Const) -> Code:
        return constant(node.value, node.col)

    def _name(self, node: Name) -> Code:
        found = NAMES.get(node.name)
        if found is None:
            raise _unknown_name(node)
        read, types, _ = found
        return Code(read, types, node.col)

    def _listof(self, node: ListOf) -> Code:
        items = [self.compile(item) for item in node.items]
        if all(item.const for item in items):
            return constant(tuple(item.value for item in items), node.col)
        readers = [item.fn for item in items]
        return Code(lambda s: tuple(r(s) for r in readers), frozenset({v.LIST}), node.col)

    def _lookup(self, node: Node, target: Code, key: Code) -> Code:
        if not target.types & {v.MAP, v.LIST, v.NULL, v.OTHER}:
            raise ExpressionError(
                "only meta (or a mapping or list inside it) has keys or items", node.col
            )
        read, read_key, col = target.fn, key.fn, node.col

        def run(scope: Scope) -> Any:
            try:
                return v.get_key(read(scope), read_key(scope))
            except v.EvalError as exc:
                raise ExpressionError(str(exc), col) from None

        return fold(Code(run, v.ANY, col), target, key)

    def _attr(self, node: Attr) -> Code:
        return self._lookup(node, self.compile(node.target), constant(node.name, node.col))

    def _index(self, node: Index) -> Code:
        return self._lookup(node, self.compile(node.target), self.compile(node.index))

    def _call(self, node: Call) -> Code:
        function = FUNCTIONS.get(node.function)
        if function is None:
            close = difflib.get_close_matches(node.function, list(FUNCTIONS), n=1)
            hint = f"did you mean {close[0]}()? " if close else ""
            raise ExpressionError(
                f"unknown function {node.function}(); {hint}functions: "
                + ", ".join(f.signature for f in FUNCTIONS.values()),
                node.col,
            )
        low, high = function.arity
        if not low <= len(node.args) <= high:
            raise ExpressionError(
                f"{node.function}() takes {low if low == high else f'{low} or {high}'} "
                f"argument{'s' if high != 1 else ''}: {function.signature}",
                node.col,
            )
        return function.build([self.compile(arg) for arg in node.args], node.col)

    def _unary(self, node: Unary) -> Code:
        operand = self.compile(node.operand)
        read, col = operand.fn, node.col
        if node.op == "not":
            return fold(Code(lambda s: not read(s), frozenset({v.BOOL}), col), operand)
        if not operand.types & {v.NUM, v.NULL, v.OTHER}:
            raise ExpressionError(f"cannot negate {v.TYPE_NAMES[min(operand.types)]}", col)

        def negate(scope: Scope) -> Any:
            try:
                return v.negate(read(scope))
            except v.EvalError as exc:
                raise ExpressionError(str(exc), col) from None

        return fold(Code(negate, operand.types & {v.NUM, v.NULL}, col), operand)

    def _binary(self, node: Binary) -> Code:
        left, right = self.compile(node.left), self.compile(node.right)
        if node.op in ("and", "or"):
            return self._logic(node, left, right)
        if node.op in COMPARISONS:
            _check_kinds(node.left, right)
            _check_kinds(node.right, left)
            return fold(self._comparison(node, left, right), left, right)
        return fold(self._arithmetic(node, left, right), left, right)

    def _logic(self, node: Binary, left: Code, right: Code) -> Code:
        a, b = left.fn, right.fn
        fn: Fn = (
            (lambda s: bool(a(s)) and bool(b(s)))
            if node.op == "and"
            else (lambda s: bool(a(s)) or bool(b(s)))
        )
        return fold(Code(fn, frozenset({v.BOOL}), node.col), left, right)

    def _comparison(self, node: Binary, left: Code, right: Code) -> Code:
        op, col, a, b = node.op, node.col, left.fn, right.fn
        boolean = frozenset({v.BOOL})
        if op in ("==", "!="):
            same = (
                left.types == right.types and len(left.types) == 1 and left.types <= {v.STR, v.NUM}
            )
            if same and right.const:
                value = right.value
                fn: Fn = (lambda s: a(s) == value) if op == "==" else (lambda s: a(s) != value)
            elif same:
                fn = (lambda s: a(s) == b(s)) if op == "==" else (lambda s: a(s) != b(s))
            elif op == "==":
                fn = lambda s: v.equal(a(s), b(s))  # noqa: E731
            else:
                fn = lambda s: not v.equal(a(s), b(s))  # noqa: E731
            return Code(fn, boolean, col)
        if op in ("in", "not in"):
            return Code(self._membership(op, left, right), boolean, col)
        if not v.can_order(left.types, right.types):
            raise ExpressionError(
                f"cannot compare {_shown(left.types)} with {_shown(right.types)} using {op}", col
            )

        def order(scope: Scope) -> bool:
            try:
                return v.ordered(op, a(scope), b(scope))
            except v.EvalError as exc:
                raise ExpressionError(str(exc), col) from None

        return Code(order, boolean, col)

    def _membership(self, op: str, left: Code, right: Code) -> Fn:
        a, b, col = left.fn, right.fn, right.col
        if not right.types & {v.LIST, v.STR, v.MAP, v.NULL, v.OTHER}:
            raise ExpressionError(
                f"`in` needs a list, a string or a mapping, not {_shown(right.types)}", col
            )
        texts = right.const and isinstance(right.value, tuple) and left.types == {v.STR}
        if texts and all(isinstance(x, str) for x in right.value):
            choices = frozenset(right.value)
            return (lambda s: a(s) in choices) if op == "in" else (lambda s: a(s) not in choices)

        def member(scope: Scope) -> bool:
            try:
                found = v.contains(a(scope), b(scope))
            except v.EvalError as exc:
                raise ExpressionError(str(exc), col) from None
            return found if op == "in" else not found

        return member

    def _arithmetic(self, node: Binary, left: Code, right: Code) -> Code:
        op, col, a, b = node.op, node.col, left.fn, right.fn
        types = v.arithmetic_types(op, left.types, right.types)
        if not types:
            raise ExpressionError(
                f"cannot apply {op} to {_shown(left.types)} and {_shown(right.types)}", col
            )

        def compute(scope: Scope) -> Any:
            try:
                return v.arithmetic(op, a(scope), b(scope))
            except v.EvalError as exc:
                raise ExpressionError(str(exc), col) from None

        return Code(compute, types, col)


def _shown(types: frozenset[str]) -> str:
    return " or ".join(v.TYPE_NAMES[t] for t in sorted(types))
