"""How fast the generator may go: as fast as the pipeline keeps up, found by feedback.

A soak is about the steady state, so the generator should run at the pipeline's
sustainable rate, not far above it (the debounce stage would then hold an ever larger
backlog and the memory curve would show the overload, not the pipeline) nor far below.
The rate is found the way TCP finds a link's: it grows by a few percent per reading while
the pipeline keeps up, and is cut when it falls behind (late deliveries, or the source
more than `max_lag` events behind the generator, or a sink queue nearly full).
"""

from __future__ import annotations

import time

START_RATE = 1000.0
"""Events per second at the start."""
GROWTH = 1.03
"""Rate multiplier per reading (4 a second) while the pipeline keeps up."""
CUT = 0.7
"""Rate multiplier when it falls behind, at most once per CUT_EVERY seconds."""
CUT_EVERY = 1.5
"""The behind signal lags (it is about deliveries of the last second): one cut per lag."""
FLOOR = 100.0
BURST = 0.1
"""Seconds of the rate the generator may bank while it waits."""


class Pacer:
    """A token bucket whose rate follows the pipeline (additive-increase, cut on lag)."""

    def __init__(self, ceiling: float = float("inf")) -> None:
        self.rate = min(START_RATE, ceiling)
        self.ceiling = ceiling
        self._tokens = 0.0
        self._filled_at = time.monotonic()
        self._cut_at = 0.0
        self._starved = False

    def reading(self, behind: bool) -> None:
        """One new reading of the pipeline: `behind` if it does not keep up."""
        now = time.monotonic()
        if behind:
            if now - self._cut_at >= CUT_EVERY:
                self.rate = max(FLOOR, self.rate * CUT)
                self._cut_at = now
            self._tokens = min(self._tokens, 0.0)
        elif self._starved:
            # Only a rate that held the generator back is raised: otherwise it would run
            # away while the generator itself is the limit, and take long to cut back.
            self.rate = min(self.ceiling, self.rate * GROWTH)
        self._starved = False

    def allowance(self) -> int:
        """Events that may be made now (taken from the bucket)."""
        now = time.monotonic()
        self._tokens = min(self._tokens + (now - self._filled_at) * self.rate, BURST * self.rate)
        self._filled_at = now
        if self._tokens < 1:
            self._starved = True
        return int(self._tokens)

    def spend(self, events: int) -> None:
        self._tokens -= events
