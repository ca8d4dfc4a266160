"""The building blocks of component option schemas: base model, durations, paths."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, ValidationInfo, WithJsonSchema
from pydantic.functional_validators import AfterValidator

_DURATION = re.compile(r"^\s*(\d+(?:\.\d*)?|\.\d+)\s*(ms|s|m|h|d)?\s*$")
DURATION_UNITS: dict[str, float] = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
"""Duration suffixes, in seconds."""
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


class ComponentOptions(BaseModel):
    """Base of every component's options: unknown keys are errors, values are frozen."""

    model_config = ConfigDict(
        extra="forbid", frozen=True, use_attribute_docstrings=True, defer_build=True
    )


def parse_duration(value: Any) -> float:
    """`250ms`, `2s`, `1.5m`, `1h`, `7d` or a bare number of seconds, as seconds."""
    if isinstance(value, bool):
        raise ValueError("a duration is a string like 250ms, 2s or 1m")
    if isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str) and (match := _DURATION.match(value)):
        seconds = float(match.group(1)) * DURATION_UNITS[match.group(2) or "s"]
    else:
        raise ValueError(f"{value!r} is not a duration; write it like 250ms, 2s, 1m or 1h")
    if seconds < 0:
        raise ValueError("a duration cannot be negative")
    return seconds


Duration = Annotated[
    float,
    BeforeValidator(parse_duration),
    WithJsonSchema({"type": "string", "pattern": _DURATION.pattern, "examples": ["250ms", "2s"]}),
]
"""A duration option, written `250ms` / `2s` / `1m` / `1h` / `1d`, held as float seconds."""


def _resolve_against_config(path: Path, info: ValidationInfo) -> Path:
    base = (info.context or {}).get("config_dir")
    path = path.expanduser()
    if not path.is_absolute() and isinstance(base, Path):
        path = base / path
    return Path(os.path.normpath(path.absolute()))


ConfigPath = Annotated[Path, AfterValidator(_resolve_against_config)]
"""A path option: `~` expanded, relative paths taken from the config file's folder."""


_SIZE = re.compile(r"^\s*(\d+(?:\.\d*)?|\.\d+)\s*([A-Za-z]*)\s*$")


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
