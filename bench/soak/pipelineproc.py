"""The pipeline under soak: its YAML config and the `pipeline run` subprocess."""

from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path

from workload import EXCLUDE_GLOBS

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from tests.e2e.cli import Background  # noqa: E402

STREAM = "soak"
LOG_ROTATE = "64MB"
"""The logfile sink rotates at this size, so rotation (a reopened fd) is part of the soak."""


@dataclasses.dataclass(frozen=True)
class Layout:
    """Where one run keeps everything, all below its scratch folder."""

    scratch: Path

    @property
    def tree(self) -> Path:
        return self.scratch / "tree"

    @property
    def outside(self) -> Path:
        return self.scratch / "outside"

    @property
    def state_dir(self) -> Path:
        return self.scratch / "state"

    @property
    def log_dir(self) -> Path:
        return self.scratch / "log"

    @property
    def logfile(self) -> Path:
        return self.log_dir / "events.jsonl"

    @property
    def dead_letters(self) -> Path:
        return self.state_dir / "dead-letter.jsonl"

    @property
    def config(self) -> Path:
        return self.scratch / "soak.yaml"


def config_text(layout: Layout, redis_url: str, quiet: str) -> str:
    """inotify -> filter -> debounce -> transform -> logfile + redis, as a user writes it.

    JSON is YAML, and it quotes every path and glob safely."""
    config = {
        "state_dir": str(layout.state_dir),
        "pipelines": {
            "soak": {
                "sources": [
                    {
                        "type": "inotify",
                        "paths": [str(layout.tree)],
                        "events": ["created", "closed_write", "moved", "deleted"],
                    }
                ],
                "stages": [
                    {"type": "filter", "exclude": list(EXCLUDE_GLOBS)},
                    {"type": "debounce", "quiet": quiet},
                    {"type": "transform", "add": ["size"], "relative_to": "root"},
                ],
                "sinks": [
                    {
                        "type": "logfile",
                        "path": str(layout.logfile),
                        "rotate_size": LOG_ROTATE,
                        "keep": 10_000,
                    },
                    {"type": "redis", "url": redis_url, "stream": STREAM, "batch_size": 256},
                ],
            }
        },
    }
    return json.dumps(config, indent=2) + "\n"


def start_pipeline(layout: Layout, http_port: int) -> Background:
    """`pipeline run CONFIG --http 127.0.0.1:PORT`, ready (watching) when it returns."""
    process = Background(
        "run", str(layout.config), "--http", f"127.0.0.1:{http_port}", cwd=layout.scratch
    )
    process.wait_ready(timeout=120)
    return process


def stopped_line(process: Background) -> dict[str, object] | None:
    """The `stopped` log record (it carries the process's own dead-letter count)."""
    for raw in reversed(process.stderr_lines):
        try:
            record = json.loads(raw)
        except ValueError:
            continue
        if isinstance(record, dict) and record.get("event") == "stopped":
            return record
    return None
