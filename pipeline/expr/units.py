"""Number suffixes in expressions: byte sizes (`10MB`, `2GiB`) and durations (`250ms`, `5m`)."""

from __future__ import annotations

from pipeline.options import DURATION_UNITS, SIZE_UNITS


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
