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


# NATS takes a token as the whole user part: nats://TOKEN@host (also tls://).
_URL_TOKEN = re.compile(r"(?P<head>\b(?:nats|tls)://)(?P<secret>[^\s:/@]+)(?P<tail>@[^\s@/]+)")
# Credentials some services take in the query string (webhooks, signed URLs).
_QUERY_SECRET = re.compile(
    r"(?P<head>[?&](?:token|access_token|api_key|apikey|password|passwd|secret|sig|signature"
    r"|x-amz-signature|x-amz-security-token)=)"
    r"(?P<secret>[^&#\s]+)",
    re.IGNORECASE,
)


def _mask(match: re.Match[str]) -> str:
    return f"{match['head']}{MASK}{match.groupdict().get('tail') or ''}"


def redact(text: str) -> str:
    """`text` with the secrets of every URL masked: the password of `scheme://user:password@host`,
    a NATS token (`nats://TOKEN@host`) and credentials in a query string (`?token=`)."""
    if "://" not in text:
        return text
    text = _URL_PASSWORD.sub(_mask, text)
    text = _URL_TOKEN.sub(_mask, text)
    return _QUERY_SECRET.sub(_mask, text) if "=" in text else text


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
