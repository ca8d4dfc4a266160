"""Scenario: a sink whose target hangs forever (a command that sleeps an hour) with
`send_timeout`: the other paths and sinks keep flowing, the hung deliveries are retried
then dead-lettered, and Ctrl-C exits within shutdown_timeout."""

from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pipeline.engine.queues import shard_of
from pipeline.event import Event, EventKind
from tests.chaos.harness import (
    Outcome,
    Run,
    listed_paths,
    logged_paths,
    running,
    wait_until,
    write_file,
)
from tests.jsonl import complete_records

SEND_TIMEOUT = 2.0
ATTEMPTS = 2
LANES = 4
SHUTDOWN_TIMEOUT = 3.0
TARGET = """\
#!/bin/sh
# Hangs forever on files named hang-*, records the others.
case "$(basename "$1")" in hang-*) exec sleep 3600;; esac
printf '%s\\n' "$1" >> "{delivered}"
"""
CONFIG = f"""\
state_dir: state
shutdown_timeout: {SHUTDOWN_TIMEOUT}s
pipelines:
  chaos:
    sources:
      - type: inotify
        paths: [inbox]
        events: [closed_write]
    sinks:
      - type: logfile
        path: events.jsonl
      - type: command
        argv: [{{target}}, "{{{{path}}}}"]
        max_concurrent: {LANES}
        concurrency: {LANES}
        send_timeout: {SEND_TIMEOUT}s
        max_attempts: {ATTEMPTS}
        retry_backoff: 100ms
"""


@dataclasses.dataclass(frozen=True)
class HangPlan:
    hung: int = 1
    """Files whose delivery hangs."""
    flowing: int = 20
    """Files delivered normally, written right after the hung ones."""
    hang_at_stop: bool = True
    """Start one more hanging delivery just before Ctrl-C."""


def hanging_sink(workdir: Path, plan: HangPlan) -> Outcome:
    outcome = Outcome("hanging sink")
    inbox = workdir / "inbox"
    inbox.mkdir()
    delivered = workdir / "delivered.txt"
    target = workdir / "target.sh"
    target.write_text(TARGET.format(delivered=delivered))
    target.chmod(0o755)
    (workdir / "config.yaml").write_text(CONFIG.format(target=target))
    hung = [inbox / f"hang-{n}.csv" for n in range(plan.hung)]
    flowing = [inbox / f"ok-{n:04d}.csv" for n in range(plan.flowing)]
    runs: list[Run] = []
    with running(runs):
        run = Run(workdir, "run").start()
        runs.append(run)
        if not outcome.check(run.wait_ready() is not None, "the pipeline never got ready"):
            outcome.evidence += run.evidence()
            return outcome
        for path in (*hung, *flowing):
            write_file(path)
        written = time.monotonic()

        def took(condition: Callable[[], bool], timeout: float) -> float | None:
            """Seconds from the writes until `condition` held (None: not in time)."""
            waited = wait_until(condition, timeout)
            return None if waited is None else time.monotonic() - written

        out = workdir / "events.jsonl"
        everything = {str(p) for p in (*hung, *flowing)}
        logfile_took = took(lambda: everything <= set(logged_paths(out)), 10)
        # Lanes the hung deliveries do not block deliver before the first timeout.
        blocked = {shard_of(_event(p), LANES) for p in hung}
        free = {str(p) for p in flowing if shard_of(_event(p), LANES) not in blocked}
        free_took = took(lambda: free <= set(listed_paths(delivered)), 10)
        limit = SEND_TIMEOUT * ATTEMPTS * (1 + len(hung)) + 5
        ok = {str(p) for p in flowing}
        all_took = took(lambda: ok <= set(listed_paths(delivered)), limit)
        dead_took = took(lambda: len(_dead_letters(workdir)) >= len(hung), limit)
        if plan.hang_at_stop:
            write_file(inbox / "hang-at-stop.csv")
            wait_until(lambda: _sleepers(target) > 0, 5)
        code, stop_took = run.interrupt()
    outcome.check(logfile_took is not None, "the logfile sink did not get every event")
    outcome.check(
        free_took is not None and free_took < SEND_TIMEOUT * ATTEMPTS * 0.9,
        f"paths in other lanes waited {free_took}s, as if behind the hung delivery "
        f"({ATTEMPTS} attempts of send_timeout {SEND_TIMEOUT}s)",
    )
    outcome.check(all_took is not None, f"not every flowing file delivered within {limit}s")
    outcome.check(dead_took is not None, "the hung deliveries were not dead-lettered")
    reasons = {
        record["event"]["data"]["path"]: record["reason"] for record in _dead_letters(workdir)
    }
    outcome.check(
        all("send_timeout" in reasons.get(str(path), "") for path in hung),
        f"a hung delivery's dead letter does not name send_timeout: {reasons}",
    )
    # The delivery hung at Ctrl-C: timed out, or cut short by the shutdown deadline.
    at_stop = reasons.get(str(inbox / "hang-at-stop.csv"), "")
    outcome.check(
        not plan.hang_at_stop or "send_timeout" in at_stop or "shutdown deadline" in at_stop,
        f"the delivery hung at Ctrl-C was not dead-lettered with a reason: {at_stop!r}",
    )
    outcome.check(code == 0, f"exit code {code} on Ctrl-C, not 0")
    outcome.check(
        stop_took < SHUTDOWN_TIMEOUT + 2,
        f"Ctrl-C took {stop_took:.1f}s with shutdown_timeout {SHUTDOWN_TIMEOUT}s",
    )
    outcome.check(_sleepers(target) == 0, "a hung command outlived the pipeline")
    outcome.check(
        bool(run.logged("event dead-lettered")) and bool(run.logged("will retry")),
        "no log lines about the retries and the dead letters",
    )
    outcome.figures.update(
        hung=len(hung),
        flowing=len(flowing),
        logfile_all_s=_rounded(logfile_took),
        other_lanes_all_s=_rounded(free_took),
        command_all_s=_rounded(all_took),
        dead_lettered_s=_rounded(dead_took),
        dead_letters=len(reasons),
        ctrl_c_exit_s=round(stop_took, 2),
    )
    if not outcome.ok:
        outcome.evidence += run.evidence(20)
    return outcome


def _event(path: Path) -> Event:
    return Event(kind=EventKind.CLOSED_WRITE, path=str(path), source="chaos/inotify")


def _dead_letters(workdir: Path) -> list[dict[str, Any]]:
    return complete_records(workdir / "state" / "dead-letter.jsonl")


def _sleepers(target: Path) -> int:
    """Processes still running the hanging target (`sleep 3600` started by it)."""
    count = 0
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            argv = Path("/proc", pid, "cmdline").read_bytes().split(b"\0")
            cwd = os.readlink(f"/proc/{pid}/cwd")
        except OSError:
            continue
        if argv[:2] == [b"sleep", b"3600"] and cwd == str(target.parent):
            count += 1
    return count


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(value, 2)
