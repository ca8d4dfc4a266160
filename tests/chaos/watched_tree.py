"""Scenario: the watched folder is deleted, created again, and bind-mounted over while
`pipeline run` watches it; a file written after each step must still be delivered."""

from __future__ import annotations

import dataclasses
import random
import shutil
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

from tests.chaos.harness import Outcome, Run, logged_paths, running, wait_until, write_file

CONFIG = """\
state_dir: state
pipelines:
  chaos:
    sources:
      - type: inotify
        paths: [watched]
        events: [created, closed_write, deleted]
    sinks:
      - type: logfile
        path: events.jsonl
"""


@dataclasses.dataclass(frozen=True)
class TreePlan:
    cycles: int = 1
    """Times the folder is deleted and created again."""
    bind_mount: bool = False
    """Then bind-mount another folder over it, write through the mount, unmount."""
    seed: int = 8
    pause: tuple[float, float] = (0.0, 0.3)
    """Random pause after each step before the next write."""
    step_timeout: float = 10.0


def watched_tree(workdir: Path, plan: TreePlan) -> Outcome:
    rng = random.Random(plan.seed)
    outcome = Outcome("watched tree deleted, re-created, bind-mounted over")
    watched, other = workdir / "watched", workdir / "other"
    watched.mkdir()
    other.mkdir()
    (workdir / "config.yaml").write_text(CONFIG)
    out = workdir / "events.jsonl"
    latencies: list[float] = []
    runs: list[Run] = []

    def arrives(name: str, step: str) -> bool:
        time.sleep(rng.uniform(*plan.pause))
        path = watched / name
        write_file(path)
        took = wait_until(lambda: str(path) in logged_paths(out), plan.step_timeout)
        latencies.append(took if took is not None else float("inf"))
        return outcome.check(took is not None, f"after {step}: {name} was never delivered")

    def logs(message: str, step: str) -> None:
        outcome.check(
            run.wait_logged(message, plan.step_timeout) is not None,
            f"after {step}: no log line {message!r}",
        )

    with running(runs):
        run = Run(workdir, "run").start()
        runs.append(run)
        if not outcome.check(run.wait_ready() is not None, "the pipeline never got ready"):
            outcome.evidence += run.evidence()
            return outcome
        arrives("before.csv", "start")
        for cycle in range(plan.cycles):
            shutil.rmtree(watched)
            logs("watched path is not there", "deleting the watched folder")
            watched.mkdir()
            arrives(f"recreated-{cycle}.csv", "creating it again")
            logs("watched path is there", "creating it again")
        if plan.bind_mount:
            _bind_mount_over(outcome, run, watched=watched, other=other, arrives=arrives, out=out)
        code, _ = run.interrupt()
    outcome.check(code == 0, f"exit code {code} on Ctrl-C, not 0")
    raw = [r["raw"] for r in run.records() if "raw" in r and r["raw"].strip()]
    outcome.check(not raw, f"raw lines (tracebacks) on stderr: {raw[:3]}")
    outcome.figures.update(
        cycles=plan.cycles,
        bind_mount=plan.bind_mount,
        delivery_latency_s_max=round(max(latencies), 2),
    )
    if not outcome.ok:
        outcome.evidence += run.evidence(20)
    return outcome


def _bind_mount_over(
    outcome: Outcome,
    run: Run,
    *,
    watched: Path,
    other: Path,
    arrives: Callable[[str, str], bool],
    out: Path,
) -> None:
    write_file(other / "there-before.csv")
    subprocess.run(["mount", "--bind", str(other), str(watched)], check=True, timeout=30)
    try:
        arrives("through-mount.csv", "bind-mounting another folder over it")
        mount_lines = [r for r in run.records() if "mount" in str(r.get("event", "")).lower()]
        outcome.check(bool(mount_lines), "no log line says the watched folder was mounted over")
        outcome.figures["files_of_the_mount_reported"] = str(
            watched / "there-before.csv"
        ) in logged_paths(out)
    finally:
        subprocess.run(["umount", "-l", str(watched)], check=False, timeout=30)
    arrives("after-umount.csv", "unmounting it")
