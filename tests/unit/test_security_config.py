"""Security of the config file (pipeline/security.py, pipeline/config/): who may change a
config that runs commands, hostile YAML (deep nesting, alias bombs) and secrets in problems."""

from __future__ import annotations

import os
import textwrap
import time
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from pipeline.config import load_config
from pipeline.config.yamldoc import MAX_DEPTH, MAX_VALUES, parse_yaml
from pipeline.errors import ConfigError
from pipeline.registry import Registry, build_registry
from pipeline.security import config_exposure

NOBODY = 65534

RUNS_A_COMMAND = """\
pipelines:
  landing:
    sources:
      - type: poll
        paths: [inbox]
    sinks:
      - type: command
        argv: [cat, "{path}"]
"""
ONLY_LOGS = RUNS_A_COMMAND.replace('type: command\n        argv: [cat, "{path}"]', "type: console")


@pytest.fixture(scope="module")
def registry() -> Registry:
    return build_registry(autoload=False)


def config(folder: Path, text: str = RUNS_A_COMMAND) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "config.yaml"
    path.write_text(text, encoding="utf-8")
    path.chmod(0o644)
    return path


def warnings(path: Path, registry: Registry) -> list[dict[str, object]]:
    with capture_logs() as logs:
        load_config(path, registry, {})
    return [entry for entry in logs if entry["log_level"] == "warning"]


def problems(path: Path, registry: Registry) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        load_config(path, registry, {})
    return caught.value.problems


# -- who may change a config that runs commands ---------------------------------------------


def test_a_private_config_gives_no_reason(tmp_path: Path) -> None:
    assert config_exposure(config(tmp_path / "safe")) == []


def test_a_world_writable_file_is_named_with_its_fix(tmp_path: Path) -> None:
    path = config(tmp_path / "cfg")
    path.chmod(0o666)
    (reason,) = config_exposure(path)
    assert f"{path} is writable by every user" in reason
    assert f"chmod o-w {path}" in reason


def test_a_world_writable_folder_without_sticky_bit_lets_anyone_replace_the_file(
    tmp_path: Path,
) -> None:
    path = config(tmp_path / "open")
    path.parent.chmod(0o777)
    (reason,) = config_exposure(path)
    assert f"folder {path.parent} is writable by every user and has no sticky bit" in reason
    assert f"chmod o-w {path.parent}" in reason
    path.parent.chmod(0o1777)  # like /tmp: others may add files, not replace ours
    assert config_exposure(path) == []


def test_a_file_or_folder_of_another_user_is_named(tmp_path: Path) -> None:
    path = config(tmp_path / "theirs")
    os.chown(path, NOBODY, NOBODY)
    (reason,) = config_exposure(path)
    assert f"{path} belongs to another user (uid {NOBODY})" in reason
    os.chown(path, os.geteuid(), os.getegid())
    os.chown(path.parent, NOBODY, NOBODY)
    (reason,) = config_exposure(path)
    assert f"folder {path.parent} belongs to another user (uid {NOBODY})" in reason


def test_a_symlinked_config_is_judged_where_it_really_lives(tmp_path: Path) -> None:
    real = config(tmp_path / "open")
    real.parent.chmod(0o777)
    link_folder = tmp_path / "mine"
    link_folder.mkdir()
    link = link_folder / "config.yaml"
    link.symlink_to(real)
    (reason,) = config_exposure(link)
    assert f"folder {real.parent}" in reason


def test_run_and_check_warn_about_an_exposed_config_that_runs_commands(
    tmp_path: Path, registry: Registry
) -> None:
    path = config(tmp_path / "cfg")
    path.chmod(0o646)
    (warning,) = warnings(path, registry)
    assert "other users can change this config, and it runs commands" in str(warning["event"])
    assert warning["config"] == str(path)
    assert f"chmod o-w {path}" in str(warning["problem"])
    path.chmod(0o644)
    assert warnings(path, registry) == []


def test_a_dead_letter_command_counts_as_running_commands(
    tmp_path: Path, registry: Registry
) -> None:
    text = ONLY_LOGS + "    dead_letter:\n      type: command\n      argv: [logger, '{path}']\n"
    path = config(tmp_path / "cfg", text)
    path.chmod(0o666)
    assert len(warnings(path, registry)) == 1


def test_an_exposed_config_that_runs_no_command_is_not_warned_about(
    tmp_path: Path, registry: Registry
) -> None:
    path = config(tmp_path / "cfg", ONLY_LOGS)
    path.chmod(0o666)
    assert warnings(path, registry) == []


# -- hostile YAML: one located problem, quickly ---------------------------------------------


def test_nesting_deeper_than_the_limit_is_one_located_problem(
    tmp_path: Path, registry: Registry
) -> None:
    for text in (
        "pipelines: " + "[" * 50_000 + "]" * 50_000 + "\n",
        "".join(" " * depth + "- \n" for depth in range(2_000)),
        "a: " + "{a: " * 3_000 + "1" + "}" * 3_000 + "\n",
    ):
        (problem,) = problems(config(tmp_path, text), registry)
        assert f"nested more than {MAX_DEPTH} levels deep" in problem
        assert problem.startswith(f"{tmp_path / 'config.yaml'}:")


def test_nesting_up_to_the_limit_is_read() -> None:
    def nested(levels: int) -> str:  # the top mapping, then lists inside lists
        return "a: " + "[" * (levels - 1) + "]" * (levels - 1) + "\n"

    data, _, found = parse_yaml(nested(MAX_DEPTH), "f.yaml")
    assert found == [] and isinstance(data["a"], list)
    _, _, found = parse_yaml(nested(MAX_DEPTH + 1), "f.yaml")
    assert len(found) == 1 and "nested more than" in found[0]


def test_a_billion_laughs_is_refused_at_the_alias_that_tips_it(
    tmp_path: Path, registry: Registry
) -> None:
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{n}: &a{n} [{', '.join([f'*a{n - 1}'] * 10)}]" for n in range(1, 9)]
    lines.append("pipelines: *a8")
    started = time.monotonic()
    (problem,) = problems(config(tmp_path, "\n".join(lines) + "\n"), registry)
    assert time.monotonic() - started < 5
    assert f"more than {MAX_VALUES:,} values once its aliases" in problem
    assert problem.startswith(f"{tmp_path / 'config.yaml'}:5:")  # a4: 10**5 values


def test_merge_keys_that_multiply_are_refused_too(tmp_path: Path, registry: Registry) -> None:
    lines = ["m0: &m0 {" + ", ".join(f"k{i}: {i}" for i in range(10)) + "}"]
    lines += [f"m{n}: &m{n} {{<<: [{', '.join([f'*m{n - 1}'] * 10)}]}}" for n in range(1, 9)]
    (problem,) = problems(config(tmp_path, "\n".join(lines) + "\npipelines: {}\n"), registry)
    assert "once its aliases (*name) are expanded" in problem


def test_ordinary_aliases_still_work(tmp_path: Path, registry: Registry) -> None:
    text = textwrap.dedent(
        """\
        x-sink: &sink {type: logfile, path: out.jsonl}
        pipelines:
          a: {sources: [{type: poll, paths: [in]}], sinks: [*sink]}
          b: {sources: [{type: poll, paths: [in]}], sinks: [*sink]}
        """
    )
    (problem,) = problems(config(tmp_path, text), registry)
    assert "unknown key 'x-sink'" in problem  # the aliases themselves were fine


# -- secrets never reach a problem line -----------------------------------------------------


@pytest.mark.parametrize(
    "line",
    [
        "quiet: redis://ingest:hunter2@redis.internal:6379/0",
        "quiet: !!int amqp://ingest:hunter2@rabbit/",
        "quiet: ${NOPE_UNSET_VAR} nats://ingest:hunter2@nats:4222",
    ],
)
def test_a_password_in_a_rejected_value_is_masked(
    tmp_path: Path, registry: Registry, line: str
) -> None:
    text = f"{ONLY_LOGS}    stages:\n      - type: debounce\n        {line}\n"
    found = problems(config(tmp_path, text), registry)
    assert found
    assert not [p for p in found if "hunter2" in p], found
