"""The command sink without running anything: options, placeholders, argv, env and stdin."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pydantic
import pytest

from pipeline import Event, EventKind, from_json
from pipeline.sinks.command import CommandOptions, CommandSink
from pipeline.sinks.invocation import SHELL, CommandLine
from pipeline.templates import TemplateError
from tests.conftest import make_component

BAD = os.fsdecode(b"/in/caf\xe9 \xff.csv")  # Latin-1 bytes: not UTF-8


def event(path: str = "/in/sub/a.tar.gz", **fields: Any) -> Event:
    fields.setdefault("meta", {"root": "/in", "size": 12})
    return Event(EventKind.CLOSED_WRITE, path, "p/poll", **fields)


def line(argv: list[str], **options: Any) -> CommandLine:
    merged: dict[str, Any] = {
        "shell": False,
        "prefix_dash": True,
        "stdin": "none",
        "separator": "nul",
        "env": {},
    }
    return CommandLine(argv, **(merged | options))


def options(**values: Any) -> CommandOptions:
    return CommandOptions.model_validate(values, context={"config_dir": Path("/cfg")})


# -- placeholders (pipeline/templates.py) as argv elements ---------------------------------


def test_rendering_never_interprets_the_data() -> None:
    hostile = event("/in/{path}%s{0}$(x).txt")
    assert line(["x", "[{name}]"]).build([hostile]).argv == [b"x", b"[{path}%s{0}$(x).txt]"]


def test_a_missing_meta_value_fails_the_run_instead_of_passing_an_empty_argument() -> None:
    command = line(["x", "{meta.owner}", "{meta.group:-staff}"])
    with pytest.raises(TemplateError, match="owner"):
        command.build([event()])
    assert command.build([event(meta={"owner": "ann"})]).argv == [b"x", b"ann", b"staff"]


def test_other_braces_are_literal_text() -> None:
    assert line(["awk", "{ print $1 }", "{{path}}"]).build([event()]).argv == [
        b"awk",
        b"{ print $1 }",
        b"{path}",
    ]


# -- options --------------------------------------------------------------------------------


def test_paths_must_be_a_whole_argv_element() -> None:
    with pytest.raises(pydantic.ValidationError, match=r"argv\[1\].*whole element"):
        options(argv=["cat", "--files={paths}"])


def test_an_unknown_placeholder_in_argv_names_the_element() -> None:
    with pytest.raises(pydantic.ValidationError, match=r"argv\[2\]: column 1: unknown placeholder"):
        options(argv=["cp", "{path}", "{dest}"])


def test_a_shell_script_may_not_contain_placeholders() -> None:
    with pytest.raises(pydantic.ValidationError, match=r"FSP_PATH"):
        options(argv=['cat "{path}"'], shell=True)
    assert options(argv=['cat -- "$1"', "{path}"], shell=True).shell
    assert options(argv=["awk '{print}' \"$1\"", "{path}"], shell=True).shell  # not parsed


@pytest.mark.parametrize("mode", ["restart", "signal"])
def test_restart_and_signal_act_on_one_running_command(mode: str) -> None:
    with pytest.raises(pydantic.ValidationError, match="max_concurrent: 1"):
        options(argv=["x"], on_busy=mode, max_concurrent=2)
    assert options(argv=["x"], on_busy="ignore", max_concurrent=2).max_concurrent == 2


@pytest.mark.parametrize(("given", "stored"), [("hup", "SIGHUP"), ("SIGUSR1", "SIGUSR1")])
def test_busy_signal_names(given: str, stored: str) -> None:
    assert options(argv=["x"], busy_signal=given).busy_signal == stored


def test_an_unknown_signal_is_an_error() -> None:
    with pytest.raises(pydantic.ValidationError, match="unknown signal"):
        options(argv=["x"], busy_signal="SIGNOPE")


def test_cwd_defaults_to_the_config_folder(tmp_path: Path) -> None:
    sink: CommandSink = make_component(CommandSink, tmp_path, argv=["true"])
    assert sink.cwd == tmp_path


@pytest.mark.parametrize(("mode", "wanted"), [("queue", 0), ("ignore", 4), ("restart", 2)])
def test_busy_modes_ask_the_engine_for_concurrent_sends(
    tmp_path: Path, mode: str, wanted: int
) -> None:
    concurrent = 3 if mode != "restart" else 1
    sink: CommandSink = make_component(
        CommandSink, tmp_path, argv=["true"], on_busy=mode, max_concurrent=concurrent
    )
    assert sink.concurrent_sends() == wanted


# -- argv -----------------------------------------------------------------------------------


def test_each_placeholder_element_is_one_argument_with_the_original_bytes() -> None:
    run = line(["prog", "{path}", "--name={name}", "{kind}:{stem}"]).build([event(BAD)])
    assert run.argv == [
        b"prog",
        b"/in/caf\xe9 \xff.csv",
        b"--name=caf\xe9 \xff.csv",
        b"closed_write:caf\xe9 \xff",
    ]


def test_a_leading_dash_from_event_data_becomes_dot_slash() -> None:
    dashed = event("/in/-rf", meta={"root": "/in"})
    run = line(["rm", "{name}", "{relpath}", "--file={name}", "-{name}"]).build([dashed])
    assert run.argv == [b"rm", b"./-rf", b"./-rf", b"--file=-rf", b"--rf"]
    raw = line(["rm", "{name}"], prefix_dash=False).build([dashed])
    assert raw.argv == [b"rm", b"-rf"]


def test_paths_expands_to_one_argument_per_path_of_a_batch() -> None:
    batch = Event(EventKind.BATCH, "/in", "p/debounce", meta={"paths": ["/in/a b", BAD, "-x"]})
    run = line(["ingest", "--", "{paths}", "{kind}"]).build([batch])
    assert run.argv == [b"ingest", b"--", b"/in/a b", os.fsencode(BAD), b"./-x", b"batch"]


def test_paths_of_several_events_handed_over_at_once() -> None:
    run = line(["ingest", "{paths}"]).build([event("/in/1"), event("/in/2")])
    assert run.argv == [b"ingest", b"/in/1", b"/in/2"]
    assert run.env[b"FSP_COUNT"] == b"2"
    assert run.env[b"FSP_PATH"] == b"/in/2"  # single values describe the last event


def test_shell_mode_passes_values_as_positional_parameters() -> None:
    run = line(['cp -- "$1" /dst/ # {{kept}} {x}', "{path}"], shell=True).build([event()])
    assert run.argv == [
        SHELL,
        b"-c",
        b'cp -- "$1" /dst/ # {{kept}} {x}',  # the script is never expanded, not even {{
        b"fspipeline",
        b"/in/sub/a.tar.gz",
    ]


def test_the_environment_carries_every_value_as_bytes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FSP_STALE", "from a parent run")
    monkeypatch.setenv("KEEP_ME", "1")
    run = line(["x"], env={"EXTRA": "yes"}).build(
        [event(BAD, meta={"root": "/in", "size": 3, "odd-key": "v", "nested": {"a": 1}})]
    )
    env = run.env
    assert env[b"FSP_PATH"] == os.fsencode(BAD)
    assert env[b"FSP_NAME"] == b"caf\xe9 \xff.csv"
    assert env[b"FSP_KIND"] == b"closed_write"
    assert env[b"FSP_SRC_PATH"] == b""
    assert env[b"FSP_IS_DIR"] == b"false"
    assert env[b"FSP_RELPATH"] == os.fsencode(BAD).removeprefix(b"/in/")
    assert env[b"FSP_COUNT"] == b"1"
    assert env[b"FSP_META_SIZE"] == b"3"
    assert env[b"FSP_META_ODD_KEY"] == b"v"
    assert b"FSP_META_NESTED" not in env
    assert b"FSP_STALE" not in env
    assert (env[b"KEEP_ME"], env[b"EXTRA"]) == (b"1", b"yes")


# -- stdin ----------------------------------------------------------------------------------


def test_stdin_none_is_dev_null() -> None:
    assert line(["x"]).build([event()]).stdin is None


def test_stdin_event_is_the_cloudevents_json_line() -> None:
    original = event(BAD)
    data = line(["x"], stdin="event").build([original]).stdin
    assert data is not None and data.endswith(b"\n") and data.count(b"\n") == 1
    assert from_json(data) == original


@pytest.mark.parametrize(("separator", "end"), [("nul", b"\0"), ("newline", b"\n")])
def test_stdin_paths_ends_each_path_with_the_separator(separator: str, end: bytes) -> None:
    batch = Event(EventKind.BATCH, "/in", "p/debounce", meta={"paths": ["/in/a", BAD]})
    data = line(["x"], stdin="paths", separator=separator).build([batch]).stdin
    assert data == b"/in/a" + end + os.fsencode(BAD) + end


def test_a_command_takes_many_paths_only_with_paths_or_stdin() -> None:
    assert not line(["x", "{path}"]).takes_many
    assert line(["x", "{paths}"]).takes_many
    assert line(["x"], stdin="event").takes_many


def test_the_program_to_look_up() -> None:
    assert line(["python3", "{path}"]).program == "python3"
    assert line(["{path}"]).program is None
    assert line(["echo $1"], shell=True).program is None
