"""Chaos, the long randomized version: the scenarios of tests/chaos, bigger and with
random parameters, each run under its own seed; prints a table of pass/fail and figures.

    .venv/bin/python bench/chaos/run.py                      # every scenario once, ~3 min
    .venv/bin/python bench/chaos/run.py --rounds 3 --only kill broker
    .venv/bin/python bench/chaos/run.py --seed 1234          # replay a run's choices

Needs root (tmpfs and bind mounts) and redis-server. Writes bench/chaos/results/latest.json.
A failed scenario keeps its folder (printed) with every run's stderr for a look.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import random
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from tests.chaos.broker_restart import BrokerPlan, broker_restart  # noqa: E402
from tests.chaos.clock_jumps import ClockPlan, clock_jumps  # noqa: E402
from tests.chaos.disk_full import DiskPlan, disk_full  # noqa: E402
from tests.chaos.hanging_sink import HangPlan, hanging_sink  # noqa: E402
from tests.chaos.harness import Outcome  # noqa: E402
from tests.chaos.kill_restart import KillPlan, kill_and_restart  # noqa: E402
from tests.chaos.watched_tree import TreePlan, watched_tree  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results" / "latest.json"
CLOCK_OFFSETS = ("+0", "+90m", "+2h", "+1d", "+7d", "-10m", "-3h", "-1d")

Scenario = Callable[[Path, random.Random, bool], Outcome]
"""(workdir, rng, quick) -> outcome."""


def kill(workdir: Path, rng: random.Random, quick: bool) -> Outcome:
    plan = KillPlan(
        kills=6 if quick else 20,
        seed=rng.randrange(2**32),
        checkpoint=rng.choice(("250ms", "500ms", "1s", "2s")),
        down=(0.05, 2.0),
        live=(0.2, 3.0),
        settle_timeout=120.0,
    )
    return kill_and_restart(workdir, plan)


def broker(workdir: Path, rng: random.Random, quick: bool) -> Outcome:
    outages = tuple(rng.choice(("restart", "freeze")) for _ in range(2 if quick else 6))
    plan = BrokerPlan(
        outages=outages,
        seed=rng.randrange(2**32),
        outage=(0.5, 3.0),
        between=(0.3, 2.0),
        settle_timeout=120.0,
    )
    return broker_restart(workdir, plan)


def disk(workdir: Path, rng: random.Random, quick: bool) -> Outcome:
    plan = DiskPlan(
        size=rng.choice(("1m", "2m")),
        headroom=rng.randrange(64, 512) * 1024,
        files_after=rng.randrange(10, 200),
        settle_timeout=60.0,
    )
    return disk_full(workdir, plan)


def tree(workdir: Path, rng: random.Random, quick: bool) -> Outcome:
    plan = TreePlan(cycles=3 if quick else 15, seed=rng.randrange(2**32), pause=(0.0, 0.5))
    return watched_tree(workdir, plan)


def bind(workdir: Path, rng: random.Random, quick: bool) -> Outcome:
    plan = TreePlan(cycles=0, bind_mount=True, seed=rng.randrange(2**32), step_timeout=5)
    return watched_tree(workdir, plan)


def clock(workdir: Path, rng: random.Random, quick: bool) -> Outcome:
    jumps = tuple(rng.choice(CLOCK_OFFSETS) for _ in range(4 if quick else 10))
    return clock_jumps(workdir, ClockPlan(jumps=jumps))


def hang(workdir: Path, rng: random.Random, quick: bool) -> Outcome:
    plan = HangPlan(hung=rng.randrange(1, 4 if quick else 6), flowing=50 if quick else 300)
    return hanging_sink(workdir, plan)


SCENARIOS: dict[str, Scenario] = {
    "kill": kill,
    "broker": broker,
    "disk": disk,
    "tree": tree,
    "bind": bind,
    "clock": clock,
    "hang": hang,
}


@dataclasses.dataclass
class Result:
    name: str
    seed: int
    seconds: float
    outcome: Outcome
    workdir: str


def main() -> int:
    args = _arguments()
    if os.geteuid() != 0:
        print("bench/chaos needs root (tmpfs and bind mounts)", file=sys.stderr)
        return 2
    master = random.Random(args.seed)
    results: list[Result] = []
    for round_number in range(args.rounds):
        for name in args.only or SCENARIOS:
            seed = master.randrange(2**32)
            results.append(_one(name, seed, args.quick))
            print(_row(results[-1], round_number), flush=True)
    _write(results, args)
    failed = [r for r in results if not r.outcome.ok]
    print(f"\n{len(results) - len(failed)} passed, {len(failed)} failed (seed {args.seed})")
    for result in failed:
        print(f"\n{result.outcome.explain()}\n  folder: {result.workdir}")
    return 1 if failed else 0


def _arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=random.SystemRandom().randrange(2**31))
    parser.add_argument("--rounds", type=int, default=1, help="runs of each scenario")
    parser.add_argument("--quick", action="store_true", help="smaller sizes, about a minute")
    parser.add_argument("--only", nargs="+", choices=sorted(SCENARIOS), help="some scenarios")
    args = parser.parse_args()
    print(f"seed {args.seed} (replay with --seed {args.seed})", flush=True)
    print(f"{'scenario':<8} {'round':>5} {'seed':>10}  {'result':<6} {'secs':>6}  figures")
    return args


def _one(name: str, seed: int, quick: bool) -> Result:
    workdir = Path(tempfile.mkdtemp(prefix=f"fsp-chaos-{name}-"))
    start = time.monotonic()
    try:
        outcome = SCENARIOS[name](workdir, random.Random(seed), quick)
    except Exception as exc:  # a scenario that breaks is a failed row, not a stopped bench
        outcome = Outcome(name, problems=[f"the scenario itself failed: {exc!r}"])
    result = Result(name, seed, time.monotonic() - start, outcome, str(workdir))
    if outcome.ok:
        shutil.rmtree(workdir, ignore_errors=True)
    return result


def _row(result: Result, round_number: int) -> str:
    verdict = "pass" if result.outcome.ok else "FAIL"
    figures = " ".join(f"{k}={_compact(v)}" for k, v in result.outcome.figures.items())
    return (
        f"{result.name:<8} {round_number:>5} {result.seed:>10}  {verdict:<6} "
        f"{result.seconds:>6.1f}  {figures}"
    )


def _compact(value: Any) -> str:
    return json.dumps(value, separators=(",", ":")) if not isinstance(value, str) else value


def _write(results: list[Result], args: argparse.Namespace) -> None:
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    report = {
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "seed": args.seed,
        "quick": args.quick,
        "results": [
            {
                "scenario": r.name,
                "seed": r.seed,
                "ok": r.outcome.ok,
                "seconds": round(r.seconds, 1),
                "problems": r.outcome.problems,
                "figures": r.outcome.figures,
                "folder": None if r.outcome.ok else r.workdir,
            }
            for r in results
        ],
    }
    RESULTS.write_text(json.dumps(report, indent=2, default=str) + "\n")


if __name__ == "__main__":
    sys.exit(main())
