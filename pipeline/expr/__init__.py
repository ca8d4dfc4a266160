"""A small, safe expression language over events, for `filter` and `when:` conditions.

Example: ``ext in [".csv", ".tsv"] and size > 10MB and not glob("tmp/")``.

Why a tokenizer and parser of our own, not Python's ``ast.parse`` with a whitelist:
nothing of user text ever reaches ``eval``/``exec``/``compile`` or Python's parser (whose
grammar and node types change between versions); the whole language is this package
(lexer, parser, compiler to closures, functions), so what it accepts is exactly what is
written here; errors name the column in the user's text; and the grammar carries what
Python lacks (``10MB``/``5m`` literals, ``null``/``true``, ``meta.key`` with a missing
key as null, no attribute access on anything else, so no way to reach a Python object).
Text length (4096), nesting (50) and tree depth (100) are bounded, so no input can
exhaust the stack. Compiling to nested closures (not walking a tree per event) makes a
typical condition cost 0.5 to 4 µs.

Values: strings (``"a"``, ``'a'``, raw ``r"\\d+"``), numbers (``3``, ``2.5``, sizes
``10KB``/``10MB`` = powers of 1000, ``10KiB``/``10MiB`` = powers of 1024, durations
``250ms``/``2s``/``5m``/``1h``/``1d`` in seconds), ``true``/``false``/``null``, lists
``[...]``. Names: ``kind path src_path name stem ext dir is_dir size mtime meta subject
id source``; ``meta.key`` / ``meta["key"]`` read meta (a missing key is null).

Operators, loosest first: ``or``; ``and``; ``not``; ``== != < <= > >= in`` and
``not in`` (no chaining); ``+ -``; ``* / %``; unary ``-``. ``==`` never coerces
(``"1" == 1`` is false); ``<`` etc. compare two numbers or two strings, are false
when a side is null, and raise otherwise; ``in`` tests list membership, substrings
or mapping keys. Arithmetic on null gives null. Truth: null, false, 0, "" and empty
lists are false.

Functions: see `pipeline.expr.functions` (glob, fnmatch, matches, startswith,
endswith, lower, upper, basename, dirname, len, age).

Compile once (`compile_expression`, cached); a syntax, name or type mistake found
then is an `ExpressionError` whose message starts with ``column N:``. A type error
only visible on a given event (``meta.x < 3`` where meta.x is a string) raises
`ExpressionError` from `evaluate`/`matches`; the engine dead-letters that event.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Annotated, Any

from pydantic import AfterValidator, WithJsonSchema

from pipeline.expr.compiler import Compiler
from pipeline.expr.errors import ExpressionError
from pipeline.expr.parser import parse
from pipeline.expr.scope import Scope

if TYPE_CHECKING:
    from pipeline.event import Event

__all__ = ["Expression", "ExpressionError", "ExpressionText", "compile_expression"]


class Expression:
    """A compiled expression: evaluate it against events, as often as needed."""

    __slots__ = ("_fn", "text")

    def __init__(self, text: str) -> None:
        tree = parse(text)
        code = Compiler().compile(tree)
        self.text = text
        self._fn = code.fn

    def evaluate(self, event: Event, now: float | None = None) -> Any:
        """The value of the expression for `event`; `now` (Unix seconds) is what `age()` uses.

        Raises ExpressionError on a type error that depends on the event's values.
        """
        try:
            return self._fn(Scope(event, now))
        except ExpressionError as exc:
            raise ExpressionError(f"{exc} in expression {self.text!r}") from None
        except RecursionError:
            raise ExpressionError(f"expression {self.text!r} is too deep") from None

    def matches(self, event: Event, now: float | None = None) -> bool:
        """Whether the expression is true for `event` (null, false, 0, "" and [] are false)."""
        return bool(self.evaluate(event, now))

    def __repr__(self) -> str:
        return f"Expression({self.text!r})"


@functools.lru_cache(maxsize=1024)
def compile_expression(text: str) -> Expression:
    """Compile `text` once; raises ExpressionError (a ValueError) naming the column."""
    if not isinstance(text, str):
        raise ExpressionError(f"an expression is a string, not {type(text).__name__}")
    return Expression(text)


def validate_expression_text(text: str) -> str:
    """Pydantic validator: the text itself, once it compiles."""
    compile_expression(text)
    return text


ExpressionText = Annotated[
    str,
    AfterValidator(validate_expression_text),
    WithJsonSchema(
        {
            "type": "string",
            "format": "fspipeline-expression",
            "examples": ['ext == ".csv" and size > 10MB'],
        }
    ),
]
"""An option holding an expression: validated by compiling it, so `pipeline check` shows
`column N: ...` at the option."""
