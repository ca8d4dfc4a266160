"""Fuzzing the config loader (pipeline/config/) with documents shaped like configs: every
component type and option name the registry knows, with values of every kind (wrong
types, huge numbers, ${VAR} references, hostile regexes and templates), and valid configs
damaged character by character. The promise: a Plan, or a ConfigError whose every problem
is `FILE:LINE:COL: message` inside the file; never a traceback.

tests/unit/test_config_loader.py fuzzes with YAML-ish text; this file goes deeper, past the
YAML parser into validation, where the value-specific code paths are.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipeline.components import ComponentKind
from pipeline.config import load_config
from pipeline.config.plan import DELIVERY_KEYS
from pipeline.errors import ConfigError
from pipeline.registry import Registry, build_registry

REGISTRY = build_registry(autoload=False)
FUZZ = settings(
    max_examples=150,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
PROBLEM = re.compile(r"^(?P<file>.+?):(?P<line>\d+):(?P<col>\d+): (?P<msg>.+)$", re.DOTALL)
ENVIRON = {"SET": "5s", "EMPTY": "", "URL": "redis://u:hunter2@h/0"}

SECTIONS = {
    "sources": ComponentKind.SOURCE,
    "stages": ComponentKind.STAGE,
    "sinks": ComponentKind.SINK,
}
TYPES = {kind: REGISTRY.names(kind) for kind in ComponentKind}
OPTIONS = {
    name: sorted(spec.options_model.model_fields)
    for kind in ComponentKind
    for name in REGISTRY.names(kind)
    if (spec := REGISTRY.get(kind, name)) is not None
}

scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.sampled_from([-1, 0, 2**64])
    | st.floats()
    | st.text(max_size=12)
    | st.sampled_from(
        [
            *("10MB", "250ms", "-5s", "1e400", "nan", "${SET}", "${UNSET}", "${EMPTY:-2s}"),
            *("${bad", "$${x}", "{path}", "{nope}", "{meta.}", "a{4294967296}", "(a+)+$"),
            *("ext == '.csv'", "size >", 'matches(name, "(")', "**/*.csv", "!x", "["),
            *('matches(name, "a{4294967296}")', "1" * 400 + "MB > size", '"\\U0011FFFF"'),
            *("/", ".", "..", "../../etc", "~", "~nobody/x", "\0", "\udcff", "SIGKILL", "x" * 300),
            *("closed_write", "moved", "queue", "nul", "json", "text", "root", "1h", "0"),
            "${URL}",
        ]
    )
)
values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3)
    ),
    max_leaves=6,
)


# Values in the language of the option, so that examples get past the type checks.
EXPRESSIONS = st.sampled_from(
    [
        *('matches(name, "a{4294967296}")', "1" * 400 + "MB > size", '"\\U0011FFFF" == name'),
        *("size > 10MB and ext == '.csv'", "meta.x * 1.5 > 3", "glob('**/x')", "age() > 5m"),
        *("²", "1¹", "lower(size)", "(" * 60, "x" * 5000),
    ]
)
TEMPLATES = st.sampled_from(["{path}", "{nope}", "{meta.a:-x}", "{{", "{meta..a}", "-{name}"])
TYPED: dict[str, st.SearchStrategy[Any]] = {
    "expression": EXPRESSIONS,
    "when": EXPRESSIONS,
    "regex": st.sampled_from(["a{4294967296}", "(", "(?P<x>", "^.*$"]),
    "template": TEMPLATES,
    "path_template": TEMPLATES,
    "argv": st.lists(TEMPLATES, min_size=1, max_size=3),
    "url": st.sampled_from(["http://u:hunter2@h/{relpath}", "ftp://x", "https://h/{nope}"]),
}


@st.composite
def components(draw: st.DrawFn, kind: ComponentKind) -> Any:
    if draw(st.integers(0, 20)) == 0:
        return draw(values)  # not even a mapping
    type_name = draw(st.sampled_from([*TYPES[kind], "nope", "inotfy"]) | values)
    keys = OPTIONS.get(type_name, []) if isinstance(type_name, str) else []
    pool = [*keys, *(sorted(DELIVERY_KEYS) if kind is ComponentKind.SINK else []), "when", "x"]
    options = {
        key: draw(TYPED.get(key, values) | values)
        for key in draw(st.lists(st.sampled_from(pool), max_size=5, unique=True))
    }
    return {"type": type_name, **options} if draw(st.integers(0, 10)) else options


@st.composite
def pipelines(draw: st.DrawFn) -> Any:
    body: dict[str, Any] = {}
    for section, kind in SECTIONS.items():
        if draw(st.integers(0, 8)):
            body[section] = draw(st.lists(components(kind), max_size=3))
    if draw(st.integers(0, 5)) == 0:
        body["dead_letter"] = draw(components(ComponentKind.SINK))
    if draw(st.integers(0, 10)) == 0:
        body["extra"] = draw(values)
    return body


@st.composite
def documents(draw: st.DrawFn) -> Any:
    document: dict[Any, Any] = {}
    if draw(st.booleans()):
        document["state_dir"] = draw(values)
    if draw(st.booleans()):
        document["shutdown_timeout"] = draw(values)
    names = st.sampled_from(["landing", "a.b-c_1", "bad name!", "", "-x", "ü"])
    document["pipelines"] = draw(st.dictionaries(names, pipelines(), max_size=3))
    if draw(st.integers(0, 10)) == 0:
        document = draw(st.sampled_from([[document], "text", None, {"pipelines": None}]))
    return document


def check(path: Path, text: str, registry: Registry) -> None:
    path.write_text(text, encoding="utf-8", errors="surrogatepass")
    lines = max(text.count("\n") + 1, 1)
    try:
        load_config(path, registry, ENVIRON)
    except ConfigError as exc:
        assert exc.problems
        for problem in exc.problems:
            match = PROBLEM.match(problem)
            assert match, problem
            assert match["file"] == str(path)
            assert 1 <= int(match["line"]) <= lines + 1, problem
            assert "hunter2" not in problem, problem


@pytest.fixture(scope="module")
def registry() -> Registry:
    return REGISTRY


@FUZZ
@given(documents())
def test_config_shaped_documents_give_a_plan_or_located_problems(
    tmp_path: Path, registry: Registry, document: Any
) -> None:
    text = yaml.safe_dump(document, sort_keys=False, allow_unicode=True)
    check(tmp_path / "fuzz.yaml", text, registry)


VALID = """\
state_dir: .state
shutdown_timeout: ${SET}
pipelines:
  landing:
    sources:
      - type: inotify
        paths: [inbox, /abs/watched]
        events: [closed_write, moved]
    stages:
      - type: filter
        include: ["**/*.csv"]
        expression: 'ext == ".csv" and size > 10MB'
      - type: debounce
        quiet: 200ms
      - type: transform
        set: {meta.key: "{stem}-{kind}"}
    sinks:
      - type: command
        argv: [python, ingest.py, "{path}"]
        when: 'glob("reports/**")'
        max_attempts: 5
      - type: logfile
        path: events.jsonl
        template: "{time} {kind} {path}"
    dead_letter: {type: console}
"""
PIECES = [*"{}[]:,-&*!|>?'\"#%@`\n\t $.", "  ", "- ", ": ", "${", "}}", "{{", "!!int ", "<<: "]
PIECES += ["9" * 5000, "[" * 200, "*x", "&x "]  # a number Python refuses, deep nesting


@FUZZ
@given(
    st.lists(
        st.tuples(st.integers(0, len(VALID)), st.integers(0, 3), st.sampled_from(PIECES)),
        min_size=1,
        max_size=4,
    )
)
def test_a_valid_config_damaged_anywhere_gives_a_plan_or_located_problems(
    tmp_path: Path, registry: Registry, edits: list[tuple[int, int, str]]
) -> None:
    text = VALID
    for wanted, removed, inserted in edits:
        at = min(wanted, len(text))
        text = text[:at] + inserted + text[at + removed :]
    check(tmp_path / "fuzz.yaml", text, registry)


def test_the_undamaged_config_is_valid(tmp_path: Path, registry: Registry) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(VALID)
    assert load_config(path, registry, ENVIRON).pipelines[0].name == "landing"
