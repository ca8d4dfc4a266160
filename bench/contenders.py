"""The watchers compared: `pipeline watch` with each source, inotifywait and Python peers.

Each one is a subprocess that prints one line per event on standard output; a
contender knows how to start it for a folder and how to read a path out of a line.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from harness import CHILD_ENV

HERE = Path(__file__).resolve().parent
PYTHON = sys.executable
PIPELINE = str(Path(sys.executable).with_name("pipeline"))
PIPELINE_READY = b"running; press Ctrl-C to stop"
ALL_WORKLOADS = frozenset({"burst", "latency", "overflow", "startup", "idle"})


def parse_cloudevent(line: bytes) -> str | None:
    """`pipeline watch` prints CloudEvents JSON lines; the path is data.path."""
    if not line.startswith(b"{"):
        return None
    path = json.loads(line)["data"]["path"]
    return path if isinstance(path, str) else None


def parse_kind_path(line: bytes) -> str | None:
    """inotifywait (--format '%e %w%f') and the peers print "KIND PATH"."""
    _, sep, path = line.partition(b" ")
    return path.decode(errors="surrogateescape") if sep else None


@dataclasses.dataclass(frozen=True)
class Contender:
    name: str
    description: str
    argv: Callable[[Path], list[str]]
    parse: Callable[[bytes], str | None]
    ready_marker: bytes | None = None
    """A stderr line the watcher prints once it watches everything; None: probe for it."""
    workloads: frozenset[str] = ALL_WORKLOADS
    settle: float = 2.0
    """Seconds of silence after the writer finished that mean the watcher is done."""


def _pipeline(source: str, events: str) -> Callable[[Path], list[str]]:
    def argv(root: Path) -> list[str]:
        command = [PIPELINE, "--log-format", "json", "watch", str(root), "--events", events]
        return [*command, "--source", source]

    return argv


def _peer(script: str) -> Callable[[Path], list[str]]:
    return lambda root: [PYTHON, str(HERE / "peers" / script), str(root)]


def _inotifywait(root: Path) -> list[str]:
    return ["inotifywait", "-m", "-r", "-e", "close_write", "--format", "%e %w%f", str(root)]


def warm_up() -> None:
    """Compile fspipeline's modules to bytecode once, so no measured start compiles them."""
    spec = importlib.util.find_spec("pipeline")
    for folder in (spec.submodule_search_locations or []) if spec else []:
        subprocess.run(
            [PYTHON, "-m", "compileall", "-q", folder], env=CHILD_ENV, timeout=120, check=False
        )


def pipeline_sources() -> set[str]:
    """Source types `pipeline plugins` lists (fanotify only once someone has added it)."""
    done = subprocess.run(
        [PIPELINE, "plugins"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env=CHILD_ENV,
    )
    return {
        fields[1]
        for fields in (line.split() for line in done.stdout.splitlines())
        if len(fields) > 1 and fields[0] == "source"
    }


def pipeline_contender(source: str) -> Contender:
    """`pipeline watch --source SOURCE --events closed_write`."""
    return Contender(
        "pipeline" if source == "inotify" else f"pipeline-{source}",
        f"pipeline watch --source {source} --events closed_write",
        _pipeline(source, "closed_write"),
        parse_cloudevent,
        PIPELINE_READY,
    )


def all_contenders() -> list[Contender]:
    """Every contender this machine can run, fspipeline's first."""
    sources = pipeline_sources()
    found = [pipeline_contender("inotify")]
    if "fanotify" in sources:
        found.append(pipeline_contender("fanotify"))
    found.append(
        Contender(
            "pipeline-poll",
            "pipeline watch --source poll --events created (1 s interval)",
            _pipeline("poll", "created"),
            parse_cloudevent,
            PIPELINE_READY,
            workloads=frozenset({"overflow"}),
            settle=3.0,
        )
    )
    found += [
        Contender(
            "inotifywait",
            "inotifywait -m -r -e close_write (inotify-tools, C)",
            _inotifywait,
            parse_kind_path,
            b"Watches established.",
        ),
        Contender(
            "watchdog",
            "watchdog InotifyObserver, FileClosedEvent only",
            _peer("watchdog_peer.py"),
            parse_kind_path,
        ),
        Contender(
            "watchfiles",
            "watchfiles.watch() with its defaults (Rust notify)",
            _peer("watchfiles_peer.py"),
            parse_kind_path,
            settle=3.0,  # it batches changes for up to 1.6 s
        ),
        Contender(
            "pyinotify",
            "pyinotify Notifier, IN_CLOSE_WRITE, auto_add",
            _peer("pyinotify_peer.py"),
            parse_kind_path,
        ),
    ]
    return found


def inotifywait_missing() -> bool:
    return shutil.which("inotifywait") is None
