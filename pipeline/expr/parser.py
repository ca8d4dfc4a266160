"""Parses tokens into a small syntax tree (precedence climbing), every node with its column.

Grammar, loosest binding first::

    expr    := or
    or      := and ("or" and)*
    and     := not ("and" not)*
    not     := "not" not | compare
    compare := sum (("==" | "!=" | "<" | "<=" | ">" | ">=" | "in" | "not" "in") sum)?
    sum     := product (("+" | "-") product)*
    product := unary (("*" | "/" | "%") unary)*
    unary   := "-" unary | postfix
    postfix := primary ("." NAME | "[" expr "]")*
    primary := NUMBER | STRING | "true" | "false" | "null" | NAME | NAME "(" args ")"
             | "(" expr ")" | "[" (expr ("," expr)* ","?)? "]"

Comparisons do not chain (`a < b < c` is an error: write `a < b and b < c`).
"""

from __future__ import annotations

import dataclasses
from typing import Any

from pipeline.expr.errors import ExpressionError
from pipeline.expr.lexer import Tok, Token, tokenize

MAX_LENGTH = 4096
"""Longest expression text accepted."""
MAX_DEPTH = 50
"""Deepest nesting accepted (parentheses, lists, calls, operators in a row)."""

COMPARISONS = frozenset({"==", "!=", "<", "<=", ">", ">=", "in", "not in"})


@dataclasses.dataclass(frozen=True, slots=True)
class Node:
    col: int


@dataclasses.dataclass(frozen=True, slots=True)
class Const(Node):
    value: Any


@dataclasses.dataclass(frozen=True, slots=True)
class Name(Node):
    name: str


@dataclasses.dataclass(frozen=True, slots=True)
class Attr(Node):
    target: Node
    name: str


@dataclasses.dataclass(frozen=True, slots=True)
class Index(Node):
    target: Node
    index: Node


@dataclasses.dataclass(frozen=True, slots=True)
class Call(Node):
    function: str
    args: tuple[Node, ...]


@dataclasses.dataclass(frozen=True, slots=True)
class ListOf(Node):
    items: tuple[Node, ...]


@dataclasses.dataclass(frozen=True, slots=True)
class Unary(Node):
    op: str
    operand: Node


@dataclasses.dataclass(frozen=True, slots=True)
class Binary(Node):
    op: str
    left: Node
    right: Node


class _Parser:
    def __init__(self, tokens: list[Token]) -> None:
        self.tokens = tokens
        self.pos = 0
        self.depth = 0

    @property
    def tok(self) -> Token:
        return self.tokens[self.pos]

    def take(self) -> Token:
        token = self.tokens[self.pos]
        self.pos += 1
        return token

    def at(self, *texts: str) -> bool:
        return self.tok.kind in (Tok.OP, Tok.KEYWORD) and self.tok.text in texts

    def expect(self, text: str, context: str) -> Token:
        if not self.at(text):
            raise ExpressionError(
                f"expected {text!r} {context}, found {_describe(self.tok)}", self.tok.col
            )
        return self.take()

    def nest(self) -> None:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise ExpressionError(f"nested more than {MAX_DEPTH} levels deep", self.tok.col)

    def expr(self) -> Node:
        self.nest()
        try:
            return self.or_()
        finally:
            self.depth -= 1

    def or_(self) -> Node:
        node = self.and_()
        while self.at("or"):
            col = self.take().col
            node = Binary(col, "or", node, self.and_())
        return node

    def and_(self) -> Node:
        node = self.not_()
        while self.at("and"):
            col = self.take().col
            node = Binary(col, "and", node, self.not_())
        return node

    def not_(self) -> Node:
        if self.at("not"):
            col = self.take().col
            self.nest()
            try:
                return Unary(col, "not", self.not_())
            finally:
                self.depth -= 1
        return self.compare()

    def _comparison_op(self) -> str | None:
        if self.at("==", "!=", "<", "<=", ">", ">=", "in"):
            return self.tok.text
        if not self.at("not"):
            return None
        nxt = self.tokens[self.pos + 1]
        if nxt.kind is Tok.KEYWORD and nxt.text == "in":
            return "not in"
        return None

    def compare(self) -> Node:
        node = self.sum()
        op = self._comparison_op()
        if op is None:
            return node
        col = self.take().col
        if op == "not in":
            self.take()
        node = Binary(col, op, node, self.sum())
        if self._comparison_op() is not None:
            raise ExpressionError(
                "comparisons do not chain; join them with `and` (a < b and b < c)", self.tok.col
            )
        return node

    def sum(self) -> Node:
        node = self.product()
        while self.at("+", "-"):
            token = self.take()
            node = Binary(token.col, token.text, node, self.product())
        return node

    def product(self) -> Node:
        node = self.unary()
        while self.at("*", "/", "%"):
            token = self.take()
            node = Binary(token.col, token.text, node, self.unary())
        return node

    def unary(self) -> Node:
        if self.at("-"):
            col = self.take().col
            self.nest()
            try:
                return Unary(col, "-", self.unary())
            finally:
                self.depth -= 1
        return self.postfix()

    def postfix(self) -> Node:
        node = self.primary()
        while self.at(".", "["):
            token = self.take()
            if token.text == ".":
                name = self.tok
                if name.kind not in (Tok.NAME, Tok.KEYWORD):
                    raise ExpressionError(
                        f"expected a key name after '.', found {_describe(name)}", name.col
                    )
                self.take()
                node = Attr(token.col, node, name.text)
            else:
                index = self.expr()
                self.expect("]", "to close the index")
                node = Index(token.col, node, index)
        return node

    def primary(self) -> Node:
        token = self.tok
        if token.kind in (Tok.NUMBER, Tok.STRING):
            self.take()
            return Const(token.col, token.value)
        if token.kind is Tok.KEYWORD and token.text in ("true", "false", "null"):
            self.take()
            return Const(token.col, {"true": True, "false": False, "null": None}[token.text])
        if token.kind is Tok.NAME:
            self.take()
            if self.at("("):
                self.take()
                return Call(token.col, token.text, self.items(")", "the call"))
            return Name(token.col, token.text)
        if self.at("("):
            self.take()
            node = self.expr()
            self.expect(")", "to close the parenthesis")
            return node
        if self.at("["):
            self.take()
            return ListOf(token.col, self.items("]", "the list"))
        raise ExpressionError(f"expected a value, found {_describe(token)}", token.col)

    def items(self, closer: str, what: str) -> tuple[Node, ...]:
        self.nest()
        try:
            found: list[Node] = []
            while not self.at(closer):
                found.append(self.expr())
                if not self.at(","):
                    break
                self.take()
            self.expect(closer, f"to close {what}")
            return tuple(found)
        finally:
            self.depth -= 1


def _describe(token: Token) -> str:
    if token.kind is Tok.END:
        return "the end of the expression"
    return f"{token.kind.value} {token.text!r}"


def parse(text: str) -> Node:
    """The syntax tree of `text`; raises ExpressionError naming the column of the problem."""
    if len(text) > MAX_LENGTH:
        raise ExpressionError(f"expression longer than {MAX_LENGTH} characters", MAX_LENGTH + 1)
    if not text.strip():
        raise ExpressionError("the expression is empty", 1)
    parser = _Parser(tokenize(text))
    node = parser.expr()
    if parser.tok.kind is not Tok.END:
        raise ExpressionError(
            f"unexpected {_describe(parser.tok)}; is an operator (and, or, ==, ...) missing?",
            parser.tok.col,
        )
    return node
