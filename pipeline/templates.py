"""Placeholder templates over an event (`"{stem}-{kind}"`), shared by stages and sinks.

Placeholders: ``{path}`` ``{kind}`` ``{src_path}`` ``{name}`` ``{stem}`` ``{ext}``
``{dir}`` ``{relpath}`` ``{id}`` ``{time}`` ``{source}`` ``{is_dir}`` ``{paths}`` and
``{meta.KEY}`` (``{meta.a.b}`` reads inside a nested mapping). ``{X:-default}`` gives
a default when the value is missing or null.

Only ``{name}`` (lower-case letters and ``_``) or ``{meta.KEY}`` is a placeholder, so
other braces are plain text (``awk '{print $1}'``, ``{}``); ``{{`` and ``}}`` always
write one literal brace (``{{path}}`` is the text ``{path}``). An unknown ``{name}``
is an error when the config loads, naming its column. Event data is never passed
through `str.format`: a file name with braces, ``%`` or ``$(...)`` is just text.

Values: ``name``/``stem``/``ext`` split the last path component (``a.tar.gz`` →
``a.tar`` + ``.gz``; ``.bashrc`` has no extension); ``relpath`` is ``meta.relpath``
when a stage set it, else the path below the watched folder (``meta.root``), else the
path; ``time`` is RFC 3339 UTC; ``src_path`` is empty unless the event is a move from
a known path; ``paths`` is a batch's ``meta.paths`` one per line (else the path).
Numbers and text appear as they are, true/false in lower case, lists and mappings as
JSON. A ``{meta.KEY}`` the event lacks, without a default, raises `TemplateError`
unless the caller passes ``missing=`` (a command must not get an invented empty
argument; a log line may).

Paths that are not valid UTF-8 come back as ``str`` with surrogate escapes, like
`Event.path`: ``os.fsencode(render(...))`` gives the exact bytes.
"""

from __future__ import annotations

import functools
import json
import os
import posixpath
import re
import socket
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Annotated, Any

from pydantic import AfterValidator, WithJsonSchema

from pipeline.cloudevents import format_time, subject_of

if TYPE_CHECKING:
    from pipeline.event import Event

__all__ = [
    "PLACEHOLDERS",
    "PROCESS_CONSTANTS",
    "Template",
    "TemplateError",
    "TemplateText",
    "bind_constants",
    "compile_template",
    "placeholders",
    "process_constants",
    "render",
]


class TemplateError(ValueError):
    """A template that does not parse, or a placeholder this event cannot fill."""


def _name(event: Event) -> str:
    return posixpath.basename(event.path.rstrip("/")) or event.path


def _ext(event: Event) -> str:
    stem, ext = posixpath.splitext(_name(event))
    return ext if stem else ""


def _stem(event: Event) -> str:
    name = _name(event)
    return name[: len(name) - len(_ext(event))]


def _relpath(event: Event) -> str:
    given = event.meta.get("relpath")
    return given if isinstance(given, str) else subject_of(event)


def _paths(event: Event) -> str:
    listed = event.meta.get("paths")
    if isinstance(listed, list | tuple) and all(isinstance(p, str) for p in listed):
        return "\n".join(listed)
    return event.path


PLACEHOLDERS: dict[str, Callable[[Event], Any]] = {
    "path": lambda e: e.path,
    "kind": lambda e: e.kind.value,
    "src_path": lambda e: e.src_path or "",
    "name": _name,
    "stem": _stem,
    "ext": _ext,
    "dir": lambda e: posixpath.dirname(e.path.rstrip("/")) or "/",
    "relpath": _relpath,
    "id": lambda e: e.id,
    "time": lambda e: format_time(e.time),
    "source": lambda e: e.source,
    "is_dir": lambda e: e.is_dir,
    "paths": _paths,
}
"""The fixed placeholders and how each reads an event (plus `meta.KEY`)."""

_TOKEN = re.compile(r"\{\{|\}\}|\{(meta\.[^{}:]+|[a-z_]+)(?::-([^{}]*))?\}")


def _text(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    return json.dumps(value, ensure_ascii=False, default=str, separators=(",", ":"))


class Field:
    """One placeholder of a parsed template."""

    __slots__ = ("default", "key", "name", "read")

    def __init__(self, name: str, default: str | None, column: int) -> None:
        self.name = name
        self.default = default
        self.key: tuple[str, ...] = ()
        if name.startswith("meta."):
            self.key = tuple(name.removeprefix("meta.").split("."))
            if not all(part.strip() for part in self.key):
                raise TemplateError(f"column {column}: empty key in {{{name}}}")
            self.read: Callable[[Event], Any] = self._meta
        elif name in PLACEHOLDERS:
            self.read = PLACEHOLDERS[name]
        else:
            known = ", ".join("{" + p + "}" for p in PLACEHOLDERS)
            raise TemplateError(
                f"column {column}: unknown placeholder {{{name}}}; known: {known}, "
                "{meta.KEY} (write {{ and }} for literal braces)"
            )

    def _meta(self, event: Event) -> Any:
        value: Any = event.meta
        for part in self.key:
            value = value.get(part) if isinstance(value, Mapping) else None
        return value

    def value(self, event: Event, missing: str | None = None) -> str:
        found = self.read(event)
        if found is None or (found == "" and self.default is not None):
            if self.default is not None:
                return self.default
            if missing is not None:
                return missing
            raise TemplateError(
                f"{{{self.name}}}: this event has no {self.name}; give a default like "
                f"{{{self.name}:-unknown}}"
            )
        return _text(found)


class Template:
    """A parsed template: literal text and `Field`s, in order; `render(event)` fills it."""

    __slots__ = ("fields", "parts", "text")

    def __init__(self, text: str) -> None:
        self.text = text
        parts: list[str | Field] = []
        literal: list[str] = []
        position = 0
        for match in _TOKEN.finditer(text):
            literal.append(text[position : match.start()])
            position = match.end()
            if match.group(0) in ("{{", "}}"):
                literal.append(match.group(0)[0])
                continue
            if "".join(literal):
                parts.append("".join(literal))
            literal = []
            parts.append(Field(match.group(1), match.group(2), match.start() + 1))
        literal.append(text[position:])
        if "".join(literal):
            parts.append("".join(literal))
        self.parts: tuple[str | Field, ...] = tuple(parts)
        self.fields = frozenset(p.name for p in parts if isinstance(p, Field))

    @property
    def starts_with_field(self) -> bool:
        return bool(self.parts) and isinstance(self.parts[0], Field)

    @property
    def is_single_field(self) -> bool:
        return len(self.parts) == 1 and isinstance(self.parts[0], Field)

    def render(
        self,
        event: Event,
        escape: Callable[[str], str] | None = None,
        missing: str | None = None,
    ) -> str:
        """The text with each placeholder's value (passed through `escape`, if given).

        A missing `{meta.KEY}` without a default raises TemplateError, or becomes
        `missing` when that is given.
        """
        out: list[str] = []
        for part in self.parts:
            if isinstance(part, str):
                out.append(part)
            else:
                value = part.value(event, missing)
                out.append(escape(value) if escape is not None else value)
        return "".join(out)

    def __repr__(self) -> str:
        return f"Template({self.text!r})"


PROCESS_CONSTANTS = ("pipeline", "hostname", "pid")
"""Placeholders a component may fill when it is built, before any event exists."""


def process_constants(pipeline: str) -> dict[str, str]:
    """The values of PROCESS_CONSTANTS for a component of `pipeline` in this process."""
    return {"pipeline": pipeline, "hostname": socket.gethostname(), "pid": str(os.getpid())}


def bind_constants(text: str, values: Mapping[str, str]) -> str:
    """`text` with `{name}` replaced by `values[name]` (escaped, so a value's own braces
    stay literal), ready for `compile_template`: names such as a queue, a stream or a
    topic mix per-process constants with event placeholders in one template language.
    `{{name}}` is the literal text `{name}` and is left alone."""
    if not values:
        return text
    escaped = {name: value.replace("{", "{{").replace("}", "}}") for name, value in values.items()}
    names = "|".join(map(re.escape, values))
    return re.sub(r"(?<!\{)\{(" + names + r")\}(?!\})", lambda m: escaped[m[1]], text)


@functools.lru_cache(maxsize=1024)
def compile_template(text: str) -> Template:
    """Parse once (cached); raises TemplateError naming the column of the problem."""
    return Template(text)


def render(template: str, event: Event) -> str:
    """Fill `template` from `event`; raises TemplateError for a missing `{meta.KEY}`."""
    return compile_template(template).render(event)


def placeholders(template: str) -> set[str]:
    """The placeholder names `template` uses, e.g. {"path", "meta.size"}; validates it."""
    return set(compile_template(template).fields)


def validate_template_text(text: str) -> str:
    """Pydantic validator: the text itself, once it compiles."""
    compile_template(text)
    return text


TemplateText = Annotated[
    str,
    AfterValidator(validate_template_text),
    WithJsonSchema({"type": "string", "format": "fspipeline-template", "examples": ["{path}"]}),
]
"""An option holding a template, validated when the config loads (unknown placeholders)."""
