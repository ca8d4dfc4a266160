"""The command sink against hostile file names, with real programs (rm, ls, cp, sort, sh):
names that look like options stay file names, values no program can receive intact are
dead-lettered at once, and neither fspipeline's token nor a password leaks through it."""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections.abc import Awaitable
from pathlib import Path
from typing import Any, TypeVar

import pytest
from structlog.testing import capture_logs

from pipeline import ComponentOptions, Emit, Event, EventKind, Source, hookimpl
from pipeline.config import load_config_data
from pipeline.engine import Runner
from pipeline.registry import build_registry
from pipeline.sinks.command import CommandFailed, CommandSink
from tests.conftest import make_component

pytestmark = pytest.mark.integration
T = TypeVar("T")


def run(coro: Awaitable[T], timeout: float = 30) -> T:
    async def bounded() -> T:
        return await asyncio.wait_for(coro, timeout)

    return asyncio.run(bounded())


def created(path: Path | str) -> Event:
    return Event(EventKind.CLOSED_WRITE, str(path), "t/test", meta={"root": str(Path(path).parent)})


async def deliver(folder: Path, event: Event, **options: Any) -> list[str]:
    """Run the command sink once on `event` with `cwd: folder`; its stdout lines."""
    sink: CommandSink = make_component(CommandSink, folder, cwd=str(folder), **options)
    await sink.open()
    with capture_logs() as logs:
        try:
            await sink.send(event)
        finally:
            await sink.close()
    return [str(e["line"]) for e in logs if e.get("stream") == "stdout"]


# -- a file name is never an option ---------------------------------------------------------


def test_rm_of_a_file_named_dash_rf_removes_that_file_and_nothing_else(tmp_path: Path) -> None:
    scratch = tmp_path / "scratch"
    (scratch / "keep").mkdir(parents=True)
    (scratch / "keep" / "data.csv").write_text("precious")
    dashed = scratch / "-rf"
    dashed.write_text("x")
    # Read as options, `rm -rf keep` would remove the folder; as a file name, rm removes
    # ./-rf and refuses the folder `keep`: a failed delivery, the folder untouched.
    with pytest.raises(CommandFailed, match="keep"):
        run(deliver(scratch, created(dashed), argv=["rm", "{name}", "keep"]))
    assert not dashed.exists()
    assert (scratch / "keep" / "data.csv").read_text() == "precious"


def test_without_prefix_dash_the_same_name_is_read_as_options(tmp_path: Path) -> None:
    scratch = tmp_path / "scratch"
    (scratch / "keep").mkdir(parents=True)
    dashed = scratch / "-rf"
    dashed.write_text("x")
    run(deliver(scratch, created(dashed), argv=["rm", "{name}", "keep"], prefix_dash=False))
    assert dashed.exists() and not (scratch / "keep").exists()  # what the default prevents


@pytest.mark.parametrize("name", ["--version", "--help", "-l"])
def test_ls_and_cp_treat_option_like_names_as_files(tmp_path: Path, name: str) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / name).write_text("contents of the file\n")
    assert run(deliver(folder, created(folder / name), argv=["ls", "{name}"])) == [f"./{name}"]
    run(deliver(folder, created(folder / name), argv=["cp", "{name}", "copy.txt"]))
    assert (folder / "copy.txt").read_text() == "contents of the file\n"


def test_an_option_with_a_value_glued_on_is_not_obeyed(tmp_path: Path) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    name = "-ostolen.txt"  # `sort -ostolen.txt` would write its output to stolen.txt
    (folder / name).write_text("b\na\n")
    lines = run(deliver(folder, created(folder / name), argv=["sort", "{name}"]))
    assert lines == ["a", "b"]
    assert not (folder / "stolen.txt").exists()


def test_every_path_of_a_batch_is_guarded(tmp_path: Path) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    for name in ("-a", "--version"):
        (folder / name).write_text(name)
    batch = Event(EventKind.BATCH, str(folder), "t/debounce", meta={"paths": ["-a", "--version"]})
    listed = run(deliver(folder, batch, argv=["ls", "-d", "{paths}"]))
    assert sorted(listed) == ["./--version", "./-a"]


def test_shell_scripts_get_hostile_names_only_as_data(tmp_path: Path) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    names = ["$(touch pwned)", "`touch pwned2`", "a;touch pwned3", "-rf", "x\ny"]
    for name in names:
        (folder / name).write_text(name + "\n")
        lines = run(
            deliver(
                folder,
                created(folder / name),
                argv=['cat -- "$FSP_PATH" && cat -- "$1"', "{name}"],
                shell=True,
            )
        )
        assert lines == name.split("\n") * 2
    assert not list(tmp_path.rglob("pwned*"))


# -- values no program can receive intact ---------------------------------------------------


class ListOptions(ComponentOptions):
    paths: list[str]


class ListSource(Source[ListOptions]):
    """Emits one closed_write event per listed path (as a broker message could carry it)."""

    type_name = "hostile_list"
    Options = ListOptions

    async def run(self, emit: Emit) -> None:
        for path in self.options.paths:
            await emit(Event(EventKind.CLOSED_WRITE, path, "p/list"))
        await asyncio.Event().wait()


class ListPlugin:
    @hookimpl
    def pipeline_components(self) -> list[type[Any]]:
        return [ListSource]


def dead_letters_of(tmp_path: Path, paths: list[str], sink: dict[str, Any]) -> list[Any]:
    """Run a pipeline until every path but the last is dead-lettered; the letters."""
    registry = build_registry(extra_plugins=[("list", ListPlugin())], autoload=False)
    pipeline = {
        "sources": [{"type": "hostile_list", "paths": paths}],
        "sinks": [{"type": "command", "retry_backoff": "2s", "max_attempts": 5, **sink}],
    }
    data = {"state_dir": str(tmp_path / "state"), "pipelines": {"p": pipeline}}
    runner = Runner(load_config_data(data, registry, source="t", config_dir=tmp_path), registry)
    letters = tmp_path / "state" / "dead-letter.jsonl"

    async def scenario() -> list[Any]:
        task = asyncio.create_task(runner.run())
        deadline = time.monotonic() + 10  # below one retry's 2s back-off times 4
        while len(found := _read(letters)) < len(paths) - 1:
            assert time.monotonic() < deadline, f"dead letters so far: {found}"
            await asyncio.sleep(0.02)
        runner.request_stop()
        await task
        return found

    return run(scenario())


def _read(letters: Path) -> list[Any]:
    if not letters.exists():
        return []
    return [json.loads(line) for line in letters.read_text().splitlines()]


def test_a_nul_byte_fails_the_event_at_once_and_the_others_still_run(tmp_path: Path) -> None:
    out = tmp_path / "ran.txt"
    paths = ["/in/a\0/etc/passwd", "/in/b\0c", "/in/fine"]
    (first, second) = dead_letters_of(
        tmp_path, paths, {"argv": ["sh", "-c", f'echo "$1" >> {out}', "sh", "{path}"]}
    )
    for letter in (first, second):
        assert "NUL byte" in letter["reason"]
        assert letter["reason"].endswith("(after 1 attempt)")  # retrying cannot help
    assert out.read_text() == "/in/fine\n"  # the NUL ones never ran, not even cut short


def test_a_nul_byte_only_in_the_environment_fails_the_event_too(tmp_path: Path) -> None:
    out = tmp_path / "ran.txt"
    paths = ["/in/x\0y", "/in/fine"]
    (letter,) = dead_letters_of(
        tmp_path, paths, {"argv": [f'echo "$FSP_PATH" >> {out}'], "shell": True}
    )
    assert "FSP_PATH would hold a NUL byte" in letter["reason"]
    assert out.read_text() == "/in/fine\n"


def test_a_newline_in_a_path_cannot_split_it_in_two_on_stdin(tmp_path: Path) -> None:
    out = tmp_path / "read.txt"
    paths = ["/in/x\n/etc/passwd", "/in/fine"]
    sink = {
        "argv": [f"cat >> {out}"],
        "shell": True,
        "stdin": "paths",
        "stdin_separator": "newline",
    }
    (letter,) = dead_letters_of(tmp_path, paths, sink)
    assert "holds a newline" in letter["reason"]
    assert "stdin_separator: nul" in letter["reason"]
    assert out.read_text() == "/in/fine\n"


# -- nothing secret goes through or comes back ----------------------------------------------


def test_the_http_token_is_not_handed_to_commands(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FSPIPELINE_HTTP_TOKEN", "tok-s3cr3t")
    monkeypatch.setenv("OTHER_SETTING", "kept")
    script = 'echo "token=${FSPIPELINE_HTTP_TOKEN-unset} other=$OTHER_SETTING"'
    lines = run(deliver(tmp_path, created(tmp_path / "a"), argv=[script], shell=True))
    assert lines == ["token=unset other=kept"]


def test_a_password_on_stderr_is_masked_in_the_failure(tmp_path: Path) -> None:
    script = 'echo "cannot reach amqp://ingest:hunter2@rabbit:5672/" >&2; exit 4'
    with pytest.raises(CommandFailed) as caught:
        run(deliver(tmp_path, created(tmp_path / "a"), argv=[script], shell=True))
    assert "exit code 4" in str(caught.value)
    assert "amqp://ingest:***@rabbit:5672/" in str(caught.value)
    assert "hunter2" not in str(caught.value)


def test_a_file_named_like_a_placeholder_or_format_is_passed_as_is(tmp_path: Path) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    name = "{path}%s%n{0}${HOME}"
    (folder / name).write_text("ok\n")
    assert run(deliver(folder, created(folder / name), argv=["cat", "{name}"])) == ["ok"]
    assert os.path.exists(folder / name)
