"""Stream, group and consumer names: event placeholders plus a few fixed per process.

The event placeholders (`{kind}`, `{meta.KEY}`, …) are those of `pipeline.templates`.
On top of them a name may use constants known when the component is built:
`{pipeline}` (the pipeline's name) and, for a consumer, `{hostname}` and `{pid}`. They
are written into the text (braces escaped) before the text is compiled as a template,
so there is one template language, not two.
"""

from __future__ import annotations

import os
from typing import Annotated

from pipeline import (
    Event,
    EventKind,
    Template,
    TemplateError,
    bind_constants,
    compile_template,
    process_constants,
)
from pipeline.templates import PROCESS_CONSTANTS as CONSTANTS
from pydantic import AfterValidator, WithJsonSchema


def _literal(template: Template) -> str | None:
    """The text of a template without placeholders (braces unescaped), else None."""
    if template.fields:
        return None
    return "".join(part for part in template.parts if isinstance(part, str))


class StreamName:
    """A stream name that may depend on the event (`fs:{kind}`), or a fixed one."""

    def __init__(self, text: str, pipeline: str) -> None:
        self.template = compile_template(bind_constants(text, process_constants(pipeline)))
        self.fixed = _literal(self.template)
        """The name when it does not depend on the event, else None."""

    def of(self, event: Event) -> str | bytes:
        """The stream `event` goes to (bytes when a path in it is not valid UTF-8: Redis
        keys are binary, and the name keeps the file name's exact bytes)."""
        if self.fixed is not None:
            return self.fixed
        return os.fsencode(self.template.render(event))


def fixed_name(text: str, pipeline: str) -> str:
    """`text` with the constants filled in; raises TemplateError if it names an event field."""
    template = compile_template(bind_constants(text, process_constants(pipeline)))
    name = _literal(template)
    if name is None:
        used = ", ".join("{" + field + "}" for field in sorted(template.fields))
        allowed = ", ".join("{" + c + "}" for c in CONSTANTS)
        raise TemplateError(
            f"{text!r} uses {used}, which an event fills; a name read before any event "
            f"exists can only use {allowed}"
        )
    if not name:
        raise TemplateError("the name is empty")
    return name


def _valid_event_name(text: str) -> str:
    name = StreamName(text, "pipeline")
    if not text.strip():
        raise TemplateError("the stream name is empty")
    # A name that cannot be made for an event would fail its whole batch, every time:
    # each {meta.KEY} needs a default (an event with no meta at all shows it).
    try:
        name.of(Event(kind=EventKind.CREATED, path="/", source="check/check"))
    except TemplateError as exc:
        raise TemplateError(f"{exc} (an event without it would have no stream to go to)") from exc
    return text


def _valid_fixed_name(text: str) -> str:
    fixed_name(text, "pipeline")
    return text


EventName = Annotated[
    str,
    AfterValidator(_valid_event_name),
    WithJsonSchema({"type": "string", "examples": ["fspipeline:{pipeline}", "fs:{kind}"]}),
]
"""An option naming a stream per event: constants and event placeholders."""

FixedName = Annotated[
    str,
    AfterValidator(_valid_fixed_name),
    WithJsonSchema({"type": "string", "examples": ["fspipeline:{pipeline}"]}),
]
"""An option naming a stream, group or consumer: only {pipeline}, {hostname} and {pid}."""
