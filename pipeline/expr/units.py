"""Number suffixes: byte sizes (`10MB`, `2GiB`) and durations (`250ms`, `5m`) as plain numbers."""

from __future__ import annotations

import re
from typing import Annotated, Any

from pydantic import BeforeValidator, WithJsonSchema

SIZE_UNITS: dict[str, int] = {
    "b": 1,
    "kb": 1000,
    "mb": 1000**2,
    "gb": 1000**3,
    "tb": 1000**4,
    "kib": 1024,
    "mib": 1024**2,
    "gib": 1024**3,
    "tib": 1024**4,
}
"""Byte-size suffixes, case-insensitive: KB/MB/GB/TB are powers of 1000, KiB/MiB/... of 1024."""

DURATION_UNITS: dict[str, float] = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
"""Duration suffixes (lower case), in seconds."""

_SIZE = re.compile(r"^\s*(\d+(?:\.\d*)?|\.\d+)\s*([A-Za-z]*)\s*$")


def unit_value(number: float, unit: str) -> float | int | None:
    """`number` scaled by `unit` (a size gives whole bytes), or None for an unknown unit."""
    if unit in DURATION_UNITS:
        return number * DURATION_UNITS[unit]
    factor = SIZE_UNITS.get(unit.lower())
    if factor is None:
        return None
    return round(number * factor)


def known_units() -> str:
    return "sizes B, KB, MB, GB, TB, KiB, MiB, GiB, TiB; durations ms, s, m, h, d"


def parse_size(value: Any) -> int:
    """`10MB`, `1.5GiB`, `512` (bytes) or an integer, as a number of bytes."""
    if isinstance(value, bool):
        raise ValueError("a size is a number of bytes or a string like 10MB or 2GiB")
    if isinstance(value, int):
        size = value
    elif isinstance(value, float) and value.is_integer():
        size = int(value)
    elif isinstance(value, str) and (match := _SIZE.match(value)):
        factor = SIZE_UNITS.get((match.group(2) or "b").lower())
        if factor is None:
            raise ValueError(
                f"{value!r}: unknown size unit {match.group(2)!r}; use B, KB, MB, GB, TB "
                "(powers of 1000) or KiB, MiB, GiB, TiB (powers of 1024)"
            )
        size = round(float(match.group(1)) * factor)
    else:
        raise ValueError(f"{value!r} is not a size; write it like 512, 10KB, 5MB or 2GiB")
    if size < 0:
        raise ValueError("a size cannot be negative")
    return size


ByteSize = Annotated[
    int,
    BeforeValidator(parse_size),
    WithJsonSchema(
        {"anyOf": [{"type": "integer", "minimum": 0}, {"type": "string"}], "examples": ["10MB"]}
    ),
]
"""A size option, written `512`, `10KB`, `5MB` or `2GiB`, held as an int number of bytes."""
