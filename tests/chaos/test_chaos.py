"""Chaos scenarios at CI size (about a minute in all): kill -9, broker restarts, a full
disk, the watched tree pulled away, clock jumps and a hanging sink. Each one checks that
no file is lost and that the log says what happened. `bench/chaos/run.py` runs the same
scenarios longer, with random seeds, and prints their figures."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.chaos.broker_restart import BrokerPlan, broker_restart
from tests.chaos.clock_jumps import ClockPlan, clock_jumps
from tests.chaos.disk_full import DiskPlan, disk_full
from tests.chaos.hanging_sink import HangPlan, hanging_sink
from tests.chaos.harness import Outcome
from tests.chaos.kill_restart import KillPlan, kill_and_restart
from tests.chaos.watched_tree import TreePlan, watched_tree

pytestmark = pytest.mark.e2e


def passed(outcome: Outcome) -> bool:
    print(outcome.explain())  # the figures, shown with -rP or -s
    return outcome.ok


def test_kill_9_at_random_points_and_restarts_lose_no_file(tmp_path: Path) -> None:
    outcome = kill_and_restart(tmp_path, KillPlan(kills=3, seed=8))
    assert passed(outcome), outcome.explain()


def test_a_redis_restart_and_freeze_lose_nothing_spooled(tmp_path: Path) -> None:
    outcome = broker_restart(tmp_path, BrokerPlan(outages=("restart", "freeze"), seed=8))
    assert passed(outcome), outcome.explain()


def test_a_full_state_dir_is_reported_and_loses_nothing_once_space_returns(
    tmp_path: Path,
) -> None:
    outcome = disk_full(tmp_path, DiskPlan())
    assert passed(outcome), outcome.explain()


def test_deleting_and_recreating_the_watched_folder_keeps_events_flowing(
    tmp_path: Path,
) -> None:
    outcome = watched_tree(tmp_path, TreePlan(cycles=2, seed=8))
    assert passed(outcome), outcome.explain()


def test_a_folder_bind_mounted_over_the_watched_folder_is_watched(tmp_path: Path) -> None:
    outcome = watched_tree(tmp_path, TreePlan(cycles=0, bind_mount=True, step_timeout=5))
    assert passed(outcome), outcome.explain()


def test_wall_clock_jumps_leave_debounce_retry_and_rotation_timers_alone(
    tmp_path: Path,
) -> None:
    outcome = clock_jumps(tmp_path, ClockPlan(jumps=("+1d", "-3h", "+0")))
    assert passed(outcome), outcome.explain()


def test_a_hanging_sink_times_out_and_everything_else_keeps_flowing(tmp_path: Path) -> None:
    outcome = hanging_sink(tmp_path, HangPlan(hung=1, flowing=20))
    assert passed(outcome), outcome.explain()
