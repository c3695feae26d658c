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
    out: Mask = long_runs(mask[None, :], length)[0]
    return out


def long_runs(mask: Mask, length: int) -> Mask:
    """
    ``streaks`` of every row of a 2-D mask at once: a True bin is kept when the
    run around it (from the False before it to the False after it) is long enough.

    >>> long_runs(np.array([[1, 1, 0, 1], [1, 1, 1, 0]], dtype=bool), 2).astype(int).tolist()
    [[1, 1, 0, 0], [1, 1, 1, 0]]
    """
    n = mask.shape[1]
    idx = np.arange(n)
    before = np.maximum.accumulate(np.where(mask, -1, idx), axis=1)  # the last False at or before each bin
    after = np.minimum.accumulate(np.where(mask, n, idx)[:, ::-1], axis=1)[:, ::-1]  # the first at or after
    out: Mask = mask & (after - before - 1 >= max(length, 1))
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
    nodes = [m for m in metrics.values() if "queueTimeMs" in m.series]
    found: dict[int, list[Finding]] = {i: [] for i in range(len(nodes))}
    # One array per fact over all the nodes that have its series: a what-if answer analyses every node
    # each time a slider moves, and per-node NumPy calls on a few hundred bins cost more than the sums.
    with np.errstate(divide="ignore", invalid="ignore"):
        for i, f in _facts(nodes, settings, start, end):
            found[i].append(f)
    out = [f for i in range(len(nodes)) for f in found[i]]
    return [f for f in out if f.code not in settings.ignore]


def _rows(nodes: list[NodeMetrics], keys: tuple[str, ...], start: int, end: int
          ) -> tuple[list[int], npt.NDArray[np.float64]]:
    """The nodes having the first of ``keys`` they hold, and those series over the window, one row each."""
    have, rows = [], []
    for i, m in enumerate(nodes):
        got = next((m.series[k] for k in keys if k in m.series), None)
        if got is not None:
            have.append(i)
            rows.append(got[start:end])
    return have, np.stack(rows) if rows else np.zeros((0, end - start))


def _facts(nodes: list[NodeMetrics], settings: AnalysisSettings, start: int, end: int
           ) -> list[tuple[int, Finding]]:
    n, length = end - start, settings.streak_bins
    out: list[tuple[int, Finding]] = []
    have, arrivals = _rows(nodes, ("arrivals",), start, end)
    if have and n >= max(settings.non_stationary_min_bins, 2):
        half = n // 2
        first, second = np.mean(arrivals[:, :half], axis=1), np.mean(arrivals[:, half:], axis=1)
        larger = np.maximum(np.abs(first), np.abs(second))
        for r in np.flatnonzero((larger > 0) & (np.abs(first - second) > settings.non_stationary_ratio * larger)):
            a, b = float(first[r]), float(second[r])
            change = abs(a - b) / float(larger[r])
            out.append((have[r], _finding("non_stationary", nodes[have[r]], f"mean arrivals move from {a:g} (bins "
                                          f"{start}-{start + half - 1}) to {b:g} (bins {start + half}-{end - 1}), "
                                          f"{change:.0%} of the larger", (), 0, change)))
    qhave, queue = _rows(nodes, ("queue",), start, end)
    if qhave and n > 1:
        rising = np.concatenate((np.zeros((len(qhave), 1), dtype=bool), np.diff(queue, axis=1) > settings.tolerance),
                                axis=1)
        hits = long_runs(rising, length)
        for r in np.flatnonzero(hits.any(axis=1)):
            # a streak's rise: the depth at its last bin less the depth before its first (never bin 0)
            starts, ends = _runs(hits[r])
            worst = float(np.max(queue[r, ends - 1] - queue[r, starts - 1]))
            out.append((qhave[r], _streak("backlog_growth_streak", nodes[qhave[r]], hits[r], start, worst,
                                          f"the queue grows in {length} or more bins in a row")))
    chave, cap = _rows(nodes, ("effectiveCapacity", "capacity"), start, end)
    both = sorted(set(have) & set(chave))
    if both:
        arr = arrivals[[have.index(i) for i in both]]
        c = cap[[chave.index(i) for i in both]]
        ratio = np.where(c > 0, arr / c, np.nan)
        hits = long_runs(ratio > 1, length)
        for r in np.flatnonzero(hits.any(axis=1)):
            out.append((both[r], _streak("backlog_overload_ratio", nodes[both[r]], hits[r], start,
                                         float(np.max(ratio[r][hits[r]])), f"arrivals exceed the effective "
                                         f"capacity in {length} or more bins in a row")))
    lhave, latency = _rows(nodes, ("latencyMinutes",), start, end)
    keep = [r for r, i in enumerate(lhave) if nodes[i].sla_min is not None]
    if keep:
        sla = np.array([[nodes[lhave[r]].sla_min] for r in keep], dtype=np.float64)
        lat = latency[keep]
        hits = long_runs(lat > sla, length)
        for k in np.flatnonzero(hits.any(axis=1)):
            m = nodes[lhave[keep[k]]]
            out.append((lhave[keep[k]], _streak("backlog_age_risk", m, hits[k], start, float(np.max(lat[k][hits[k]])),
                                                f"latency exceeds slaMin ({m.sla_min:g} min) in {length} or more "
                                                "bins in a row")))
    return out


def _streak(code: str, m: NodeMetrics, hit: Mask, start: int, value: float, message: str) -> Finding:
    first, count = offending(hit)
    return _finding(code, m, message, tuple(b + start for b in first), count, value)


def _finding(code: str, m: NodeMetrics, message: str, bins: tuple[int, ...], count: int, value: float) -> Finding:
    severity, hint = WINDOW_CODES[code]
    return Finding(code, severity, message, node=m.id, bins=bins, count=count, value=value, hint=hint)
