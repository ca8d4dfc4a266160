"""Scenario: the state_dir's file system fills up while a spooled sink's target is down,
then space and the target come back."""

from __future__ import annotations

import dataclasses
import json
import os
import time
from pathlib import Path
from typing import Any

from tests.chaos.harness import (
    Outcome,
    Run,
    listed_paths,
    mounted,
    running,
    wait_until,
    write_file,
)

TARGET = """\
#!/bin/sh
# The sink's target: down while the flag file exists, else it records the path.
[ -e "{flag}" ] && {{ echo "target is down" >&2; exit 1; }}
printf '%s\\n' "$1" >> "{delivered}"
"""
CONFIG = """\
state_dir: state
shutdown_timeout: 3s
pipelines:
  chaos:
    sources:
      - type: inotify
        paths: [inbox]
        events: [closed_write]
    sinks:
      - type: command
        argv: [{target}, "{{path}}"]
        spool: true
        max_attempts: 0
        retry_backoff: 200ms
        retry_max_backoff: 1s
"""


@dataclasses.dataclass(frozen=True)
class DiskPlan:
    size: str = "1m"
    """Size of the tmpfs mounted as state_dir."""
    headroom: int = 160 * 1024
    """Bytes left free by the ballast file before the files come."""
    batch: int = 100
    max_files: int = 4000
    files_after: int = 20
    """Files created once space is back."""
    settle_timeout: float = 15.0


def disk_full(workdir: Path, plan: DiskPlan) -> Outcome:
    outcome = Outcome("disk full on state_dir")
    inbox, state = workdir / "inbox", workdir / "state"
    inbox.mkdir()
    state.mkdir()
    flag, delivered = workdir / "target-down", workdir / "delivered.txt"
    target = workdir / "target.sh"
    target.write_text(TARGET.format(flag=flag, delivered=delivered))
    target.chmod(0o755)
    (workdir / "config.yaml").write_text(CONFIG.format(target=target))
    flag.touch()
    created: list[str] = []
    runs: list[Run] = []
    with (
        mounted("-t", "tmpfs", "-o", f"size={plan.size}", "chaos-state", str(state)),
        running(runs),
    ):
        run = Run(workdir, "run").start()
        runs.append(run)
        if not outcome.check(run.wait_ready() is not None, "the pipeline never got ready"):
            outcome.evidence += run.evidence()
            return outcome
        ballast = state / "ballast"
        write_file(ballast, b"\0" * max(0, _free(state) - plan.headroom))
        while _free(state) > 8192 and len(created) < plan.max_files and run.alive:
            for _ in range(plan.batch):
                path = inbox / f"f{len(created):06d}.csv"
                write_file(path)
                created.append(str(path))
            time.sleep(0.3)
        time.sleep(1.0)  # let the pipeline meet the full disk
        outcome.figures["files_until_full"] = len(created)
        outcome.figures["free_bytes_at_full"] = _free(state)
        outcome.check(run.alive, "the pipeline died when the disk filled up")
        outcome.check(
            bool(_full_disk_lines(run)),
            "no log record says the spool/state_dir disk is full",
        )
        ballast.unlink()
        flag.unlink()
        back = time.monotonic()
        for number in range(plan.files_after):
            path = inbox / f"after{number:04d}.csv"
            write_file(path)
            created.append(str(path))
        settled = wait_until(
            lambda: set(created) <= set(listed_paths(delivered)), plan.settle_timeout
        )
        outcome.figures["all_delivered_after_space_back_s"] = (
            round(time.monotonic() - back, 2) if settled is not None else None
        )
        code, took = run.interrupt()
    _judge(
        outcome,
        run,
        created=created,
        delivered=listed_paths(delivered),
        settled=settled,
        code=code,
        took=took,
    )
    return outcome


def _free(folder: Path) -> int:
    stats = os.statvfs(folder)
    return stats.f_bavail * stats.f_frsize


def _full_disk_lines(run: Run) -> list[dict[str, Any]]:
    """Log records of fspipeline (not raw lines, not asyncio's report of an exception it
    caught) that name the spool or state_dir and a full disk."""
    found = []
    for record in run.records():
        if "raw" in record or record.get("level") not in ("warning", "error", "critical"):
            continue
        if record.get("logger_name") == "asyncio":
            continue
        text = json.dumps(record).lower()
        if ("spool" in text or "state_dir" in text) and ("full" in text or "space" in text):
            found.append(record)
    return found


def _judge(
    outcome: Outcome,
    run: Run,
    *,
    created: list[str],
    delivered: list[str],
    settled: float | None,
    code: int | None,
    took: float,
) -> None:
    missing = sorted(set(created) - set(delivered))
    outcome.check(
        not missing,
        f"{len(missing)} of {len(created)} accepted files never delivered after space and "
        f"the target came back: {missing[:3]}",
    )
    outcome.check(settled is not None, "not everything delivered in time")
    raw = [r["raw"] for r in run.records() if "raw" in r and r["raw"].strip()]
    outcome.check(not raw, f"{len(raw)} raw lines (tracebacks) on stderr, e.g. {raw[:4]}")
    outcome.check(code == 0, f"exit code {code} on Ctrl-C, not 0")
    outcome.figures.update(
        files=len(created),
        delivered=len(set(delivered)),
        duplicates=len(delivered) - len(set(delivered)),
        ctrl_c_exit_s=round(took, 2),
    )
    if not outcome.ok:
        outcome.evidence += [line for line in run.evidence(60) if "command output" not in line][
            -20:
        ]
