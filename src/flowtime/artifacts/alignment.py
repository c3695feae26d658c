"""
Stored runs brought onto one time axis for comparison (``engine.resample`` does the arithmetic).

A run's axis comes from its run.json grid (bins, minutes per bin) and the start
written in its spec.yaml. When every run has a start they are aligned by clock;
when any has none, all are aligned at their first bin (and the statement says so).
Each series is folded with the rule its kind calls for (``how_of``): flows
(entities per bin) summed, levels and ratios (queue depths, utilization, ms,
minutes) averaged; the answer's ``resampling`` states what was done.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from flowtime.artifacts.state import grid_start, utc_text
from flowtime.engine.resample import Alignment, Axis, How, Series, align, resample
from flowtime.errors import ConflictError, FlowTimeError
from flowtime.records import record

if TYPE_CHECKING:
    from flowtime.artifacts.registry import Registry
    from flowtime.model.schema import Model

RULE = ("flows (entities per bin) are summed; levels and ratios (queue depths, utilization, "
        "latency in minutes or ms) are averaged over their defined bins")
# Derived metric units that are not per-bin amounts.
MEAN_UNITS = frozenset({"ratio", "ms", "minutes"})
_UNITS = (("weeks", 10080), ("days", 1440), ("hours", 60), ("minutes", 1))


@record
class RunAxis:
    """A run's grid as read from its folder: the axis, and its start (None when the spec gives none)."""

    run_id: str
    axis: Axis
    start: datetime | None


def stored_start(registry: Registry, run_id: str) -> datetime | None:
    """The grid start written in a stored run's spec.yaml (None without one, or when it cannot be read)."""
    try:
        return grid_start(registry.file_path(run_id, "spec.yaml").read_text(encoding="utf-8-sig"))
    except (OSError, UnicodeDecodeError, FlowTimeError):
        return None


def grid_with_start(registry: Registry, run_id: str) -> dict[str, Any]:
    """A run's run.json grid plus ``startTimeUtc`` (null without one): what clock-time axes need."""
    grid = registry.run_json(run_id).get("grid") or {}
    return {**grid, "startTimeUtc": utc_text(stored_start(registry, run_id))}


def run_axis(registry: Registry, run_id: str) -> RunAxis:
    """The time axis of a stored run (``ConflictError`` when its run.json has no usable grid)."""
    grid = registry.run_json(run_id).get("grid") or {}
    bins, minutes = grid.get("bins"), grid.get("binMinutes")
    if not isinstance(minutes, int):
        from flowtime.model.schema import BinUnit

        try:
            minutes = int(str(grid.get("binSize"))) * BinUnit(str(grid.get("binUnit"))).minutes
        except (TypeError, ValueError):
            minutes = None
    if not isinstance(bins, int) or not isinstance(minutes, int):
        raise ConflictError(f"run {run_id} has no readable grid in its run.json: {grid}")
    return RunAxis(run_id, Axis(bins, minutes, 0), stored_start(registry, run_id))


def align_runs(axes: Sequence[RunAxis]) -> tuple[Alignment, datetime | None]:
    """The common span of the runs, and its start as a clock time (None when aligned at the first bin)."""
    by_clock = all(r.start is not None for r in axes)
    if not by_clock:
        return align([r.axis for r in axes]), None
    epoch = min(r.start for r in axes if r.start is not None)
    placed = [Axis(r.axis.bins, r.axis.bin_minutes, _minutes(r.start, epoch)) for r in axes]
    try:
        al = align(placed)
    except ConflictError as exc:
        ids = ", ".join(f"run {i} = {r.run_id}" for i, r in enumerate(axes, 1))
        raise ConflictError(f"{exc} (by clock time from each run's grid start; {ids})") from None
    return al, epoch + timedelta(minutes=al.start_minute)


def _minutes(t: datetime | None, epoch: datetime) -> int:
    assert t is not None
    return int((t - epoch).total_seconds() // 60)


def how_of(entry: Mapping[str, Any], levels: frozenset[str]) -> How:
    """
    The folding rule of one series index entry: ``mean`` for a level or a ratio, ``sum`` for a flow.

    >>> how_of({"kind": "derived", "unit": "ratio"}, frozenset()), how_of({"nodeId": "q"}, frozenset({"q"}))
    ('mean', 'mean')
    >>> how_of({"kind": "flow", "unit": "entities/bin", "nodeId": "served"}, frozenset())
    'sum'
    """
    if entry.get("kind") == "derived" and entry.get("unit") in MEAN_UNITS:
        return "mean"
    return "mean" if str(entry.get("nodeId") or "") in levels else "sum"


def level_series(model: Model | None) -> frozenset[str]:
    """The model's series that are levels (queue depths): its queue nodes and its services' queueDepth."""
    if model is None:
        return frozenset()
    from flowtime.model.queues import QueueNode

    out = {n.id for n in model.nodes if isinstance(n, QueueNode)}
    for t in getattr(model.topology, "nodes", None) or ():
        ref = t.ref("queueDepth")
        if ref is not None:
            out.add(ref.node)
    return frozenset(out)


def aligned(values: Series, alignment: Alignment, position: int, how: How) -> Series:
    """Run number ``position``'s values of one series over the common span."""
    return resample(values, alignment.windows[position], alignment.bins, how)


def target_grid(alignment: Alignment, start: datetime | None) -> dict[str, Any]:
    """
    The common grid as runs answer theirs: the bin size in the largest unit that divides it.

    >>> target_grid(Alignment(120, 0, 3, ()), None)
    {'bins': 3, 'binSize': 2, 'binUnit': 'hours', 'binMinutes': 120, 'startTimeUtc': None}
    """
    m = alignment.bin_minutes
    unit, per = next((u, p) for u, p in _UNITS if m % p == 0)
    return {"bins": alignment.bins, "binSize": m // per, "binUnit": unit, "binMinutes": m,
            "startTimeUtc": utc_text(start)}


def duration(minutes: int) -> str:
    """
    >>> duration(15), duration(60), duration(1440 * 2)
    ('15 min', '1 h', '2 d')
    """
    if minutes % 1440 == 0:
        return f"{minutes // 1440} d"
    if minutes % 60 == 0:
        return f"{minutes // 60} h"
    return f"{minutes} min"


def resampling_json(axes: Sequence[RunAxis], alignment: Alignment, start: datetime | None,
                    means: Sequence[str]) -> dict[str, Any]:
    """What was done to bring the runs together, as data and as one plain statement."""
    per_run = []
    parts = []
    for r, w in zip(axes, alignment.windows, strict=True):
        per_run.append({"runId": r.run_id, "bins": r.axis.bins, "binMinutes": r.axis.bin_minutes,
                        "startTimeUtc": utc_text(r.start), "firstBin": w.first, "binsPerBin": w.factor})
        what = (f"{w.factor} × {duration(r.axis.bin_minutes)} bins summed or averaged into each"
                if w.factor > 1 else f"{duration(r.axis.bin_minutes)} bins as they are")
        parts.append(f"{r.run_id}: bins {w.first}–{w.first + alignment.bins * w.factor - 1} of "
                     f"{r.axis.bins}, {what}")
    span = alignment.bins * alignment.bin_minutes
    if start is not None:
        end = start + timedelta(minutes=span)
        where = f"{_clock(start)} – {_clock(end)} UTC"
    else:
        where = "from each run's first bin (not every run's grid has a start time, so they are aligned at bin 0)"
    if alignment.resampled:
        statement = (f"The runs are on different grids: compared on their common span {where}, "
                     f"{alignment.bins} bins of {duration(alignment.bin_minutes)} (the coarsest bin size). "
                     f"{'; '.join(parts)}. Rule: {RULE}.")
    else:
        statement = (f"All runs share one grid: {alignment.bins} bins of {duration(alignment.bin_minutes)}, "
                     "compared bin by bin.")
    return {"resampled": alignment.resampled, "binMinutes": alignment.bin_minutes, "bins": alignment.bins,
            "startTimeUtc": utc_text(start), "byClock": start is not None, "rule": RULE,
            "averaged": list(means), "runs": per_run, "statement": statement}


def _clock(t: datetime) -> str:
    return t.astimezone(UTC).strftime("%Y-%m-%d %H:%M")
