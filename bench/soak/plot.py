"""The soak's PNG: RSS, open fds and throughput of the pipeline process over the run."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # no display: write files only

import matplotlib.pyplot as plt
from matplotlib.axes import Axes
from report import Trend
from sampler import Sample

SMOOTH = 5
"""Samples (seconds) averaged in the throughput curve."""


def _rates(times: list[float], counts: list[int]) -> list[float]:
    rates = [0.0]
    for i in range(1, len(times)):
        j = max(0, i - SMOOTH)
        span = times[i] - times[j]
        rates.append((counts[i] - counts[j]) / span if span > 0 else 0.0)
    return rates


def plot(
    path: Path,
    samples: list[Sample],
    *,
    load: tuple[float, float],
    rss: Trend,
    fds: Trend,
    title: str,
) -> None:
    """Three panels sharing the time axis (minutes); the second-half fits dashed."""
    minutes = [s.elapsed_s / 60 for s in samples]
    times = [s.elapsed_s for s in samples]
    fig, (ax_rss, ax_fds, ax_rate) = plt.subplots(3, 1, figsize=(11, 9), sharex=True)
    fig.suptitle(title, fontsize=11)
    half = ((load[0] + load[1]) / 2 / 60, load[1] / 60)

    ax_rss.plot(
        minutes, [s.rss_kib / 1024 for s in samples], color="tab:blue", lw=1.2, label="pipeline RSS"
    )
    _fit_line(ax_rss, samples, half, rss, [s.rss_kib / 1024 for s in samples])
    ax_rss.set_ylabel("RSS (MiB)")
    ax_rss.set_ylim(bottom=0)
    ax_rss.legend(loc="lower right", fontsize=8)

    ax_fds.plot(minutes, [s.fds for s in samples], color="tab:green", lw=1.2, label="open fds")
    _fit_line(ax_fds, samples, half, fds, [float(s.fds) for s in samples])
    ax_fds.set_ylabel("open file descriptors")
    ax_fds.set_ylim(bottom=0, top=max(s.fds for s in samples) * 1.3 + 1)
    ax_fds.legend(loc="lower right", fontsize=8)

    ax_rate.plot(
        minutes,
        _rates(times, [s.source_out for s in samples]),
        lw=1,
        color="tab:orange",
        label="source events/s",
    )
    ax_rate.plot(
        minutes,
        _rates(times, [s.delivered_logfile for s in samples]),
        lw=1,
        color="tab:purple",
        label="delivered events/s (logfile)",
    )
    ax_rate.set_ylabel(f"events/s ({SMOOTH} s mean)")
    ax_rate.set_xlabel("minutes since the pipeline was ready")
    ax_rate.set_ylim(bottom=0)
    ax_rate.legend(loc="lower right", fontsize=8)

    for axis in (ax_rss, ax_fds, ax_rate):
        axis.axvspan(load[0] / 60, load[1] / 60, color="0.93", zorder=0)
        axis.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _fit_line(
    axis: Axes,
    samples: list[Sample],
    half: tuple[float, float],
    fit: Trend,
    values: list[float],
) -> None:
    """The second half's least-squares line, anchored at that half's mean."""
    inside = [
        (s.elapsed_s / 60, v)
        for s, v in zip(samples, values, strict=True)
        if half[0] <= s.elapsed_s / 60 <= half[1]
    ]
    if len(inside) < 2:
        return
    mid = sum(t for t, _ in inside) / len(inside)
    mean = sum(v for _, v in inside) / len(inside)
    ends = [half[0], half[1]]
    axis.plot(
        ends,
        [mean + fit.slope_per_min * (t - mid) for t in ends],
        "k--",
        lw=1,
        label=f"second-half fit: {fit.slope_per_min:+.3f}/min",
    )
