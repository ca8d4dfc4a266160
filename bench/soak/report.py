"""The soak's verdicts and summary: flatness of memory and fds, the accounting table, JSON."""

from __future__ import annotations

import dataclasses
import json
import statistics
from collections.abc import Callable
from pathlib import Path
from typing import Any

from reconcile import Accounting
from sampler import Sample

RSS_FLAT_MIB = 4.0
RSS_FLAT_SHARE = 0.03
"""RSS is flat when its fitted growth over the second half of the load is under
max(RSS_FLAT_MIB, RSS_FLAT_SHARE of its mean there)."""
FDS_FLAT = 2.0
"""Open fds are flat when their fitted growth over the second half is under this many."""
MIN_HALF = 60.0
"""Seconds the second half must last for a verdict: a shorter run (a smoke run) is still
warming up (the tree filling, the generator finding its pace), and says nothing."""


@dataclasses.dataclass(frozen=True)
class Trend:
    """A quantity over the run: first, peak and last values, and its second-half fit."""

    start: float
    peak: float
    end: float
    slope_per_min: float
    """Least-squares slope over the second half of the load, per minute."""
    growth: float
    """That slope times the second half's length: what the fit says it grew by."""
    flat: bool | None
    """None when the run was too short to tell (see MIN_HALF)."""

    def verdict(self) -> str:
        return {True: "flat", False: "GROWING", None: "(run too short to tell)"}[self.flat]


@dataclasses.dataclass(frozen=True)
class Timing:
    duration_s: float
    """From the first generated operation until every event had left the pipeline."""
    generate_s: float
    """How long the generator ran (paced by the pipeline's lag)."""
    events_per_s: float


def trend(
    samples: list[Sample],
    load: tuple[float, float],
    value: Callable[[Sample], float],
    flat_limit: Callable[[float], float],
) -> Trend:
    """Fit `value` over the second half of the `load` window (elapsed seconds)."""
    begin, end = load
    half = [s for s in samples if (begin + end) / 2 <= s.elapsed_s <= end]
    # Until the end of the load: the samples taken while the process shuts down are not it.
    values = [value(s) for s in samples if s.elapsed_s <= end]
    if len(half) >= 3:
        fit = statistics.linear_regression([s.elapsed_s for s in half], [value(s) for s in half])
        slope = fit.slope
    else:
        slope = 0.0
    growth = slope * (end - begin) / 2
    mean = statistics.fmean(value(s) for s in half) if half else 0.0
    return Trend(
        start=values[0] if values else 0.0,
        peak=max(values, default=0.0),
        end=values[-1] if values else 0.0,
        slope_per_min=slope * 60,
        growth=growth,
        flat=abs(growth) < flat_limit(mean) if (end - begin) / 2 >= MIN_HALF else None,
    )


def rss_trend(samples: list[Sample], load: tuple[float, float]) -> Trend:
    return trend(
        samples,
        load,
        lambda s: s.rss_kib / 1024,
        lambda mean: max(RSS_FLAT_MIB, RSS_FLAT_SHARE * mean),
    )


def fds_trend(samples: list[Sample], load: tuple[float, float]) -> Trend:
    return trend(samples, load, lambda s: float(s.fds), lambda mean: FDS_FLAT)


def table(acc: Accounting, rss: Trend, fds: Trend, timing: Timing) -> str:
    """The summary a person reads at the end of the run."""
    rows: list[tuple[str, str]] = [
        ("events generated (expected from the source)", f"{acc.generated:,}"),
        ("  of which match the filter's exclude rule", f"{acc.expected_excluded:,}"),
        ("events the source emitted", f"{acc.source_out:,}"),
        ("filtered by rule (filter stage)", f"{acc.filtered:,}"),
        ("merged by debounce", f"{acc.merged:,}"),
        ("dead-lettered by a stage", f"{acc.stage_dead_lettered:,}"),
        ("reached the sinks", f"{acc.reached_sinks:,}"),
    ]
    for name, delivered in acc.delivered.items():
        on_record = acc.on_record[name]
        rows.append((f"  delivered by {name} (on record)", f"{delivered:,} ({on_record:,})"))
        rows.append((f"  dead-lettered by {name}", f"{acc.sink_dead_lettered[name]:,}"))
    rows += [
        ("unaccounted", f"{acc.unaccounted:,}"),
        (
            "consumer's view vs tree: mismatches (explained)",
            f"{acc.view_mismatches:,} ({acc.view_explained:,})",
        ),
        ("RSS MiB start / peak / end", f"{rss.start:.1f} / {rss.peak:.1f} / {rss.end:.1f}"),
        (
            "RSS slope, second half",
            f"{rss.slope_per_min:+.3f} MiB/min ({rss.growth:+.1f} MiB) {rss.verdict()}",
        ),
        ("open fds start / peak / end", f"{fds.start:.0f} / {fds.peak:.0f} / {fds.end:.0f}"),
        (
            "fds slope, second half",
            f"{fds.slope_per_min:+.3f}/min ({fds.growth:+.1f}) {fds.verdict()}",
        ),
        ("duration (generate + drain)", f"{timing.duration_s:,.1f} s"),
        ("events/s (generated events / duration)", f"{timing.events_per_s:,.0f}"),
    ]
    width = max(len(label) for label, _ in rows)
    lines = [f"{label:<{width}}  {value}" for label, value in rows]
    if acc.dead_letter_reasons:
        lines.append("dead-letter reasons:")
        lines += [f"  {n:>8,}  {reason}" for reason, n in acc.dead_letter_reasons.most_common(8)]
    lines.append("findings: " + ("none" if not acc.findings else ""))
    lines += [f"  - {finding}" for finding in acc.findings]
    lines.append("problems: " + ("none" if not acc.problems else ""))
    lines += [f"  - {problem}" for problem in acc.problems]
    return "\n".join(lines)


def write_summary(
    path: Path, facts: dict[str, Any], acc: Accounting, *, rss: Trend, fds: Trend, timing: Timing
) -> None:
    body = {
        **facts,
        # Not asdict: it rebuilds a Counter from (key, value) pairs, counting the pairs.
        "accounting": {f.name: getattr(acc, f.name) for f in dataclasses.fields(acc)},
        "rss_mib": dataclasses.asdict(rss),
        "fds": dataclasses.asdict(fds),
        "timing": dataclasses.asdict(timing),
    }
    path.write_text(json.dumps(body, indent=2, default=str) + "\n")
