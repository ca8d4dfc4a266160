"""What the expression operators do at run time: types, truth, equality, order, arithmetic."""

from __future__ import annotations

import operator
from collections.abc import Callable, Mapping
from typing import Any

STR, NUM, BOOL, NULL, LIST, MAP, OTHER = "str", "num", "bool", "null", "list", "map", "other"
ANY: frozenset[str] = frozenset({STR, NUM, BOOL, NULL, LIST, MAP, OTHER})
TYPE_NAMES = {
    STR: "a string",
    NUM: "a number",
    BOOL: "a boolean",
    NULL: "null",
    LIST: "a list",
    MAP: "a mapping",
    OTHER: "an object",
}


class EvalError(Exception):
    """A run-time type error; the compiled node adds its column and raises ExpressionError."""


def tag(value: Any) -> str:
    """The expression-language type of a Python value."""
    if value is None:
        return NULL
    if value is True or value is False:
        return BOOL
    if isinstance(value, int | float):
        return NUM
    if isinstance(value, str):
        return STR
    if isinstance(value, list | tuple):
        return LIST
    if isinstance(value, Mapping):
        return MAP
    return OTHER


def truthy(value: Any) -> bool:
    """null, false, 0, "" and empty lists and mappings are false; everything else is true."""
    return bool(value)


def equal(a: Any, b: Any) -> bool:
    """Equality without Python's coercions: `true == 1` and `"1" == 1` are false."""
    ta, tb = tag(a), tag(b)
    if ta != tb:
        return False
    if ta == LIST:
        return len(a) == len(b) and all(equal(x, y) for x, y in zip(a, b, strict=True))
    return bool(a == b)


_ORDER: dict[str, Callable[[Any, Any], Any]] = {
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
}


def ordered(op: str, a: Any, b: Any) -> bool:
    """`a op b` for two numbers or two strings; false when either is null (unknown)."""
    if a is None or b is None:
        return False
    ta, tb = tag(a), tag(b)
    if ta != tb or ta not in (NUM, STR):
        raise EvalError(f"cannot compare {TYPE_NAMES[ta]} with {TYPE_NAMES[tb]} using {op}")
    return bool(_ORDER[op](a, b))


def can_order(left: frozenset[str], right: frozenset[str]) -> bool:
    """Whether some pair of the given types could be compared without a type error."""
    left, right = left - {NULL}, right - {NULL}
    if not left or not right or OTHER in left | right:
        return True  # null compares as false; an object is only known at run time
    return bool(left & right & {NUM, STR})


def contains(item: Any, container: Any) -> bool:
    """`item in container`: a list element, a substring, or a mapping key; false on null."""
    if container is None:
        return False
    kind = tag(container)
    if kind == LIST:
        return any(equal(item, x) for x in container)
    if kind == STR:
        if not isinstance(item, str):
            raise EvalError(
                f"`in` a string needs a string on the left, not {TYPE_NAMES[tag(item)]}"
            )
        return item in container
    if kind == MAP:
        return isinstance(item, str) and item in container
    raise EvalError(
        f"`in` needs a list, a string or a mapping on the right, not {TYPE_NAMES[kind]}"
    )


def _numeric(op: str, a: Any, b: Any) -> Any:
    if op == "+":
        return a + b
    if op == "-":
        return a - b
    if op == "*":
        return a * b
    if b == 0:
        raise EvalError("division by zero")
    return a / b if op == "/" else a % b


def arithmetic(op: str, a: Any, b: Any) -> Any:
    """`+ - * / %` on numbers; `+` also joins strings or lists; null in, null out."""
    if a is None or b is None:
        return None
    ta, tb = tag(a), tag(b)
    if ta == NUM and tb == NUM:
        try:
            return _numeric(op, a, b)
        except OverflowError:
            raise EvalError(f"cannot apply {op}: the result is too large") from None
    if op == "+" and ta == tb and ta in (STR, LIST):
        return a + b if ta == STR else (*a, *b)
    raise EvalError(f"cannot apply {op} to {TYPE_NAMES[ta]} and {TYPE_NAMES[tb]}")


def arithmetic_types(op: str, left: frozenset[str], right: frozenset[str]) -> frozenset[str]:
    """The types `left op right` may have; empty when every combination is an error."""
    out: set[str] = set()
    if NULL in left or NULL in right:
        out.add(NULL)
    if NUM in left & right or OTHER in left | right:
        out.add(NUM)
    if op == "+":
        out |= left & right & {STR, LIST}
    return frozenset(out)


def negate(value: Any) -> Any:
    if value is None:
        return None
    if tag(value) != NUM:
        raise EvalError(f"cannot negate {TYPE_NAMES[tag(value)]}")
    return -value


def get_key(target: Any, key: Any) -> Any:
    """`target.key` / `target[key]`: a mapping key or list position; missing gives null."""
    if target is None:
        return None
    kind = tag(target)
    if kind == MAP:
        if not isinstance(key, str):
            raise EvalError(f"a mapping key is a string, not {TYPE_NAMES[tag(key)]}")
        return target.get(key)
    if kind == LIST:
        if tag(key) != NUM or not float(key).is_integer():
            raise EvalError(f"a list index is a whole number, not {TYPE_NAMES[tag(key)]}")
        index = int(key)
        return target[index] if -len(target) <= index < len(target) else None
    raise EvalError(f"{TYPE_NAMES[kind]} has no keys; only meta and lists can be indexed")
