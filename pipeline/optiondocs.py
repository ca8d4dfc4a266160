"""Describes a component's options for people: type, default and doc of each, from its schema."""

from __future__ import annotations

import dataclasses
import enum
import json
import types
import typing
from pathlib import Path
from typing import Any

from pydantic import BaseModel
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined


@dataclasses.dataclass(frozen=True)
class OptionDoc:
    name: str
    type: str
    required: bool
    default: str | None
    doc: str


_NAMED_TYPES = {
    "parse_duration": "duration",
    "parse_size": "size",
    "validate_expression_text": "expression",
    "validate_template_text": "template",
}


def _named_type(metadata: list[Any]) -> str | None:
    """The name users know a validated option type by (duration, size, ...), if any.

    Plugins get the same names by naming their validators alike: any `validate_*_template`
    reads as `template`."""
    for item in metadata:
        name = getattr(getattr(item, "func", None), "__name__", "")
        if name in _NAMED_TYPES:
            return _NAMED_TYPES[name]
        if name.startswith("validate_") and name.endswith("_template"):
            return "template"
    return None


def _is_duration(metadata: list[Any]) -> bool:
    return _named_type(metadata) == "duration"


def describe_type(annotation: Any, metadata: list[Any] | None = None) -> str:
    """A short readable type: `list of path`, `duration`, `one of: keep, drop`."""
    metadata = metadata or []
    named = _named_type(metadata)
    if named is not None:
        return named
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin is typing.Annotated:
        return describe_type(args[0], [*metadata, *args[1:]])
    if origin in (typing.Union, types.UnionType):
        parts = [describe_type(a) for a in args if a is not type(None)]
        text = " or ".join(parts)
        return f"{text}, or null" if type(None) in args else text
    if origin is typing.Literal:
        return "{" + ", ".join(str(a) for a in args) + "}"
    if origin in (list, tuple, set, frozenset):
        return f"list of {describe_type(args[0]) if args else 'any'}"
    if origin is dict:
        return f"mapping of {describe_type(args[0])} to {describe_type(args[1])}"
    if isinstance(annotation, type):
        if issubclass(annotation, enum.Enum):
            return "{" + ", ".join(str(m.value) for m in annotation) + "}"
        if issubclass(annotation, Path):
            return "path"
        if issubclass(annotation, BaseModel):
            return "mapping"
        return {
            "str": "string",
            "int": "integer",
            "float": "number",
            "bool": "boolean",
            "SecretStr": "secret string",
        }.get(annotation.__name__, annotation.__name__)
    return str(annotation)


def _render_default(field: FieldInfo) -> str | None:
    if field.default is not PydanticUndefined:
        value = field.default
    elif field.default_factory is not None:
        value = field.default_factory()  # type: ignore[call-arg]
    else:
        return None
    if isinstance(value, enum.Enum):
        value = value.value
    if (
        isinstance(value, int | float)
        and not isinstance(value, bool)
        and (_is_duration(field.metadata) or describe_type(field.annotation).startswith("duration"))
    ):
        return f"{value * 1000:g}ms" if value < 1 else f"{value:g}s"
    return json.dumps(value, default=str)


def option_docs(model: type[BaseModel]) -> list[OptionDoc]:
    docs = []
    for name, field in model.model_fields.items():
        annotation = field.annotation
        docs.append(
            OptionDoc(
                name=field.alias or name,
                type=describe_type(annotation, list(field.metadata)),
                required=field.is_required(),
                default=_render_default(field),
                doc=(field.description or "").strip(),
            )
        )
    return docs
