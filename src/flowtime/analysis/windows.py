"""
Window facts: what a stretch of bins says about a queue (``engine-head.md`` §12, ``analysis-head.md`` §5.2).

Over the bins ``[start, end)`` of every node that reports a queue time (the
reference's rule: the facts are about Little's law and backlogs):

* ``non_stationary`` - the mean arrivals of the window's two halves differ by
  more than ``non_stationary_ratio`` of the larger (windows of at least
  ``non_stationary_min_bins``); the queue time ``queue / served`` assumes a
  steady state. The reference's C# names it ``littles-law-non-stationary``
  (``ALIASES``).
* ``backlog_growth_streak`` - the queue rises (by more than the tolerance) in
  ``streak_bins`` or more bins in a row;
* ``backlog_overload_ratio`` - arrivals exceed the effective capacity in
  ``streak_bins`` or more bins in a row;
* ``backlog_age_risk`` - latency exceeds slaMin in ``streak_bins`` or more bins in a row.

A streak finding lists the first bins of its streaks (``bins``, ``count`` all
of them) and its worst value: the largest rise of the queue over one streak,
the highest arrivals / capacity ratio, the highest latency (minutes).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import numpy.typing as npt

from flowtime.analysis.findings import Finding, offending
from flowtime.analysis.metrics import NodeMetrics
from flowtime.model.analysis_settings import DEFAULT_ANALYSIS, AnalysisSettings
from flowtime.model.schema import Model

Mask = npt.NDArray[np.bool_]

# code -> (severity, hint); analysis.codes takes these into the one table of codes
WINDOW_CODES: dict[str, tuple[str, str]] = {
    "non_stationary": ("info", "arrivals change across the window, so queue time (queue / served) is not a steady "
                       "state figure; read it over shorter windows (the reference's littles-law-non-stationary)"),
    "backlog_growth_streak": ("info", "the queue keeps growing: more arrives than is served; add capacity or "
                              "shed load"),
    "backlog_overload_ratio": ("info", "arrivals exceed what the node can serve in a row of bins; the backlog "
                               "builds up until capacity or demand changes"),
    "backlog_age_risk": ("info", "waiting work is older than the node's slaMin in a row of bins; the SLA is "
                         "being missed"),
}
ALIASES = {"non_stationary": "littles-law-non-stationary"}  # our code -> the reference's C# code


def streaks(mask: Mask, length: int) -> Mask:
    """
    The bins of ``mask`` that belong to a run of at least ``length`` consecutive True bins.

    >>> streaks(np.array([1, 1, 0, 1, 1, 1, 0], dtype=bool), 3).astype(int).tolist()
    [0, 0, 0, 1, 1, 1, 0]
    """
    starts, ends = _runs(mask)
    keep = (ends - starts) >= max(length, 1)
    marks = np.zeros(mask.size + 1, dtype=np.int64)
    np.add.at(marks, starts[keep], 1)
    np.add.at(marks, ends[keep], -1)
    out: Mask = np.cumsum(marks[:-1]) > 0
    return out


def _runs(mask: Mask) -> tuple[npt.NDArray[np.intp], npt.NDArray[np.intp]]:
    """The first bin and one past the last of every run of True in ``mask``."""
    edges = np.diff(np.concatenate(([0], mask.astype(np.int8), [0])))
    return np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)


def window_facts(model: Model, metrics: Mapping[str, NodeMetrics], settings: AnalysisSettings = DEFAULT_ANALYSIS,
                 start: int = 0, end: int | None = None) -> list[Finding]:
    """The window facts of every node with a queue time, over bins ``[start, end)`` (bins as grid bins)."""
    bins = model.grid.bins
    end = bins if end is None else min(max(end, 0), bins)
    start = min(max(start, 0), end)
    out: list[Finding] = []
    with np.errstate(divide="ignore", invalid="ignore"):
        for m in metrics.values():
            if "queueTimeMs" not in m.series:
                continue
            out += _facts(m, settings, start, end)
    return [f for f in out if f.code not in settings.ignore]


def _facts(m: NodeMetrics, settings: AnalysisSettings, start: int, end: int) -> list[Finding]:
    s = {k: v[start:end] for k, v in m.series.items()}
    out: list[Finding] = []
    arrivals = s.get("arrivals")
    n = end - start
    if arrivals is not None and n >= max(settings.non_stationary_min_bins, 2):
        half = n // 2
        first, second = float(np.mean(arrivals[:half])), float(np.mean(arrivals[half:]))
        larger = max(abs(first), abs(second))
        if larger > 0 and abs(first - second) > settings.non_stationary_ratio * larger:
            change = abs(first - second) / larger
            out.append(_finding("non_stationary", m, f"mean arrivals move from {first:g} (bins {start}-"
                                f"{start + half - 1}) to {second:g} (bins {start + half}-{end - 1}), "
                                f"{change:.0%} of the larger", (), 0, change))
    queue = s.get("queue")
    if queue is not None and n > 1:
        rising = np.concatenate(([False], np.diff(queue) > settings.tolerance))
        hit = streaks(rising, settings.streak_bins)
        if hit.any():
            # a streak's rise: the depth at its last bin less the depth before its first (never bin 0)
            starts, ends = _runs(hit)
            worst = float(np.max(queue[ends - 1] - queue[starts - 1]))
            out.append(_streak("backlog_growth_streak", m, hit, start, worst,
                               f"the queue grows in {settings.streak_bins} or more bins in a row"))
    cap = s.get("effectiveCapacity", s.get("capacity"))
    if arrivals is not None and cap is not None:
        ratio = np.where(cap > 0, arrivals / cap, np.nan)
        hit = streaks(ratio > 1, settings.streak_bins)
        if hit.any():
            out.append(_streak("backlog_overload_ratio", m, hit, start, float(np.max(ratio[hit])),
                               f"arrivals exceed the effective capacity in {settings.streak_bins} or more bins "
                               "in a row"))
    latency = s.get("latencyMinutes")
    if latency is not None and m.sla_min is not None:
        hit = streaks(latency > m.sla_min, settings.streak_bins)
        if hit.any():
            out.append(_streak("backlog_age_risk", m, hit, start, float(np.max(latency[hit])),
                               f"latency exceeds slaMin ({m.sla_min:g} min) in {settings.streak_bins} or more "
                               "bins in a row"))
    return out


def _streak(code: str, m: NodeMetrics, hit: Mask, start: int, value: float, message: str) -> Finding:
    first, count = offending(hit)
    return _finding(code, m, message, tuple(b + start for b in first), count, value)


def _finding(code: str, m: NodeMetrics, message: str, bins: tuple[int, ...], count: int, value: float) -> Finding:
    severity, hint = WINDOW_CODES[code]
    return Finding(code, severity, message, node=m.id, bins=bins, count=count, value=value, hint=hint)
