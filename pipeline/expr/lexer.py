"""Splits expression text into tokens, each with the 1-based column where it starts."""

from __future__ import annotations

import dataclasses
import enum
import sys
from typing import Any

from pipeline.expr.errors import ExpressionError
from pipeline.expr.units import known_units, unit_value

KEYWORDS = frozenset({"and", "or", "not", "in", "true", "false", "null"})
_OPERATORS = ("==", "!=", "<=", ">=", "<", ">", "+", "-", "*", "/", "%", "(", ")", "[", "]")
_PUNCT = (",", ".")
_HINTS = {
    "=": "use == to compare",
    "&&": "use `and`",
    "||": "use `or`",
    "!": "use `not`",
    "&": "use `and`",
    "|": "use `or`",
}
_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "0": "\0", "\\": "\\", "'": "'", '"': '"'}


class Tok(enum.Enum):
    NUMBER = "number"
    STRING = "string"
    NAME = "name"
    KEYWORD = "keyword"
    OP = "operator"
    END = "end of expression"


@dataclasses.dataclass(frozen=True, slots=True)
class Token:
    kind: Tok
    text: str
    col: int
    value: Any = None


def _digit(ch: str) -> bool:
    """An ASCII digit: `str.isdigit` also takes "²", which `int()` refuses."""
    return "0" <= ch <= "9"


def _number(text: str, start: int) -> tuple[Token, int]:
    i = start
    n = len(text)
    while i < n and (_digit(text[i]) or text[i] == "_"):
        i += 1
    if i < n and text[i] == "." and i + 1 < n and _digit(text[i + 1]):
        i += 1
        while i < n and (_digit(text[i]) or text[i] == "_"):
            i += 1
    digits = text[start:i]
    if digits.endswith("_") or "__" in digits:
        raise ExpressionError(f"malformed number {digits!r}", start + 1)
    number: float | int = float(digits) if "." in digits else int(digits.replace("_", ""))
    unit_start = i
    while i < n and text[i].isalpha():
        i += 1
    unit = text[unit_start:i]
    if unit:
        scaled = unit_value(_float(number, start), unit)
        if scaled is None:
            raise ExpressionError(
                f"unknown unit {unit!r} after {digits}; {known_units()}", start + 1
            )
        number = scaled
    elif i < n and (text[i].isalnum() or text[i] == "_"):
        raise ExpressionError(f"malformed number {text[start : i + 1]!r}", start + 1)
    return Token(Tok.NUMBER, text[start:i], start + 1, number), i


def _float(number: float, start: int) -> float:
    try:
        return float(number)
    except OverflowError:
        raise ExpressionError("number too large", start + 1) from None


def _string(text: str, start: int) -> tuple[Token, int]:
    raw = text[start] in "rR"
    i = start + 1 if raw else start
    quote = text[i]
    i += 1
    out: list[str] = []
    n = len(text)
    while i < n:
        ch = text[i]
        if ch == quote:
            return Token(Tok.STRING, text[start : i + 1], start + 1, "".join(out)), i + 1
        if ch == "\\" and i + 1 < n:
            if raw:
                out.append(text[i : i + 2])
                i += 2
                continue
            nxt = text[i + 1]
            if nxt in _ESCAPES:
                out.append(_ESCAPES[nxt])
                i += 2
                continue
            width = {"x": 2, "u": 4, "U": 8}.get(nxt)
            digits = text[i + 2 : i + 2 + width] if width else ""
            if (
                width
                and len(digits) == width
                and all(c in "0123456789abcdefABCDEF" for c in digits)
                and int(digits, 16) <= sys.maxunicode
            ):
                out.append(chr(int(digits, 16)))
                i += 2 + width
                continue
            raise ExpressionError(
                f"unknown escape \\{nxt} in a string; write \\\\ for a backslash, or use a raw "
                'string r"..." (handy for regular expressions)',
                i + 1,
            )
        out.append(ch)
        i += 1
    raise ExpressionError(f"string starting here is never closed with {quote}", start + 1)


def tokenize(text: str) -> list[Token]:
    """The tokens of `text`, ending with an END token; raises ExpressionError."""
    tokens: list[Token] = []
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        if ch.isspace():
            i += 1
        elif _digit(ch) or (ch == "." and i + 1 < n and _digit(text[i + 1])):
            if ch == ".":
                raise ExpressionError("write numbers with a leading digit: 0.5", i + 1)
            token, i = _number(text, i)
            tokens.append(token)
        elif ch in "\"'" or (ch in "rR" and i + 1 < n and text[i + 1] in "\"'"):
            token, i = _string(text, i)
            tokens.append(token)
        elif ch.isalpha() or ch == "_":
            start = i
            while i < n and (text[i].isalnum() or text[i] == "_"):
                i += 1
            word = text[start:i]
            kind = Tok.KEYWORD if word in KEYWORDS else Tok.NAME
            tokens.append(Token(kind, word, start + 1))
        else:
            for op in (*_OPERATORS, *_PUNCT):
                if text.startswith(op, i):
                    tokens.append(Token(Tok.OP, op, i + 1))
                    i += len(op)
                    break
            else:
                two = text[i : i + 2]
                hint = _HINTS.get(two) or _HINTS.get(ch)
                message = f"unexpected character {ch!r}" + (f"; {hint}" if hint else "")
                raise ExpressionError(message, i + 1)
    tokens.append(Token(Tok.END, "", n + 1))
    return tokens
