"""Loading a YAML config into a Plan, or every problem located (pipeline/config/)."""

from __future__ import annotations

import re
import textwrap
from collections.abc import Mapping
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipeline.components import ComponentKind
from pipeline.config import Plan, load_config
from pipeline.errors import ConfigError
from pipeline.registry import Registry, build_registry

PROBLEM = re.compile(
    r"^(?P<file>[^:]+):(?P<line>\d+):(?P<col>\d+): (?:(?P<path>[^ :]+): )?(?P<msg>.+)$"
)

VALID = """\
state_dir: .state
shutdown_timeout: 5s
pipelines:
  landing:
    sources:
      - type: inotify
        paths: [inbox, /abs/watched, ../sibling]
        recursive: ${REC:-false}
        events: [closed_write, moved]
        move_wait: 100ms
    stages:
      - type: filter
        include: ["**/*.csv"]
        exclude: ["**/.*"]
      - type: debounce
        quiet: ${QUIET:-250ms}
    sinks:
      - type: console
      - type: logfile
        path: ${LOG_DIR:-logs}/events.jsonl
        queue_size: 10
        max_attempts: 5
        retry_backoff: 2s
"""

# A valid config with a spot to break: tests replace one line of it.
BASE = """\
pipelines:
  landing:
    sources:
      - type: inotify
        paths: [inbox]
        recursive: true
    stages:
      - type: debounce
        quiet: 200ms
    sinks:
      - type: console
      - type: logfile
        path: events.jsonl
"""
SOURCES_SECTION = (
    "    sources:\n      - type: inotify\n        paths: [inbox]\n        recursive: true\n"
)
SINKS_SECTION = (
    "    sinks:\n      - type: console\n      - type: logfile\n        path: events.jsonl\n"
)


@pytest.fixture(scope="module")
def registry() -> Registry:
    return build_registry(autoload=False)


def write(folder: Path, text: str, name: str = "config.yaml") -> Path:
    path = folder / name
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def load(
    folder: Path, text: str, registry: Registry, environ: Mapping[str, str] | None = None
) -> Plan:
    return load_config(write(folder, text), registry, environ or {})


def problems_of(
    folder: Path, text: str, registry: Registry, environ: Mapping[str, str] | None = None
) -> list[dict[str, str]]:
    """Load a broken config; every problem parsed into file, line, col, path and msg."""
    path = write(folder, text)
    with pytest.raises(ConfigError) as caught:
        load_config(path, registry, environ or {})
    problems = caught.value.problems
    assert problems, "a ConfigError must list its problems"
    assert str(caught.value) == "\n".join(problems)
    parsed = []
    for problem in problems:
        match = PROBLEM.match(problem)
        assert match, f"not FILE:LINE:COL: [path: ]message: {problem!r}"
        assert match["file"] == str(path)
        parsed.append(match.groupdict())
    return parsed


def position(text: str, needle: str, occurrence: int = 1) -> tuple[str, str]:
    """1-based (line, col), as strings, of the `occurrence`-th `needle` in `text`."""
    start = -1
    for _ in range(occurrence):
        start = text.index(needle, start + 1)
    line = text.count("\n", 0, start) + 1
    col = start - (text.rfind("\n", 0, start) + 1) + 1
    return str(line), str(col)


def only(problems: list[dict[str, str]]) -> dict[str, str]:
    assert len(problems) == 1, "\n".join(p["msg"] for p in problems)
    return problems[0]


def assert_at(problem: dict[str, str], text: str, needle: str, occurrence: int = 1) -> None:
    assert (problem["line"], problem["col"]) == position(text, needle, occurrence), problem


# -- a valid config ------------------------------------------------------------------------


def test_a_valid_config_gives_a_plan(
    tmp_path: Path, registry: Registry, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "conf"
    folder.mkdir()
    monkeypatch.chdir(tmp_path)  # the working folder must not matter

    plan = load(folder, VALID, registry)

    assert plan.config_dir == folder
    assert plan.state_dir == folder / ".state"
    assert plan.shutdown_timeout == 5.0
    assert [p.name for p in plan.pipelines] == ["landing"]
    landing = plan.pipelines[0]
    assert [c.spec.type_name for c in landing.sources] == ["inotify"]
    assert [c.spec.type_name for c in landing.stages] == ["filter", "debounce"]
    assert [c.spec.type_name for c in landing.sinks] == ["console", "logfile"]
    assert [c.kind for c in landing.stages] == [ComponentKind.STAGE, ComponentKind.STAGE]
    assert landing.sources[0].label == "landing.sources[0]"
    assert landing.sinks[1].label == "landing.sinks[1]"

    source = landing.sources[0].options
    # relative paths are taken from the config file's folder, and normalised
    assert source.paths == [folder / "inbox", Path("/abs/watched"), tmp_path / "sibling"]  # type: ignore[attr-defined]
    assert source.recursive is False  # type: ignore[attr-defined]
    assert [k.value for k in source.events] == ["closed_write", "moved"]  # type: ignore[attr-defined]
    assert source.move_wait == pytest.approx(0.1)  # type: ignore[attr-defined]
    assert landing.stages[1].options.quiet == pytest.approx(0.25)  # type: ignore[attr-defined]
    assert landing.sinks[1].options.path == folder / "logs" / "events.jsonl"  # type: ignore[attr-defined]


def test_delivery_keys_are_parsed_on_sinks_with_defaults_elsewhere(
    tmp_path: Path, registry: Registry
) -> None:
    landing = load(tmp_path, VALID, registry).pipelines[0]
    console, logfile = landing.sinks
    assert logfile.delivery is not None
    assert (logfile.delivery.queue_size, logfile.delivery.max_attempts) == (10, 5)
    assert logfile.delivery.retry_backoff == 2.0
    assert console.delivery is not None
    assert (console.delivery.queue_size, console.delivery.max_attempts) == (1024, 3)
    assert console.delivery.retry_backoff == 0.5
    assert landing.sources[0].delivery is None


def test_env_vars_are_expanded_and_typed_by_what_they_expand_to(
    tmp_path: Path, registry: Registry
) -> None:
    env = {"REC": "true", "QUIET": "3s", "LOG_DIR": "/var/log/fs"}
    landing = load(tmp_path, VALID, registry, env).pipelines[0]
    assert landing.sources[0].options.recursive is True  # type: ignore[attr-defined]
    assert landing.stages[1].options.quiet == 3.0  # type: ignore[attr-defined]
    assert landing.sinks[1].options.path == Path("/var/log/fs/events.jsonl")  # type: ignore[attr-defined]


def test_an_empty_env_var_takes_the_default(tmp_path: Path, registry: Registry) -> None:
    landing = load(tmp_path, VALID, registry, {"QUIET": ""}).pipelines[0]
    assert landing.stages[1].options.quiet == pytest.approx(0.25)  # type: ignore[attr-defined]


def test_a_quoted_reference_stays_a_string(tmp_path: Path, registry: Registry) -> None:
    text = BASE.replace("path: events.jsonl", 'path: "${N:-123}"')
    plan = load(tmp_path, text, registry)
    assert plan.pipelines[0].sinks[1].options.path == tmp_path / "123"  # type: ignore[attr-defined]


def test_a_relative_config_path_still_resolves_against_its_folder(
    tmp_path: Path, registry: Registry, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "conf").mkdir()
    write(tmp_path / "conf", BASE)
    monkeypatch.chdir(tmp_path)
    plan = load_config(Path("conf/config.yaml"), registry, {})
    assert plan.config_dir == tmp_path / "conf"
    paths = plan.pipelines[0].sources[0].options.paths  # type: ignore[attr-defined]
    assert paths == [tmp_path / "conf" / "inbox"]


def test_stages_are_optional(tmp_path: Path, registry: Registry) -> None:
    text = BASE.replace("    stages:\n      - type: debounce\n        quiet: 200ms\n", "")
    assert load(tmp_path, text, registry).pipelines[0].stages == ()


def test_yaml_anchors_and_merge_keys_can_share_options(tmp_path: Path, registry: Registry) -> None:
    # `<<:` merges a mapping; keys written beside it override the merged ones (YAML 1.1).
    text = """\
    pipelines:
      landing:
        sources:
          - &watch {type: inotify, paths: [inbox], recursive: false}
          - <<: *watch
            paths: [outbox]
        sinks: [{type: console}]
    """
    sources = load(tmp_path, text, registry).pipelines[0].sources
    assert sources[0].options.paths == [tmp_path / "inbox"]  # type: ignore[attr-defined]
    assert sources[1].options.paths == [tmp_path / "outbox"]  # type: ignore[attr-defined]
    assert sources[1].options.recursive is False  # type: ignore[attr-defined]


# -- every problem at once, located ------------------------------------------------------


def test_three_mistakes_give_exactly_three_located_lines(
    tmp_path: Path, registry: Registry
) -> None:
    text = (
        BASE.replace("type: inotify", "type: inotfy")
        .replace("quiet: 200ms", "quiet: soon")
        .replace("pipelines:", "state_dirr: x\npipelines:")
    )
    problems = problems_of(tmp_path, text, registry)

    assert len(problems) == 3, problems
    by_path = {p["path"]: p for p in problems}
    assert set(by_path) == {
        "state_dirr",
        "pipelines.landing.sources[0].type",
        "pipelines.landing.stages[0].quiet",
    }
    assert_at(by_path["state_dirr"], text, "state_dirr")
    assert_at(by_path["pipelines.landing.sources[0].type"], text, "inotfy")
    assert_at(by_path["pipelines.landing.stages[0].quiet"], text, "soon")


def test_unknown_source_type_lists_known_types_and_suggests_the_close_one(
    tmp_path: Path, registry: Registry
) -> None:
    text = BASE.replace("type: inotify", "type: inotfy")
    problem = only(problems_of(tmp_path, text, registry))

    assert problem["path"] == "pipelines.landing.sources[0].type"
    assert_at(problem, text, "inotfy")
    assert "unknown source type 'inotfy'" in problem["msg"]
    assert "did you mean 'inotify'?" in problem["msg"]
    known = problem["msg"].split("known source types: ", 1)[1]
    for name in registry.names(ComponentKind.SOURCE):
        assert name in known
    assert "console" not in known  # only sources are listed


def test_a_sink_type_used_as_a_source_says_so(tmp_path: Path, registry: Registry) -> None:
    text = BASE.replace(
        "      - type: inotify\n        paths: [inbox]\n        recursive: true\n",
        "      - type: logfile\n",
    )
    problem = only(problems_of(tmp_path, text, registry))
    assert problem["path"] == "pipelines.landing.sources[0].type"
    assert_at(problem, text, "logfile")
    assert "'logfile' is a sink, not a source" in problem["msg"]


def test_a_typo_in_an_option_suggests_the_close_one_at_the_key(
    tmp_path: Path, registry: Registry
) -> None:
    text = BASE.replace("recursive: true", "recursiv: true")
    problem = only(problems_of(tmp_path, text, registry))
    assert problem["path"] == "pipelines.landing.sources[0].recursiv"
    assert_at(problem, text, "recursiv")
    assert "unknown option" in problem["msg"]
    assert "did you mean 'recursive'?" in problem["msg"]
    assert "paths" in problem["msg"]  # the allowed options are listed


def test_a_typo_in_a_required_option_suggests_it(tmp_path: Path, registry: Registry) -> None:
    text = BASE.replace("paths: [inbox]", "pathz: [inbox]")
    problems = problems_of(tmp_path, text, registry)
    typo = [p for p in problems if p["path"] == "pipelines.landing.sources[0].pathz"]
    assert len(typo) == 1
    assert_at(typo[0], text, "pathz")
    assert "did you mean 'paths'?" in typo[0]["msg"]


def test_a_missing_required_option_is_located_at_its_component(
    tmp_path: Path, registry: Registry
) -> None:
    text = BASE.replace("        path: events.jsonl\n", "")
    problem = only(problems_of(tmp_path, text, registry))
    assert problem["path"] == "pipelines.landing.sinks[1]"
    assert_at(problem, text, "type: logfile")
    assert "missing required option 'path' of logfile" in problem["msg"]


@pytest.mark.parametrize(
    ("old", "new", "needle", "path", "words"),
    [
        (
            "recursive: true",
            "recursive: maybe",
            "maybe",
            "pipelines.landing.sources[0].recursive",
            "boolean",
        ),
        ("paths: [inbox]", "paths: inbox", "inbox", "pipelines.landing.sources[0].paths", "list"),
        (
            "paths: [inbox]",
            "paths: [inbox, {a: 1}]",
            "{a: 1}",
            "pipelines.landing.sources[0].paths[1]",
            "path",
        ),
        (
            "quiet: 200ms",
            "quiet: soon",
            "soon",
            "pipelines.landing.stages[0].quiet",
            "'soon' is not a duration",
        ),
        (
            "quiet: 200ms",
            "quiet: -2s",
            "-2s",
            "pipelines.landing.stages[0].quiet",
            "duration",
        ),
        (
            "quiet: 200ms",
            "quiet: 2 weeks",
            "2 weeks",
            "pipelines.landing.stages[0].quiet",
            "250ms",  # says how to write one
        ),
    ],
)
def test_a_bad_value_is_located_at_the_value(
    tmp_path: Path, registry: Registry, *, old: str, new: str, needle: str, path: str, words: str
) -> None:
    text = BASE.replace(old, new)
    problem = only(problems_of(tmp_path, text, registry))
    assert problem["path"] == path
    assert_at(problem, text, needle)
    assert words in problem["msg"]


def test_a_bad_shutdown_timeout_is_located(tmp_path: Path, registry: Registry) -> None:
    text = "shutdown_timeout: forever\n" + BASE
    problem = only(problems_of(tmp_path, text, registry))
    assert problem["path"] == "shutdown_timeout"
    assert_at(problem, text, "forever")


def test_an_unknown_top_level_key_suggests_the_close_one(
    tmp_path: Path, registry: Registry
) -> None:
    text = BASE + "state_dirr: .state\n"
    problem = only(problems_of(tmp_path, text, registry))
    assert problem["path"] == "state_dirr"
    assert_at(problem, text, "state_dirr")
    assert "did you mean 'state_dir'?" in problem["msg"]


def test_an_unknown_pipeline_key_suggests_the_close_one(tmp_path: Path, registry: Registry) -> None:
    text = BASE.replace("    stages:", "    stage:")
    problem = only(problems_of(tmp_path, text, registry))
    assert problem["path"] == "pipelines.landing.stage"
    assert_at(problem, text, "stage:")
    assert "did you mean 'stages'?" in problem["msg"]


@pytest.mark.parametrize("text", ["", "\n\n", "# only a comment\n", "---\n"])
def test_an_empty_file_is_one_problem(tmp_path: Path, registry: Registry, text: str) -> None:
    problem = only(problems_of(tmp_path, text, registry))
    assert 1 <= int(problem["line"]) <= text.count("\n") + 1
    assert "empty" in problem["msg"]


def test_a_yaml_syntax_error_is_located(tmp_path: Path, registry: Registry) -> None:
    text = BASE.replace("quiet: 200ms", "quiet: 200ms: 300ms")
    problem = only(problems_of(tmp_path, text, registry))
    assert "invalid YAML" in problem["msg"]
    assert_at(problem, text, ": 300ms")


def test_an_unclosed_bracket_is_reported_on_or_after_its_line(
    tmp_path: Path, registry: Registry
) -> None:
    text = BASE.replace("paths: [inbox]", "paths: [inbox")
    problem = only(problems_of(tmp_path, text, registry))
    assert "invalid YAML" in problem["msg"]
    assert int(problem["line"]) >= int(position(text, "[inbox")[0])


def test_a_duplicate_key_is_located_at_the_second_and_names_the_first(
    tmp_path: Path, registry: Registry
) -> None:
    text = BASE.replace("recursive: true", "recursive: true\n        recursive: false")
    problem = only(problems_of(tmp_path, text, registry))
    assert problem["path"] == "pipelines.landing.sources[0].recursive"
    assert_at(problem, text, "recursive", occurrence=2)
    first_line = position(text, "recursive")[0]
    assert "duplicate key 'recursive'" in problem["msg"]
    assert f"line {first_line}" in problem["msg"]


def test_an_unset_env_var_is_one_problem_at_its_value(tmp_path: Path, registry: Registry) -> None:
    text = BASE.replace("quiet: 200ms", "quiet: ${DEBOUNCE_QUIET}")
    problem = only(problems_of(tmp_path, text, registry, {}))
    assert problem["path"] == "pipelines.landing.stages[0].quiet"
    assert_at(problem, text, "${DEBOUNCE_QUIET}")
    assert "DEBOUNCE_QUIET" in problem["msg"]
    assert "not set" in problem["msg"]


def test_a_malformed_env_reference_is_located(tmp_path: Path, registry: Registry) -> None:
    text = BASE.replace("path: events.jsonl", "path: ${LOG:default}")
    problems = problems_of(tmp_path, text, registry, {})
    assert any(
        p["path"] == "pipelines.landing.sinks[1].path"
        and "malformed" in p["msg"]
        and (p["line"], p["col"]) == position(text, "${LOG")
        for p in problems
    ), problems


@pytest.mark.parametrize(
    ("old", "new", "path", "words"),
    [
        (
            SOURCES_SECTION,
            "",
            "pipelines.landing",
            "missing `sources:`",
        ),
        (
            SINKS_SECTION,
            "",
            "pipelines.landing",
            "missing `sinks:`",
        ),
        (
            SINKS_SECTION,
            "    sinks: []\n",
            "pipelines.landing.sinks",
            "empty",
        ),
        (
            SOURCES_SECTION,
            "    sources: inotify\n",
            "pipelines.landing.sources",
            "must be a list",
        ),
        (
            "      - type: console\n",
            "      - console\n",
            "pipelines.landing.sinks[0]",
            "mapping",
        ),
        (
            "      - type: console\n",
            "      - format: json\n",
            "pipelines.landing.sinks[0]",
            "missing `type:`",
        ),
    ],
)
def test_a_malformed_pipeline_is_reported(
    tmp_path: Path, registry: Registry, *, old: str, new: str, path: str, words: str
) -> None:
    assert old in BASE
    problem = only(problems_of(tmp_path, BASE.replace(old, new), registry))
    assert problem["path"] == path
    assert words in problem["msg"]


def test_missing_pipelines_is_reported(tmp_path: Path, registry: Registry) -> None:
    problem = only(problems_of(tmp_path, "state_dir: .state\n", registry))
    assert "pipelines" in problem["msg"]


# -- the delivery keys: sinks only ---------------------------------------------------------


def test_delivery_keys_are_rejected_on_sources(tmp_path: Path, registry: Registry) -> None:
    text = BASE.replace("recursive: true", "recursive: true\n        queue_size: 10")
    problem = only(problems_of(tmp_path, text, registry))
    assert problem["path"] == "pipelines.landing.sources[0].queue_size"
    assert_at(problem, text, "queue_size")
    assert "unknown option" in problem["msg"]


def test_delivery_keys_are_rejected_on_stages(tmp_path: Path, registry: Registry) -> None:
    text = BASE.replace("quiet: 200ms", "quiet: 200ms\n        max_attempts: 2")
    problem = only(problems_of(tmp_path, text, registry))
    assert problem["path"] == "pipelines.landing.stages[0].max_attempts"


@pytest.mark.parametrize(
    ("line", "needle", "path"),
    [
        ("queue_size: 0", "0", "queue_size"),
        ("max_attempts: many", "many", "max_attempts"),
        ("retry_backoff: later", "later", "retry_backoff"),
    ],
)
def test_a_bad_delivery_value_on_a_sink_is_located(
    tmp_path: Path, registry: Registry, line: str, needle: str, path: str
) -> None:
    text = BASE.replace("path: events.jsonl", f"path: events.jsonl\n        {line}")
    problem = only(problems_of(tmp_path, text, registry))
    assert problem["path"] == f"pipelines.landing.sinks[1].{path}"
    key_line, key_col = position(text, f"{path}: {needle}")
    assert (problem["line"], problem["col"]) == (key_line, str(int(key_col) + len(path) + 2))


def test_a_typo_in_a_delivery_key_on_a_sink_suggests_it(tmp_path: Path, registry: Registry) -> None:
    text = BASE.replace("path: events.jsonl", "path: events.jsonl\n        max_attemps: 2")
    problem = only(problems_of(tmp_path, text, registry))
    assert problem["path"] == "pipelines.landing.sinks[1].max_attemps"
    assert "did you mean 'max_attempts'?" in problem["msg"]


def test_sink_options_and_delivery_problems_are_both_reported(
    tmp_path: Path, registry: Registry
) -> None:
    text = BASE.replace("path: events.jsonl", "path: events.jsonl\n        fsync: perhaps").replace(
        "      - type: console\n", "      - type: console\n        queue_size: -1\n"
    )
    paths = {p["path"] for p in problems_of(tmp_path, text, registry)}
    assert paths == {"pipelines.landing.sinks[0].queue_size", "pipelines.landing.sinks[1].fsync"}


def test_a_source_never_suggests_delivery_keys_whatever_its_pipeline_name(
    tmp_path: Path, registry: Registry
) -> None:
    # The pipeline is called "sinks"; its source is still a source.
    text = BASE.replace("  landing:", "  sinks:").replace(
        "recursive: true", "recursive: true\n        queue_siz: 1"
    )
    problem = only(problems_of(tmp_path, text, registry))
    assert problem["path"] == "pipelines.sinks.sources[0].queue_siz"
    assert "queue_size" not in problem["msg"]


# -- never a traceback ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("- a\n- b\n", id="top-level-list"),
        pytest.param("just text\n", id="top-level-scalar"),
        pytest.param("pipelines: 3\n", id="pipelines-number"),
        pytest.param("pipelines: {}\n", id="pipelines-empty"),
        pytest.param("pipelines:\n  p: [1, 2]\n", id="pipeline-list"),
        pytest.param("pipelines:\n  'bad name!': {}\n", id="pipeline-name"),
        pytest.param("pipelines:\n  p:\n    sources: [{type: 3}]\n", id="type-number"),
        pytest.param("pipelines:\n  p:\n    sources: [{type: [a]}]\n", id="type-list"),
        pytest.param("pipelines:\n  ? [a, b]\n  : x\n", id="complex-key"),
        pytest.param("pipelines:\n  ~: x\n", id="null-key"),
        pytest.param("state_dir: [1]\n" + BASE, id="state-dir-list"),
        pytest.param("state_dir: !!python/object:os.system x\n", id="python-tag"),
        pytest.param("a: &x [*x]\n", id="recursive-alias"),
        pytest.param("a: *nowhere\n", id="unknown-alias"),
        pytest.param("\tpipelines: {}\n", id="tab"),
        pytest.param(BASE.replace("quiet: 200ms", "quiet: !!int soon"), id="bad-int-tag"),
        pytest.param(BASE.replace("quiet: 200ms", "quiet: !!float soon"), id="bad-float-tag"),
        pytest.param(BASE.replace("quiet: 200ms", "quiet: !!bool maybe"), id="bad-bool-tag"),
        pytest.param(BASE.replace("quiet: 200ms", "quiet: !!timestamp soon"), id="bad-date-tag"),
    ],
)
def test_bad_documents_are_config_errors_never_tracebacks(
    tmp_path: Path, registry: Registry, text: str
) -> None:
    problems_of(tmp_path, text, registry)


YAMLISH = st.lists(
    st.sampled_from(
        [
            *"ab:-[]{},&*!|>?'\"\n #$%@`~\t01.",
            *("  ", "pipelines", "sources", "type", "inotify"),
            *("!!int ", "!!str ", "&a ", "*a", "<<: ", "${X}", "${X:-1}"),
        ]
    ),
    max_size=30,
).map("".join)


@settings(
    max_examples=300,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(text=YAMLISH)
def test_any_text_gives_a_plan_or_a_config_error(
    tmp_path: Path, registry: Registry, text: str
) -> None:
    path = tmp_path / "fuzz.yaml"
    path.write_text(text, encoding="utf-8")
    try:
        load_config(path, registry, {})
    except ConfigError as exc:
        assert exc.problems
        assert all(PROBLEM.match(problem) for problem in exc.problems), exc.problems


def test_a_missing_file_is_a_config_error(tmp_path: Path, registry: Registry) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(tmp_path / "nope.yaml", registry, {})
    (problem,) = caught.value.problems
    assert problem.startswith(f"{tmp_path / 'nope.yaml'}:1:1: ")
    assert "no such config file" in problem


def test_a_folder_is_a_config_error(tmp_path: Path, registry: Registry) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(tmp_path, registry, {})
    assert caught.value.problems[0].startswith(f"{tmp_path}:1:1: ")


def test_a_file_that_is_not_utf8_is_a_config_error(tmp_path: Path, registry: Registry) -> None:
    path = tmp_path / "config.yaml"
    path.write_bytes(b"pipelines:\n  caf\xe9: {}\n")
    with pytest.raises(ConfigError) as caught:
        load_config(path, registry, {})
    (problem,) = caught.value.problems
    assert "UTF-8" in problem


def test_config_error_exits_with_usage_code() -> None:
    assert ConfigError(["x"]).exit_code == 2
