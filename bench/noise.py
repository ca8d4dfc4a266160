"""How busy the rest of the machine is: CPU used by processes other than this benchmark's.

The machine may be shared (other people's test suites, services): a run during which
others kept a core busy is not comparable with a quiet one, so each run records it,
and a run waits (a little) for a quiet moment before it starts.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

TICKS = os.sysconf("SC_CLK_TCK")
QUIET = 0.25
"""Cores' worth of CPU that others may use for the machine to count as quiet."""


def _busy_seconds() -> float:
    """CPU seconds every process on the machine has used (first line of /proc/stat)."""
    fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(f) for f in fields[:8])
    return (user + nice + system + irq + softirq + steal) / TICKS


def _own_seconds() -> float:
    """CPU seconds of this process and of the children it has waited for."""
    times = os.times()
    return times.user + times.system + times.children_user + times.children_system


class LoadMeter:
    """Others' CPU (in cores) between `__init__` and `others()`.

    Our own children count as ours only once reaped, so call `others()` after the
    watcher and writer have been waited for.
    """

    def __init__(self) -> None:
        self.start = time.monotonic()
        self.busy = _busy_seconds()
        self.own = _own_seconds()

    def others(self) -> float:
        elapsed = max(time.monotonic() - self.start, 1e-3)
        used = (_busy_seconds() - self.busy) - (_own_seconds() - self.own)
        return max(used, 0.0) / elapsed


def wait_for_quiet(max_wait: float, window: float = 0.3) -> float:
    """Wait (at most `max_wait` s) until others use under QUIET cores over `window` s.

    Returns their load in the last window, whether or not it was quiet by then.
    """
    deadline = time.monotonic() + max_wait
    while True:
        meter = LoadMeter()
        time.sleep(window)
        load = meter.others()
        if load < QUIET or time.monotonic() >= deadline:
            return load
