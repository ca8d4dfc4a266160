"""The building blocks of component option schemas: base model, durations, paths."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, ValidationInfo, WithJsonSchema
from pydantic.functional_validators import AfterValidator

_DURATION = re.compile(r"^\s*(\d+(?:\.\d*)?|\.\d+)\s*(ms|s|m|h|d)?\s*$")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


class ComponentOptions(BaseModel):
    """Base of every component's options: unknown keys are errors, values are frozen."""

    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)


def parse_duration(value: Any) -> float:
    """`250ms`, `2s`, `1.5m`, `1h`, `7d` or a bare number of seconds, as seconds."""
    if isinstance(value, bool):
        raise ValueError("a duration is a string like 250ms, 2s or 1m")
    if isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str) and (match := _DURATION.match(value)):
        seconds = float(match.group(1)) * _UNIT_SECONDS[match.group(2) or "s"]
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
