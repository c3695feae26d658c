"""
A window of bins of one run: every node's series over it (min/max-downsampled
past a documented size, never cut), and the per-node summary ``/metrics`` gives.

Size: a window answers at most ``MAX_POINTS`` points per series and
``MAX_VALUES`` values in all (series x points). Past either, or when the caller
asks for fewer points (``max_points``), bins are grouped into buckets of
``bucketBins`` and each bucket contributes two points, its minimum and its
maximum in the order they occur; the points sit at the bucket's first and last
bin (``bins``), and the answer says ``downsampled: {bucketBins, points}``.
A bucket with no defined value gives two nulls.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from flowtime.analysis.findings import Finding
from flowtime.artifacts.class_parts import check_classes
from flowtime.artifacts.snapshot import (
    EDGE_METRICS,
    class_rows,
    colours,
    computed_nodes,
    edge_warnings,
    finding_json,
    metadata,
    require_topology,
)
from flowtime.artifacts.state import RunState, findings_in
from flowtime.errors import QueryError
from flowtime.model.edges import edge_name
from flowtime.model.topology import Topology, TopologyEdge

Block = npt.NDArray[np.float64]
MAX_POINTS = 2_000  # per series: about the width of a chart in pixels
MAX_VALUES = 1_000_000  # series x points in one answer (~10 MB of JSON)
MINI_POINTS = 200  # a sparkline's points in /metrics


def check_window(state: RunState, start: int | None, end: int | None, names: tuple[str, str] = ("start", "end")
                 ) -> tuple[int, int]:
    """The window ``start..end`` (inclusive; defaults: the whole run), or ``QueryError`` naming the bad bound."""
    last = state.bins - 1
    a = 0 if start is None else start
    b = last if end is None else end
    valid = f"0..{last}"
    for name, v in ((names[0], a), (names[1], b)):
        if not 0 <= v <= last:
            raise QueryError(name, f"{name}={v} is outside run {state.run_id}, whose bins are {valid}", valid)
    if a > b:
        raise QueryError(names[0], f"{names[0]}={a} is after {names[1]}={b}: the window needs "
                         f"{names[0]} <= {names[1]}", f"0..{b}")
    return a, b


def bucket_size(bins: int, series: int, max_points: int | None) -> int:
    """
    Bins per bucket (1: no downsampling) for ``series`` series over ``bins`` bins.

    >>> bucket_size(100, 10, None), bucket_size(8760, 600, None), bucket_size(10, 1, 4)
    (1, 11, 5)
    """
    cap = min(MAX_POINTS, MAX_VALUES // max(series, 1))
    if max_points is not None:
        cap = min(cap, max_points)
    cap = max(cap, 2)
    if bins <= cap:
        return 1
    return math.ceil(bins / (cap // 2))


def minmax(block: Block, k: int) -> tuple[Block, npt.NDArray[np.int64]]:
    """
    Each row of ``block`` in buckets of ``k`` columns, two points per bucket (its
    min and max in time order); also the bin each point is placed at (the bucket's
    first and last column).

    >>> v, at = minmax(np.array([[1.0, 5.0, 2.0, 0.0, 3.0]]), 2)
    >>> v.tolist(), at.tolist()
    ([[1.0, 5.0, 2.0, 0.0, 3.0, 3.0]], [0, 1, 2, 3, 4, 4])
    """
    block = np.ascontiguousarray(block)  # a whole-run window is the block itself: no copy
    n = block.shape[1]
    full = n // k
    parts = []
    if full:
        parts.append(_pairs(block, full, k))
    if n % k:
        parts.append(_pairs(np.ascontiguousarray(block[:, full * k:]), 1, n % k))
    out = np.concatenate(parts, axis=1) if len(parts) > 1 else parts[0]
    buckets = full + (1 if n % k else 0)
    starts = np.arange(buckets, dtype=np.int64) * k
    at = np.empty(buckets * 2, dtype=np.int64)
    at[0::2] = starts
    at[1::2] = np.minimum(starts + k - 1, n - 1)
    return out, at


def _pairs(block: Block, buckets: int, k: int) -> Block:
    """
    The first ``buckets`` buckets of ``k`` columns of a C-contiguous ``block``:
    (rows, 2 x buckets), each bucket's min and max in the order they occur.
    """
    rows, n = block.shape
    shaped = block[:, :buckets * k].reshape(rows, buckets, k)  # a view
    # argmin/argmax over the view, the values picked by flat index: the fewest passes over the data
    # (a reduction along a short last axis costs as much as the argmin itself).
    lo, hi = shaped.argmin(axis=2), shaped.argmax(axis=2)
    base = np.arange(rows)[:, None] * n + np.arange(buckets)[None, :] * k
    flat = block.reshape(-1)
    out = _ordered(lo, hi, flat[base + lo], flat[base + hi])
    # argmin/argmax stop at a NaN: the rows holding one again, NaN skipped (few: a derived
    # series' undefined bins). An all-NaN bucket gives two nulls.
    nan_rows = np.flatnonzero(np.isnan(out).any(axis=1))
    if nan_rows.size:
        part = shaped[nan_rows]
        nan = np.isnan(part)
        lo = np.where(nan, np.inf, part).argmin(axis=2)
        hi = np.where(nan, -np.inf, part).argmax(axis=2)
        with np.errstate(invalid="ignore"):
            out[nan_rows] = _ordered(lo, hi, np.fmin.reduce(part, axis=2), np.fmax.reduce(part, axis=2))
    return out


def _ordered(lo: npt.NDArray[np.intp], hi: npt.NDArray[np.intp], lo_v: Block, hi_v: Block) -> Block:
    early = lo <= hi
    out = np.empty((lo.shape[0], lo.shape[1] * 2))
    out[:, 0::2] = np.where(early, lo_v, hi_v)
    out[:, 1::2] = np.where(early, hi_v, lo_v)
    return out


def timestamps(state: RunState, bins: npt.NDArray[np.int64]) -> list[str] | None:
    """ISO 8601 UTC start of each bin in ``bins`` (None when the run's grid has no start)."""
    if state.start is None:
        return None
    base = np.datetime64(state.start.replace(tzinfo=None), "s")
    stamps = base + bins * np.timedelta64(state.grid.bin_minutes * 60, "s")
    return [f"{t}Z" for t in np.datetime_as_string(stamps, unit="s")]


def state_window(state: RunState, start: int | None = None, end: int | None = None, *,
                 nodes: Sequence[str] | None = None, max_points: int | None = None, full: bool = False,
                 class_ids: Sequence[str] | None = None, edge_ids: Sequence[str] | None = None,
                 edge_metrics: Sequence[str] | None = None) -> dict[str, Any]:
    """
    The reference's ``/state_window``: each node's series over bins ``start..end``,
    with its classes (``byClass``, limited to ``class_ids``); ``full`` adds the
    model's computed nodes (``series.values``). ``edge_ids`` and ``edge_metrics``
    choose the edges and their series (default: the edges of the chosen nodes, all series).
    """
    topology = require_topology(state)
    a, b = check_window(state, start, end)
    if max_points is not None and max_points < 2:
        raise QueryError("max_points", f"max_points={max_points}: a window needs at least 2 points per series",
                         f"2..{MAX_POINTS}")
    classes = check_classes(class_ids, state.class_ids, state.run_id)
    computed = {c[0]: c for c in computed_nodes(state)} if full else {}
    wanted = list(dict.fromkeys(nodes)) if nodes else None
    chosen = list(state.metrics) if wanted is None else [n for n in wanted if n in state.metrics]
    shown = list(computed) if wanted is None else [n for n in wanted if n in computed and n not in state.metrics]
    unknown = [n for n in wanted or () if n not in state.metrics and n not in computed]
    if unknown:
        known = [*state.metrics, *computed]
        raise QueryError("nodes", f"nodes: run {state.run_id} has no {'' if full else 'topology '}node "
                         f"{', '.join(unknown[:5])}", ", ".join(known[:20]))
    edges = _edges(state, topology, edge_ids, chosen if wanted is not None else None)
    series_keys = _edge_metrics(edge_metrics)
    edge_rows = [[(k, r) for k in series_keys if (r := state.rows.get(f"edge_{name}_{k}")) is not None]
                 for _, name in edges]
    class_rows_of = {n: [(c, key, r) for c, keys in state.classes[n].rows.items() if classes is None or c in classes
                         for key, r in keys.items()] for n in chosen}
    parts_of = {n: class_rows(state, n, classes) for n in shown}
    # edges' series, then each computed node's own series followed by its class parts
    value_rows = ([r for rows in edge_rows for _, r in rows]
                  + [r for n in shown for r in (computed[n][3], *parts_of[n].values())])
    part_rows = [r for n in chosen for _, _, r in class_rows_of[n]]
    series_count = (sum(len(state.keys[n]) + 1 for n in chosen) + len(value_rows) + len(part_rows))
    count = b - a + 1
    k = bucket_size(count, series_count, max_points)
    order = list(state.metrics)
    node_rows = [order.index(n) for n in chosen]
    metric_rows = [r for n in chosen for r in state.keys[n].values()]

    # Every node: the block itself (a view); some: their rows (a copy).
    mblock = state.metric_values if len(chosen) == len(order) else state.metric_values[metric_rows]
    mvals, point_bins = _slice(mblock, a, b, k)
    vvals, _ = _slice(state.values[value_rows], a, b, k)
    pvals, _ = _slice(state.class_values[part_rows], a, b, k)
    # A bucket's colour is its worst (red over yellow over green over gray).
    cvals = state.colours[node_rows, a:b + 1] if k == 1 else _worst_colour(state.colours[node_rows, a:b + 1], k)
    out_nodes: list[dict[str, Any]] = []
    mi = pi = 0
    for j, n in enumerate(chosen):
        m = state.metrics[n]
        series = {}
        for key in state.keys[n]:
            series[key] = mvals[mi]
            mi += 1
        by_class: dict[str, dict[str, Any]] = {}
        for c, key, _ in class_rows_of[n]:
            by_class.setdefault(c, {})[key] = pvals[pi]
            pi += 1
        out_nodes.append({"id": n, "kind": m.kind, "category": m.category, "series": series, "color": cvals[j],
                          "slaMin": m.sla_min, "classTruth": state.classes[n].truth(), "byClass": by_class})
    vi = sum(len(rows) for rows in edge_rows)
    for n in shown:
        _, kind, category, _ = computed[n]
        parts = {c: {"values": vvals[vi + 1 + i]} for i, c in enumerate(parts_of[n])}
        out_nodes.append({"id": n, "kind": kind, "category": category, "series": {"values": vvals[vi]},
                          "byClass": parts})
        vi += 1 + len(parts)
    out_edges = []
    i = 0
    for (e, name), rows in zip(edges, edge_rows, strict=True):
        eseries = {}
        for key, _ in rows:
            eseries[key] = vvals[i]
            i += 1
        out_edges.append({"id": e.id or name, "from": e.source, "to": e.target, "series": eseries})
    warnings = [finding_json(f) for f in _window_findings(state, a, b, [*chosen, *shown] if wanted else None)]
    return {
        "metadata": metadata(state),
        "mode": "full" if full else "operational",
        "window": {"startBin": a, "endBin": b, "binCount": count},
        "downsampled": None if k == 1 else {"bucketBins": k, "points": int(point_bins.size),
                                            "buckets": int(point_bins.size // 2)},
        "bins": point_bins if k > 1 else None,
        "timestampsUtc": timestamps(state, point_bins),
        "colorLegend": list(colours()),
        "nodes": out_nodes,
        "edges": out_edges,
        "warnings": warnings,
        "edgeWarnings": edge_warnings(warnings),
    }


def _slice(block: Block, a: int, b: int, k: int) -> tuple[Block, npt.NDArray[np.int64]]:
    """Bins ``a..b`` of every row, min/max-downsampled in buckets of ``k`` (1: as they are); and each point's bin."""
    if k == 1:
        return block[:, a:b + 1], np.arange(a, b + 1, dtype=np.int64)
    vals, at = minmax(block[:, a:b + 1], k)
    return vals, at + a


def _edges(state: RunState, topology: Topology, edge_ids: Sequence[str] | None,
           nodes: Sequence[str] | None) -> list[tuple[TopologyEdge, str]]:
    """The edges asked for by id (``QueryError`` naming the known ones), else those touching ``nodes`` (None: all)."""
    every = [(e, edge_name(e)) for e in topology.edges]
    if not edge_ids:
        return [(e, n) for e, n in every if nodes is None or e.source in nodes or e.target in nodes]
    by_id = {e.id or n: (e, n) for e, n in every}
    unknown = [i for i in dict.fromkeys(edge_ids) if i not in by_id]
    if unknown:
        valid = ", ".join(list(by_id)[:20]) or "none: the run has no edges"
        raise QueryError("edgeIds", f"edgeIds: run {state.run_id} has no edge {', '.join(unknown[:5])}", valid)
    return [by_id[i] for i in dict.fromkeys(edge_ids)]


def _edge_metrics(requested: Sequence[str] | None) -> tuple[str, ...]:
    if not requested:
        return EDGE_METRICS
    unknown = [k for k in requested if k not in EDGE_METRICS]
    if unknown:
        raise QueryError("edgeMetrics", f"edgeMetrics: {', '.join(unknown[:5])} is not an edge series; "
                         f"they are {', '.join(EDGE_METRICS)}", ", ".join(EDGE_METRICS))
    return tuple(dict.fromkeys(requested))


def _worst_colour(block: npt.NDArray[np.int8], k: int) -> npt.NDArray[np.int8]:
    """Per bucket the highest colour index, repeated for the bucket's two points."""
    rows, n = block.shape
    buckets = math.ceil(n / k)
    padded = np.zeros((rows, buckets * k), dtype=np.int8)
    padded[:, :n] = block
    worst = padded.reshape(rows, buckets, k).max(axis=2)
    return np.repeat(worst, 2, axis=1)


def _window_findings(state: RunState, a: int, b: int, nodes: Sequence[str] | None) -> list[Finding]:
    """
    The run's findings touching the window, the window facts (non_stationary,
    backlog streaks) computed over the window itself instead of the whole run's.
    """
    from flowtime.analysis.windows import WINDOW_CODES, window_facts

    if a == 0 and b == state.bins - 1:
        found = list(state.findings)  # the whole run: its window facts are the run's own (analyse gives them)
    else:
        found = [f for f in findings_in(state.findings, a, b) if f.code not in WINDOW_CODES]
        if state.model is not None and state.metrics:
            found += window_facts(state.model, state.metrics, state.settings, a, b + 1)
    if nodes is not None:
        found = [f for f in found if f.node is None or f.node in nodes]
    return found


# -- /metrics --------------------------------------------------------------------------------------


def _stats(v: Block) -> dict[str, float | None]:
    finite = v[np.isfinite(v)]
    if finite.size == 0:
        return {"mean": None, "p95": None, "max": None, "bins": 0}
    return {"mean": float(finite.mean()), "p95": float(np.percentile(finite, 95)), "max": float(finite.max()),
            "bins": int(finite.size)}


def summary(state: RunState, start: int | None = None, end: int | None = None) -> dict[str, Any]:
    """
    Per topology node over bins ``start..end``: mean, p95 and max of utilization
    and latency (undefined bins skipped), the node's SLA as ``analysis.metrics``
    defines it (``sla``: backlogAge - latency <= slaMin - for a queue with one, else
    completion - throughputRatio >= ``sla_completion`` - over the bins where it is
    defined; ``percent`` 0-100), totals; and the reference's ``services[]``, by its
    own rule (served / arrivals, no arrivals counting as met; ``slaPct`` 0-1).
    """
    require_topology(state)
    a, b = check_window(state, start, end, ("start", "end"))
    target = state.settings.sla_completion
    nodes, services = [], []
    for node_id, m in state.metrics.items():
        s = {k: v[a:b + 1] for k, v in m.series.items()}
        row: dict[str, Any] = {"id": node_id, "kind": m.kind, "category": m.category,
                               "utilization": _stats(s["utilization"]) if "utilization" in s else None,
                               "latencyMinutes": _stats(s["latencyMinutes"]) if "latencyMinutes" in s else None,
                               "totals": {k: float(np.nansum(s[k])) if k in s else None
                                          for k in ("arrivals", "served", "errors")},
                               "sla": _node_sla(m.sla, s)}
        if "arrivals" in s and "served" in s and m.category in ("service", "queue", "dlq"):
            arr, srv = s["arrivals"], s["served"]
            with np.errstate(all="ignore"):
                ratio = np.clip(np.where(arr > 0, srv / arr, 1.0), 0.0, 1.0)
            defined = np.isfinite(ratio)
            met = int(np.count_nonzero(ratio[defined] >= target))
            total = int(np.count_nonzero(defined))
            pct = met / total if total else None
            k = max(1, math.ceil(ratio.size / MINI_POINTS))
            mini = ratio if k == 1 else _bucket_means(ratio, k)
            services.append({"id": node_id, "slaPct": pct, "binsMet": met, "binsTotal": total, "mini": mini,
                             "miniBucketBins": k})
        nodes.append(row)
    return {"runId": state.run_id,
            "window": {"startBin": a, "endBin": b, "binCount": b - a + 1,
                       "start": None if state.start is None else timestamps(state, np.array([a]))[0],  # type: ignore[index]
                       "timezone": "UTC"},
            "grid": {"binMinutes": state.grid.bin_minutes, "bins": state.bins},
            "nodes": nodes, "services": services}


def _node_sla(sla: Any, s: dict[str, Block]) -> dict[str, Any] | None:
    """The node's own SLA (``NodeMetrics.sla``: its kind and target) over the window's bins."""
    if sla is None:
        return None
    values = s.get("latencyMinutes") if sla.kind == "backlogAge" else s.get("throughputRatio")
    if values is None:
        return None
    defined = ~np.isnan(values)
    met = int(np.count_nonzero(values[defined] <= sla.target if sla.kind == "backlogAge"
                               else values[defined] >= sla.target))
    evaluated = int(np.count_nonzero(defined))
    return {"kind": sla.kind, "target": sla.target, "met": met, "evaluated": evaluated,
            "percent": 100.0 * met / evaluated if evaluated else None}


def _bucket_means(v: Block, k: int) -> Block:
    buckets = math.ceil(v.size / k)
    padded = np.full(buckets * k, np.nan)
    padded[:v.size] = v
    with np.errstate(all="ignore"):
        shaped = padded.reshape(buckets, k)
        counts = np.isfinite(shaped).sum(axis=1)
        sums = np.nansum(shaped, axis=1)
        return np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)
