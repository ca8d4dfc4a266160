"""The plugin template in examples/ installs with pip and works as a third-party plugin.

The template is copied out of the tree (as its README tells a plugin author to do) and
installed with pip into a folder of its own that the `pipeline` subprocesses get on
PYTHONPATH. Entry-point discovery sees it exactly as it sees a package in site-packages,
while the shared virtualenv is never changed: a parallel or later test run never sees
`csvstats`, and an interrupted run leaves nothing behind to uninstall.
"""

from __future__ import annotations

import dataclasses
import importlib.metadata
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = ROOT / "examples" / "plugin-template"
PIPELINE = [sys.executable, "-m", "pipeline.cli.main"]
READY_TIMEOUT = 20.0
EVENT_TIMEOUT = 15.0
EXIT_TIMEOUT = 15.0


@dataclasses.dataclass(frozen=True)
class InstalledTemplate:
    source: Path
    """The copy pip installed from; its tests/ are the template's own tests."""
    env: dict[str, str]
    """Environment for subprocesses: the install folder on PYTHONPATH, autoload on."""


def run(argv: list[str], env: dict[str, str], cwd: Path, timeout: float = 120.0) -> str:
    """Run a command to completion; fail with its output unless it exits 0."""
    done = subprocess.run(
        argv,
        env=env,
        cwd=cwd,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert done.returncode == 0, (
        f"{' '.join(argv)} exited {done.returncode}\n"
        f"--- stdout\n{done.stdout}\n--- stderr\n{done.stderr}"
    )
    return done.stdout


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> InstalledTemplate:
    setuptools = importlib.metadata.version("setuptools")
    assert int(setuptools.split(".")[0]) >= 77, (
        f"setuptools {setuptools} cannot build the template without build isolation "
        "(no built-in bdist_wheel, no SPDX license strings); the dev extra needs setuptools>=77"
    )
    work = tmp_path_factory.mktemp("plugin-template")
    source = work / "fspipeline-csvstats"
    shutil.copytree(
        TEMPLATE,
        source,
        ignore=shutil.ignore_patterns(
            "build", "dist", "*.egg-info", "__pycache__", ".*_cache", ".venv"
        ),
    )
    site = work / "site"
    env = {k: v for k, v in os.environ.items() if k != "FSPIPELINE_DISABLE_PLUGIN_AUTOLOAD"}
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    # --no-build-isolation and --no-index: built with this environment's setuptools, offline.
    run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            "--no-input",
            "--no-index",
            "--no-build-isolation",
            "--no-deps",
            "--target",
            str(site),
            str(source),
        ],
        env,
        cwd=work,
    )
    assert (site / "fspipeline_csvstats" / "plugin.py").is_file()
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(site), env.get("PYTHONPATH")]))
    return InstalledTemplate(source=source, env=env)


def test_plugins_lists_csvstats_with_its_distribution(template: InstalledTemplate) -> None:
    rows = json.loads(run([*PIPELINE, "plugins", "--json"], template.env, cwd=template.source))
    (row,) = [r for r in rows if r["type"] == "csvstats"]
    assert row["kind"] == "sink"
    assert row["distribution"] == "fspipeline-csvstats 0.1.0"
    assert row["summary"].startswith("Counts the data rows and columns of each CSV file")

    table = run([*PIPELINE, "plugins"], template.env, cwd=template.source)
    assert any(
        line.split()[:4] == ["sink", "csvstats", "fspipeline-csvstats", "0.1.0"]
        for line in table.splitlines()
    ), table


def test_plugins_csvstats_shows_its_options(template: InstalledTemplate) -> None:
    text = run([*PIPELINE, "plugins", "csvstats"], template.env, cwd=template.source)
    assert text.startswith("csvstats (sink, from fspipeline-csvstats 0.1.0)")
    assert "report (path; required)" in text
    assert 'delimiter (string; default: ",")' in text
    assert "header (boolean; default: true)" in text
    assert "JSON-lines file to append one line per CSV file to" in text


class RunningPipeline:
    """A `pipeline run` subprocess whose stderr (JSON log lines) a thread collects."""

    def __init__(self, argv: list[str], env: dict[str, str], cwd: Path) -> None:
        self.process = subprocess.Popen(
            argv,
            env={**env, "PYTHONUNBUFFERED": "1"},
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.lines: list[str] = []
        self._eof = False
        self._changed = threading.Condition()
        self._reader = threading.Thread(target=self._read, name="pipeline-stderr", daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            with self._changed:
                self.lines.append(line)
                self._changed.notify_all()
        with self._changed:
            self._eof = True
            self._changed.notify_all()

    @property
    def stderr(self) -> str:
        with self._changed:
            return "".join(self.lines)

    def logs(self) -> list[dict[str, Any]]:
        """The log lines that are JSON objects (all of them, with --log-format json)."""
        parsed = []
        for line in self.stderr.splitlines():
            try:
                record = json.loads(line)
            except ValueError:
                continue
            if isinstance(record, dict):
                parsed.append(record)
        return parsed

    def wait_for_log(self, text: str, timeout: float) -> None:
        with self._changed:
            self._changed.wait_for(
                lambda: self._eof or any(text in line for line in self.lines), timeout
            )
            found = any(text in line for line in self.lines)
        assert found, f"no log line with {text!r} after {timeout}s; stderr:\n{self.stderr}"

    def stop(self) -> int:
        """SIGINT, as Ctrl-C sends it; the exit code once the process has drained."""
        self.process.send_signal(signal.SIGINT)
        code = self.process.wait(timeout=EXIT_TIMEOUT)
        self._reader.join(timeout=5)
        return code

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        self._reader.join(timeout=5)


@pytest.fixture
def start_pipeline(template: InstalledTemplate) -> Iterator[Callable[[Path], RunningPipeline]]:
    started: list[RunningPipeline] = []

    def start(config: Path) -> RunningPipeline:
        argv = [*PIPELINE, "--log-format", "json", "run", str(config)]
        running = RunningPipeline(argv, template.env, cwd=config.parent)
        started.append(running)
        return running

    yield start
    for running in started:
        running.kill()


def poll_lines(path: Path, wanted: Callable[[list[str]], bool], running: RunningPipeline) -> None:
    deadline = time.monotonic() + EVENT_TIMEOUT
    while time.monotonic() < deadline:
        if path.exists() and wanted(path.read_text(encoding="utf-8").splitlines()):
            return
        assert running.process.poll() is None, f"pipeline exited early:\n{running.stderr}"
        time.sleep(0.05)
    content = path.read_text(encoding="utf-8") if path.exists() else "(missing)"
    pytest.fail(f"{path.name} not as expected after {EVENT_TIMEOUT}s: {content}\n{running.stderr}")


CONFIG = """\
state_dir: .fspipeline
pipelines:
  landing:
    sources:
      - type: inotify
        paths: [inbox]
        create_missing: true
        events: [closed_write, moved]
    stages:
      - type: filter
        include: ["*.csv"]
    sinks:
      - type: csvstats
        report: out/csv-report.jsonl
        delimiter: ";"
      - type: logfile
        path: out/events.jsonl
"""


def test_csvstats_runs_in_a_pipeline(
    tmp_path: Path, start_pipeline: Callable[[Path], RunningPipeline]
) -> None:
    config = tmp_path / "config.yaml"
    config.write_text(CONFIG, encoding="utf-8")
    running = start_pipeline(config)
    running.wait_for_log('"pipeline ready"', READY_TIMEOUT)

    inbox = tmp_path / "inbox"
    (inbox / "notes.txt").write_text("not;a;csv\n", encoding="utf-8")
    (inbox / "sales.csv").write_text(
        "id;amount;currency\n1;10;EUR\n2;20;EUR\n3;5;USD\n", encoding="utf-8"
    )

    report = tmp_path / "out" / "csv-report.jsonl"
    events = tmp_path / "out" / "events.jsonl"
    poll_lines(report, lambda lines: len(lines) >= 1, running)
    poll_lines(events, lambda lines: len(lines) >= 1, running)
    code = running.stop()

    (line,) = [json.loads(text) for text in report.read_text(encoding="utf-8").splitlines()]
    assert line["path"] == str(inbox / "sales.csv")
    assert (line["rows"], line["columns"]) == (3, 3)
    (cloudevent,) = [json.loads(text) for text in events.read_text(encoding="utf-8").splitlines()]
    assert cloudevent["data"]["path"] == str(inbox / "sales.csv")  # the filter dropped notes.txt
    assert cloudevent["id"] == line["event_id"]  # both sinks were given the same event
    assert code == 0, running.stderr
    stopped = [record for record in running.logs() if record.get("event") == "stopped"]
    assert stopped and stopped[-1]["clean"] is True, running.stderr


def test_template_own_tests_pass(template: InstalledTemplate) -> None:
    output = run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests"],
        template.env,
        cwd=template.source,
    )
    assert " passed" in output, output  # exit 0 with tests run (pytest exits 5 on none)
