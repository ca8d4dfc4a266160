"""Scenario: the wall clock jumps forward and backward under a running `pipeline run`
(libfaketime, LD_PRELOADed, reads the offset from a file on every call), while debounce,
retry backoff and time-based log rotation are at work. The monotonic clock is left alone,
as a real clock step (NTP, a VM resumed) leaves it."""

from __future__ import annotations

import dataclasses
import functools
import importlib.util
import re
import time
from pathlib import Path

from tests.chaos.harness import (
    Outcome,
    Run,
    listed_paths,
    logged_paths,
    running,
    wait_until,
    write_file,
)

DEBIAN_LIBFAKETIME = Path("/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1")
QUIET = 0.5
BACKOFF = 0.4
TARGET = """\
#!/bin/sh
# Fails the first delivery of each path, so that every event goes through a retry.
tried="{workdir}/tried-$(basename "$1")"
[ -e "$tried" ] || {{ touch "$tried"; echo "first try fails" >&2; exit 1; }}
printf '%s\\n' "$1" >> "{workdir}/delivered.txt"
"""
CONFIG = f"""\
state_dir: state
pipelines:
  chaos:
    sources:
      - type: inotify
        paths: [inbox]
        events: [closed_write]
    stages:
      - type: debounce
        quiet: {QUIET}s
    sinks:
      - type: logfile
        path: events.jsonl
        rotate_every: 1h
      - type: command
        argv: [{{target}}, "{{{{path}}}}"]
        retry_backoff: {BACKOFF}s
        retry_max_backoff: {BACKOFF}s
"""


def libfaketime() -> Path:
    """The libfaketime shared library: from the `libfaketime` PyPI package (a dev
    dependency), else Debian's `libfaketime` package."""
    spec = importlib.util.find_spec("libfaketime")
    if spec is not None and spec.submodule_search_locations:
        for folder in spec.submodule_search_locations:
            found = Path(folder, "vendor", "libfaketime", "src", "libfaketime.so.1")
            if found.exists():
                return found
    if DEBIAN_LIBFAKETIME.exists():
        return DEBIAN_LIBFAKETIME
    raise AssertionError(
        "libfaketime is missing: `.venv/bin/pip install libfaketime` (in the dev extra) "
        "or `apt-get install -y libfaketime`"
    )


@dataclasses.dataclass(frozen=True)
class ClockPlan:
    jumps: tuple[str, ...] = ("+1d", "-3h", "+0")
    """Offsets from the real time (libfaketime's `+1d`, `-3h`, `+90m` forms), one after
    the other; the pipeline starts at +0."""
    burst: int = 5
    """Writes to one file per jump, 50 ms apart: debounce makes them one event."""
    latency_slack: float = 6.0


def clock_jumps(workdir: Path, plan: ClockPlan) -> Outcome:
    outcome = Outcome("clock jumps")
    inbox = workdir / "inbox"
    inbox.mkdir()
    target = workdir / "target.sh"
    target.write_text(TARGET.format(workdir=workdir))
    target.chmod(0o755)
    (workdir / "config.yaml").write_text(CONFIG.format(target=target))
    offset = workdir / "clock-offset"
    offset.write_text("+0\n")
    env = {
        "LD_PRELOAD": str(libfaketime()),
        "FAKETIME_TIMESTAMP_FILE": str(offset),
        "FAKETIME_NO_CACHE": "1",  # read the file on every call: the jump is immediate
        "FAKETIME_DONT_FAKE_MONOTONIC": "1",
    }
    delivered = workdir / "delivered.txt"
    latencies: dict[str, float | None] = {}
    runs: list[Run] = []
    started = time.time()
    with running(runs):
        run = Run(workdir, "run", env=env).start()
        runs.append(run)
        if not outcome.check(run.wait_ready() is not None, "the pipeline never got ready"):
            outcome.evidence += run.evidence()
            return outcome
        for number, jump in enumerate(("+0", *plan.jumps)):
            offset.write_text(f"{jump}\n")
            path = inbox / f"after-jump-{number}.csv"
            for write in range(plan.burst):
                write_file(path, f"{write}\n".encode())
                time.sleep(0.05)
            latencies[f"{number}:{jump}"] = wait_until(
                functools.partial(_listed, str(path), delivered), QUIET + plan.latency_slack
            )
        time.sleep(QUIET)  # anything emitted twice would show up now
        code, _ = run.interrupt()
    _judge(outcome, workdir, latencies, plan, started)
    outcome.check(code == 0, f"exit code {code} on Ctrl-C, not 0")
    if not outcome.ok:
        outcome.evidence += run.evidence(20)
    return outcome


def _judge(
    outcome: Outcome,
    workdir: Path,
    latencies: dict[str, float | None],
    plan: ClockPlan,
    started: float,
) -> None:
    for jump, latency in latencies.items():
        outcome.check(
            latency is not None,
            f"jump {jump}: not delivered within {QUIET + plan.latency_slack}s "
            "(a timer waited on the wall clock?)",
        )
        # The debounce must still wait its quiet time and a retry its backoff.
        outcome.check(
            latency is None or latency >= QUIET + BACKOFF * 0.5 - 0.15,
            f"jump {jump}: delivered after {latency}s, before quiet + backoff had passed",
        )
    logs = sorted(workdir.glob("events*.jsonl"))
    lines = logged_paths(*logs)
    outcome.check(
        len(lines) == len(latencies) and len(set(lines)) == len(latencies),
        f"expected one logfile line per burst ({len(latencies)}), got {len(lines)}: "
        "debounce emitted early or twice, or a rotation lost lines",
    )
    rotations = _expected_rotations(("+0", *plan.jumps), started)
    rotated = len(logs) - 1
    outcome.check(
        rotated in rotations,
        f"{rotated} rotations of the hourly log; the jumps {plan.jumps} make {rotations[0]}",
    )
    outcome.figures.update(
        jumps=list(plan.jumps),
        burst_to_delivery_s={k: None if v is None else round(v, 2) for k, v in latencies.items()},
        rotated_files=rotated,
    )


def _offset_seconds(jump: str) -> float:
    """libfaketime's relative offset (`+1d`, `-3h`, `+90m`, `+0`) in seconds."""
    match = re.fullmatch(r"([+-])(\d+(?:\.\d+)?)([smhd]?)", jump)
    assert match, f"unsupported offset {jump!r}"
    unit = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}[match.group(3)]
    return float(match.group(2)) * unit * (-1 if match.group(1) == "-" else 1)


def _expected_rotations(jumps: tuple[str, ...], started: float) -> tuple[int, ...]:
    """How often an hourly log rotates as the clock takes each offset in turn: whenever a
    write lands in a later hour than the file was opened in. Two answers when the real
    hour turned during the run."""
    answers = []
    for now in (started, time.time()):
        opened, rotations = int(now // 3600), 0
        for jump in jumps:
            hour = int((now + _offset_seconds(jump)) // 3600)
            if hour > opened:
                rotations, opened = rotations + 1, hour
        answers.append(rotations)
    return tuple(dict.fromkeys(answers))


def _listed(path: str, listing: Path) -> bool:
    return path in listed_paths(listing)
