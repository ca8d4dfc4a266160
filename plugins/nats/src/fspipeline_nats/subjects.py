"""Subject templates: fspipeline's placeholders, plus `{pipeline}`, made into NATS subjects.

A subject is dot-separated tokens. Each placeholder's value fills exactly one token: a
`.`, `*`, `>`, white space or a control character in it becomes `_` (a file called
`a.csv` gives the token `a_csv`), and an empty value becomes `_`. So an event can never
turn a subject into a wildcard or split it into extra tokens.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Annotated

from pipeline import Event, EventKind, Template, TemplateError, bind_constants, compile_template
from pydantic import AfterValidator, WithJsonSchema

_PLACEHOLDER = re.compile(r"\{[^{}]*\}")
_NOT_IN_TOKEN = re.compile(r"[.*>\s\x00-\x1f\x7f]|[\udc80-\udcff]")
_SAMPLE = Event(
    EventKind.CLOSED_WRITE,
    "/data/in/a.csv",
    "sample/inotify",
    time=datetime(2026, 1, 1, tzinfo=UTC),
    meta={"root": "/data"},
)


def token(value: str) -> str:
    """`value` as one subject token."""
    return _NOT_IN_TOKEN.sub("_", value) or "_"


def compile_subject(text: str, pipeline: str) -> Template:
    """The template for the sink of `pipeline`, `{pipeline}` filled in."""
    return compile_template(bind_constants(text, {"pipeline": token(pipeline)}))


def render_subject(template: Template, event: Event) -> str:
    """The subject for `event`; raises TemplateError when a `{meta.KEY}` is missing."""
    return template.render(event, escape=token)


def check_subject(subject: str) -> str | None:
    """What is wrong with a subject for publishing, or None."""
    for part in subject.split("."):
        if not part:
            return f"{subject!r} has an empty token (two dots, or a dot at an end)"
        if _NOT_IN_TOKEN.search(part):
            return f"{subject!r} has a wildcard (* or >), white space or a control character"
    return None


def validate_subject_template(text: str) -> str:
    """Pydantic validator: the template compiles and makes a valid subject."""
    try:
        subject = render_subject(compile_subject(text, "pipeline"), _SAMPLE)
    except TemplateError as exc:
        if "this event has no" in str(exc):
            return text  # a {meta.KEY} the sample lacks: the template itself is fine
        raise ValueError(f"{exc}; a subject also takes {{pipeline}}") from None
    problem = check_subject(subject)
    if problem:
        raise ValueError(f"{text!r} does not make a NATS subject: {problem}")
    return text


SubjectTemplate = Annotated[
    str,
    AfterValidator(validate_subject_template),
    WithJsonSchema(
        {"type": "string", "format": "fspipeline-template", "examples": ["fs.{pipeline}.{kind}"]}
    ),
]
"""A subject with placeholders, checked when the config loads."""


def wildcard_of(text: str, pipeline: str) -> str:
    """The subject pattern a template can produce: each token with a placeholder is `*`.

    `fs.{pipeline}.{kind}` gives `fs.landing.*` for the pipeline `landing`.
    """
    bound = bind_constants(text, {"pipeline": token(pipeline)})
    filled = _PLACEHOLDER.sub("\x00", bound.replace("{{", "").replace("}}", ""))
    return ".".join("*" if "\x00" in part else part for part in filled.split("."))
