"""A compiled node: a closure over the scope, the types it may give, and its value if constant."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from pipeline.expr.values import tag

if TYPE_CHECKING:
    from pipeline.expr.scope import Scope

Fn = Callable[["Scope"], Any]


@dataclasses.dataclass(frozen=True, slots=True)
class Code:
    fn: Fn
    types: frozenset[str]
    col: int
    const: bool = False
    value: Any = None


def constant(value: Any, col: int) -> Code:
    return Code(lambda _scope: value, frozenset({tag(value)}), col, True, value)


def fold(code: Code, *inputs: Code) -> Code:
    """Evaluate `code` now if all its inputs are constants: errors then surface at compile time."""
    if not all(item.const for item in inputs):
        return code
    value = code.fn(None)  # type: ignore[arg-type]  # a constant never reads the scope
    return constant(value, code.col)
