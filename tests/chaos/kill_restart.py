"""Scenario: `pipeline run` killed with SIGKILL at random moments (in a burst, while
starting, while catching up) and restarted, while files keep being created."""

from __future__ import annotations

import dataclasses
import random
import statistics
import time
from pathlib import Path

from tests.chaos.harness import Outcome, Run, Writer, logged_paths, running, wait_until

CONFIG = """\
state_dir: state
pipelines:
  chaos:
    sources:
      - type: inotify
        paths: [inbox]
        events: [closed_write]
        checkpoint_interval: {checkpoint}
    sinks:
      - type: logfile
        path: events.jsonl
        spool: true
        batch_size: 1000
        batch_wait: {batch_wait}
"""
SNAPSHOT = Path("state", "chaos.sources[0]", "snapshot.bin")
PHASES = ("burst", "startup", "catch-up")


@dataclasses.dataclass(frozen=True)
class KillPlan:
    """How hard to shake it."""

    kills: int = 3
    seed: int = 8
    checkpoint: str = "500ms"
    batch_wait: str = "300ms"
    """Events wait this long in the spool before the logfile sink takes them, so that
    kills find some there."""
    down: tuple[float, float] = (0.1, 0.8)
    """Seconds the pipeline stays dead while files keep coming."""
    live: tuple[float, float] = (0.2, 1.5)
    """Seconds a `burst` kill waits after the run got ready."""
    settle_timeout: float = 60.0
    """How long the last run may take to deliver every file."""


def kill_and_restart(workdir: Path, plan: KillPlan) -> Outcome:
    rng = random.Random(plan.seed)
    outcome = Outcome("kill -9 and restart")
    inbox = workdir / "inbox"
    inbox.mkdir()
    (workdir / "config.yaml").write_text(
        CONFIG.format(checkpoint=plan.checkpoint, batch_wait=plan.batch_wait)
    )
    phases = [PHASES[i % len(PHASES)] for i in range(plan.kills)]
    rng.shuffle(phases)
    writer = Writer(inbox, random.Random(plan.seed + 1))
    runs: list[Run] = []
    ready_times: list[float] = []
    with running(runs):
        first = _start(workdir, runs)
        if not outcome.check(first.wait_ready() is not None, "the first run never got ready"):
            outcome.evidence += first.evidence()
            return outcome
        writer.start()
        # Until the first snapshot is saved there is nothing to catch up from.
        wait_until((workdir / SNAPSHOT).exists, 30)
        run = first
        for phase in phases:
            _kill_in(phase, run, rng, plan, ready_times)
            time.sleep(rng.uniform(*plan.down))
            run = _start(workdir, runs)
        created = writer.stop()
        ready = run.wait_ready()
        if ready is not None:
            ready_times.append(ready)
        out = workdir / "events.jsonl"
        settled = wait_until(lambda: set(created) <= set(logged_paths(out)), plan.settle_timeout)
        recovered = time.monotonic() - run.started
        code, _ = run.interrupt()
    _judge(outcome, runs, created, logged_paths(out), phases)
    outcome.check(settled is not None, f"not every file delivered within {plan.settle_timeout}s")
    outcome.check(code == 0, f"the last run exited {code} on Ctrl-C, not 0")
    outcome.figures.update(
        restart_to_ready_s_median=round(statistics.median(ready_times), 2),
        restart_to_ready_s_max=round(max(ready_times), 2),
        last_run_start_to_all_delivered_s=round(recovered, 2),
    )
    return outcome


def _start(workdir: Path, runs: list[Run]) -> Run:
    run = Run(workdir, f"run-{len(runs)}").start()
    runs.append(run)
    return run


def _kill_in(
    phase: str, run: Run, rng: random.Random, plan: KillPlan, ready_times: list[float]
) -> None:
    """SIGKILL `run` (just started) at a random point of `phase`."""
    if phase == "burst":
        ready = run.wait_ready()
        if ready is not None:
            ready_times.append(ready)
        time.sleep(rng.uniform(*plan.live))
    elif phase == "startup":
        usual = statistics.median(ready_times) if ready_times else 1.0
        time.sleep(rng.uniform(0.05, usual))
    else:  # catch-up: the source is open and reports what changed while it was down
        run.wait_logged('"watching"', 60)
    run.kill9()


def _judge(
    outcome: Outcome, runs: list[Run], created: list[str], lines: list[str], phases: list[str]
) -> None:
    delivered = set(lines)
    missing = sorted(set(created) - delivered)
    outcome.check(
        not missing, f"{len(missing)} of {len(created)} files never delivered: {missing[:5]}"
    )
    catch_ups = []
    for run in runs[1:]:
        for record in run.logged("watching"):
            catch_ups.append(record.get("catching_up"))
    outcome.check(
        None not in catch_ups,
        "a restart did not catch up from the saved snapshot (`watching` logged catching_up=null)",
    )
    outcome.check(
        any(isinstance(n, int) and n > 0 for n in catch_ups),
        "no restart logged that it caught up with files created while it was down",
    )
    raw = []
    for number, run in enumerate(runs):
        records = run.records()
        if number < len(runs) - 1 and records and "raw" in records[-1]:
            records.pop()  # the line the kill cut short
        raw += [r["raw"] for r in records if "raw" in r and r["raw"].strip()]
    outcome.check(not raw, f"lines that are not log records (tracebacks?): {raw[:3]}")
    replays = sum(len(run.logged("delivering events spooled by an earlier run")) for run in runs)
    duplicates = len(lines) - len(delivered)
    outcome.figures.update(
        kills=len(phases),
        kills_by_phase={p: phases.count(p) for p in PHASES},
        files=len(created),
        lines_delivered=len(lines),
        duplicates=duplicates,
        duplicates_per_kill=round(duplicates / max(1, len(phases)), 1),
        caught_up_events=sum(n for n in catch_ups if isinstance(n, int)),
        spool_replays=replays,
    )
    if not outcome.ok:
        for run in runs:
            outcome.evidence += run.evidence(5)
