"""Masks secrets in text that is about to be logged or shown: passwords in URLs."""

from __future__ import annotations

import re
from typing import Any

MASK = "***"

# scheme://user:password@host — the password is everything between the first ':' after
# the '//' and the last '@' before the host (a password may itself contain '@' or ':').
_URL_PASSWORD = re.compile(
    r"(?P<head>\b[a-zA-Z][a-zA-Z0-9+.-]*://[^\s:/@]*:)(?P<secret>[^\s/]*)(?P<tail>@[^\s@/]+)"
)


def redact(text: str) -> str:
    """`text` with the password of every `scheme://user:password@host` URL masked."""
    if "://" not in text:
        return text
    return _URL_PASSWORD.sub(lambda m: f"{m['head']}{MASK}{m['tail']}", text)


def redact_value(value: Any) -> Any:
    """`value` with every string inside it (dicts, lists, tuples) redacted."""
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {key: redact_value(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(redact_value(item) for item in value)
    if isinstance(value, BaseException):
        return redact(f"{type(value).__name__}: {value}")
    return value
