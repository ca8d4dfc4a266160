"""Option help for people: type, default and doc of each option (pipeline/optiondocs.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import pytest
from pydantic import Field

from pipeline import ComponentKind, ComponentOptions, ConfigPath, Duration
from pipeline.config.plan import DeliveryPolicy
from pipeline.optiondocs import OptionDoc, describe_type, option_docs
from pipeline.registry import Registry, build_registry


@pytest.fixture(scope="module")
def registry() -> Registry:
    return build_registry(autoload=False)


def docs_of(registry: Registry, kind: ComponentKind, type_name: str) -> dict[str, OptionDoc]:
    spec = registry.get(kind, type_name)
    assert spec is not None, type_name
    return {doc.name: doc for doc in option_docs(spec.options_model)}


def test_inotify_options(registry: Registry) -> None:
    docs = docs_of(registry, ComponentKind.SOURCE, "inotify")

    assert docs["paths"].type == "list of path"
    assert docs["paths"].required is True
    assert docs["paths"].default is None

    assert docs["recursive"].type == "boolean"
    assert docs["recursive"].required is False
    assert docs["recursive"].default == "true"

    assert docs["move_wait"].type == "duration"
    assert docs["move_wait"].default == "50ms"

    events = docs["events"]
    assert events.type.startswith("list of {created, modified, ")
    assert "closed_write" in events.type
    assert events.type.endswith(", or null")
    assert events.default == "null"


def test_debounce_quiet_is_a_duration_shown_as_200ms(registry: Registry) -> None:
    quiet = docs_of(registry, ComponentKind.STAGE, "debounce")["quiet"]
    assert (quiet.type, quiet.required, quiet.default) == ("duration", False, "200ms")


def test_filter_options(registry: Registry) -> None:
    docs = docs_of(registry, ComponentKind.STAGE, "filter")
    assert docs["include"].type == "list of string"
    assert docs["include"].default == "[]"  # from a default factory
    assert docs["directories"].type == "{keep, drop, only}"
    assert docs["directories"].default == '"keep"'


def test_logfile_path_is_a_required_path(registry: Registry) -> None:
    docs = docs_of(registry, ComponentKind.SINK, "logfile")
    assert (docs["path"].type, docs["path"].required, docs["path"].default) == ("path", True, None)
    assert docs["fsync"].default == '"never"'


def test_delivery_options() -> None:
    docs = {doc.name: doc for doc in option_docs(DeliveryPolicy)}
    assert list(docs) == [
        "queue_size",
        "concurrency",
        "max_attempts",
        "send_timeout",
        "retry_backoff",
        "retry_max_backoff",
        "batch_size",
        "batch_wait",
        "spool",
        "spool_max",
    ]
    assert (docs["queue_size"].type, docs["queue_size"].default) == ("integer", "1024")
    assert (docs["max_attempts"].type, docs["max_attempts"].default) == ("integer", "3")
    assert (docs["send_timeout"].type, docs["send_timeout"].default) == (
        "duration, or null",
        "null",
    )
    assert (docs["retry_backoff"].type, docs["retry_backoff"].default) == ("duration", "500ms")
    assert all(doc.doc for doc in docs.values())


def test_options_are_listed_in_declaration_order(registry: Registry) -> None:
    spec = registry.get(ComponentKind.SOURCE, "inotify")
    assert spec is not None
    names = [doc.name for doc in option_docs(spec.options_model)]
    assert names == list(spec.options_model.model_fields)


def test_every_builtin_option_is_documented(registry: Registry) -> None:
    # The attribute docstrings are what `pipeline plugins NAME` shows; none may be missing.
    undocumented = [
        f"{spec.type_name}.{doc.name}"
        for spec in registry
        for doc in option_docs(spec.options_model)
        if not doc.doc
    ]
    assert undocumented == []


def test_every_required_option_has_no_default_and_the_others_have_one(
    registry: Registry,
) -> None:
    for spec in registry:
        for doc in option_docs(spec.options_model):
            assert (doc.default is None) == doc.required, f"{spec.type_name}.{doc.name}"


# -- a plugin author's options ----------------------------------------------------------------


class AuthorOptions(ComponentOptions):
    url: str
    """Where to send events."""
    timeout: Duration = 1.5
    """How long one request may take."""
    every: Duration = 90
    """How often to flush."""
    grace: Duration | None = 0.25
    """Extra wait at shutdown; null for none."""
    headers: dict[str, str] = Field(default_factory=dict)
    """HTTP headers."""
    mode: Literal["fast", "safe"] = "safe"
    """Speed or safety."""
    spool: ConfigPath | None = None
    """Folder for undelivered events."""
    retries: int | None = None
    """How often to retry."""
    ratio: float = 0.5
    """A plain number, not a duration."""
    home: Path = Path("/srv")
    """A plain path."""


@pytest.fixture(scope="module")
def author() -> dict[str, OptionDoc]:
    return {doc.name: doc for doc in option_docs(AuthorOptions)}


@pytest.mark.parametrize(
    ("name", "type_", "default"),
    [
        ("url", "string", None),
        ("timeout", "duration", "1.5s"),
        ("every", "duration", "90s"),
        ("headers", "mapping of string to string", "{}"),
        ("mode", "{fast, safe}", '"safe"'),
        ("spool", "path, or null", "null"),
        ("retries", "integer, or null", "null"),
        ("ratio", "number", "0.5"),
        ("home", "path", '"/srv"'),
    ],
)
def test_a_plugin_authors_options(
    author: dict[str, OptionDoc], name: str, type_: str, default: str | None
) -> None:
    doc = author[name]
    assert (doc.type, doc.default) == (type_, default)
    assert doc.required is (default is None and name == "url")
    assert doc.doc


def test_an_optional_duration_default_is_still_shown_as_a_duration(
    author: dict[str, OptionDoc],
) -> None:
    grace = author["grace"]
    assert grace.type == "duration, or null"
    assert grace.default == "250ms"


@pytest.mark.parametrize(
    ("annotation", "text"),
    [
        (str, "string"),
        (int, "integer"),
        (float, "number"),
        (bool, "boolean"),
        (list[int], "list of integer"),
        (tuple[str, ...], "list of string"),
        (dict[str, list[Path]], "mapping of string to list of path"),
        (int | str, "integer or string"),
        (Literal["keep", "drop"], "{keep, drop}"),
        (ComponentKind, "{source, stage, sink}"),
        (DeliveryPolicy, "mapping"),
    ],
)
def test_describe_type(annotation: object, text: str) -> None:
    assert describe_type(annotation) == text
