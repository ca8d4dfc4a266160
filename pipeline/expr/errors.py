"""The one error type of the expression language, located by column."""

from __future__ import annotations


class ExpressionError(ValueError):
    """An expression that does not compile, or that failed on one event.

    `column` is 1-based in the expression text (None when unknown); `str(error)` starts
    with `column N: ` so a config error names where in the expression the problem is.
    """

    def __init__(self, message: str, column: int | None = None) -> None:
        self.reason = message
        self.column = column
        super().__init__(f"column {column}: {message}" if column is not None else message)
