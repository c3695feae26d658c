"""
Derived metrics per topology node: utilization, queue time, latency, cycle time and the rest (``engine-head.md`` §12).

``derive(model, series)`` reads each topology node's inputs (the series its
``semantics`` name) and computes the metrics that apply to its category,
vectorised over the grid. An undefined bin is NaN - the reference's C# gives
``null`` there; its Rust engine writes 0 for some (decision 0025). Keys are the
reference's camelCase state keys (``utilization``, ``latencyMinutes``, ...), and
``series_name`` is the id a derived series is written under:

>>> series_name("HubQueue", "latencyMinutes"), series_name("Checkout", "utilization")
('hub_queue_latency_min', 'checkout_utilization')
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import numpy.typing as npt

from flowtime.analysis.latency import added, flow_latency, kingman_wait
from flowtime.model.analysis_settings import DEFAULT_ANALYSIS, AnalysisSettings
from flowtime.model.queues import QueueNode
from flowtime.model.schema import Model
from flowtime.model.sinks import is_sink
from flowtime.model.synthesis import snake_case
from flowtime.model.topology import QUEUE_KINDS, SeriesRef, TopologyNode
from flowtime.records import record

Series = npt.NDArray[np.float64]
Colours = npt.NDArray[np.int8]

COLOURS = ("gray", "green", "yellow", "red")  # a colour array holds indexes into this
GRAY, GREEN, YELLOW, RED = range(4)
CATEGORIES = ("service", "queue", "dlq", "router", "dependency", "sink")
MS_PER_MINUTE = 60_000.0

# state key -> the semantics field it is read from (``queue`` is the reference's key for queueDepth)
INPUTS = {"arrivals": "arrivals", "served": "served", "errors": "errors", "attempts": "attempts",
          "failures": "failures", "exhaustedFailures": "exhaustedFailures", "retryEcho": "retryEcho",
          "retryBudgetRemaining": "retryBudgetRemaining", "externalDemand": "externalDemand",
          "queue": "queueDepth", "capacity": "capacity", "parallelism": "parallelism",
          "processingTimeMsSum": "processingTimeMsSum", "servedCount": "servedCount"}


@record
class MetricInfo:
    unit: str  # entities/bin, ratio, ms or minutes
    formula: str


METRICS: dict[str, MetricInfo] = {
    "effectiveCapacity": MetricInfo("entities/bin", "capacity x parallelism (only with a parallelism)"),
    "utilization": MetricInfo("ratio", "served / effectiveCapacity; undefined where effectiveCapacity <= 0"),
    "queueTimeMs": MetricInfo("ms", "queue / served x binMs; undefined where served <= 0"),
    "latencyMinutes": MetricInfo("minutes", "queueTimeMs / 60000; undefined where served <= 0"),
    "serviceTimeMs": MetricInfo("ms", "processingTimeMsSum / servedCount; undefined where servedCount <= 0"),
    "cycleTimeMs": MetricInfo("ms", "queueTimeMs + serviceTimeMs, a missing part as 0; undefined where both are"),
    "flowEfficiency": MetricInfo("ratio", "serviceTimeMs / cycleTimeMs; undefined where cycleTimeMs <= 0"),
    "throughputRatio": MetricInfo("ratio", "served / arrivals clamped to [0, 1]; undefined where arrivals ~ 0"),
    "flowLatencyMs": MetricInfo("ms", "cycleTimeMs + the flow-weighted mean of the predecessors' flowLatencyMs; "
                                "undefined where served <= 0 (a sink: arrivals <= 0)"),
    "kingmanWqMs": MetricInfo("ms", "rho/(1-rho) x (Ca^2 + Cs^2)/2 x E[S], rho = utilization, E[S] = serviceTimeMs "
                              "or else binMs / effectiveCapacity; undefined unless 0 < rho < 1"),
}
# The written series' suffixes: the reference's Rust ids where it has one.
_SUFFIX = {"effectiveCapacity": "effective_capacity", "utilization": "utilization", "queueTimeMs": "queue_time_ms",
           "latencyMinutes": "latency_min", "serviceTimeMs": "service_time_ms", "cycleTimeMs": "cycle_time_ms",
           "flowEfficiency": "flow_efficiency", "throughputRatio": "throughput_ratio",
           "flowLatencyMs": "flow_latency_ms", "kingmanWqMs": "kingman_wq"}


@record
class SlaSummary:
    """How many evaluated bins met the node's target; ``percent`` is None when no bin could be evaluated."""

    target: float  # slaMin (minutes) for backlogAge, the completion ratio for completion
    kind: str  # "backlogAge" (latency <= slaMin) or "completion" (served / arrivals >= target)
    met: int
    evaluated: int
    percent: float | None


@record
class NodeMetrics:
    """One topology node's input and derived series (NaN = undefined), colour per bin and SLA."""

    id: str
    kind: str
    category: str  # one of CATEGORIES
    series: dict[str, Series]  # state key -> float64 array of the grid's length
    colour: Colours  # per bin, an index into COLOURS
    sla: SlaSummary | None
    inputs: dict[str, str]  # input key -> the model series it came from
    sla_min: float | None

    @property
    def derived(self) -> dict[str, Series]:
        """The derived series only (the keys of METRICS), in computation order."""
        return {k: v for k, v in self.series.items() if k in METRICS}


def series_name(node_id: str, key: str) -> str:
    """The id a derived series of ``node_id`` is written under: ``{snake}_{suffix}``."""
    return f"{snake_case(node_id)}_{_SUFFIX[key]}"


def category(t: TopologyNode) -> str:
    """The reference's category (``engine-head.md`` §3.1): serviceWithBuffer counts as a service."""
    if is_sink(t):
        return "sink"
    return t.kind if t.kind in ("queue", "dlq", "router", "dependency") else "service"


def has_queue_semantics(t: TopologyNode, nodes: Mapping[str, Any]) -> bool:
    """A queue-like kind, or a queueDepth naming a queue node (serviceWithBuffer) of the model."""
    ref = t.ref("queueDepth")
    return t.kind in QUEUE_KINDS or (ref is not None and isinstance(nodes.get(ref.node), QueueNode))


def derive(model: Model, series: Mapping[str, Series],
           settings: AnalysisSettings = DEFAULT_ANALYSIS) -> dict[str, NodeMetrics]:
    """Every topology node's metrics, by id in topology order (empty without a topology)."""
    topology = model.topology
    if topology is None or not topology.nodes:
        return {}
    bins = model.grid.bins
    bin_ms = model.grid.bin_minutes * MS_PER_MINUTE
    nodes = {n.id: n for n in model.nodes}
    out: dict[str, NodeMetrics] = {}
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        partial = {t.id: _node(t, series, nodes, bins, bin_ms, settings) for t in topology.nodes}
        flow = flow_latency(topology, series, {tid: s for tid, (s, _) in partial.items()})
        for t in topology.nodes:
            s, inputs = partial[t.id]
            if t.id in flow:
                s["flowLatencyMs"] = flow[t.id]
            wait = kingman_wait(t, s, inputs, nodes, bin_ms)
            if wait is not None:
                s["kingmanWqMs"] = wait
            for key, values in s.items():
                if key in METRICS:  # inf (a division by a tiny number) is as undefined as NaN
                    s[key] = _readonly(values if np.isfinite(values).all() else
                                       np.where(np.isfinite(values), values, np.nan))
            sla_min = t.semantics.get("slaMin") if t.semantics else None
            cat = category(t)
            out[t.id] = NodeMetrics(t.id, t.kind, cat, s, _colour(cat, s, sla_min, settings, bins),
                                    _sla(t, cat, s, sla_min, nodes, settings), inputs, sla_min)
    return out


def _source(ref: SeriesRef, t: TopologyNode, series: Mapping[str, Series]) -> str | None:
    if ref.form == "class":  # a class's part: not a node's total
        return None
    name = t.id if ref.form == "self" else ref.node
    return name if name and name in series else None


def _node(t: TopologyNode, series: Mapping[str, Series], nodes: Mapping[str, Any], bins: int, bin_ms: float,
          settings: AnalysisSettings) -> tuple[dict[str, Series], dict[str, str]]:
    s: dict[str, Series] = {}
    inputs: dict[str, str] = {}
    sem = t.semantics or {}
    for key, field in INPUTS.items():
        v = sem.get(field)
        if isinstance(v, SeriesRef):
            name = _source(v, t, series)
            if name is not None:
                s[key] = np.asarray(series[name], dtype=np.float64)
                inputs[key] = name
        elif key == "parallelism" and isinstance(v, float):
            s[key] = _readonly(np.full(bins, v))
    served, cap = s.get("served"), s.get("capacity")
    if cap is not None:
        eff = cap * s["parallelism"] if "parallelism" in s else cap
        if "parallelism" in s:
            s["effectiveCapacity"] = eff
        if served is not None:
            s["utilization"] = np.where(eff > 0, served / eff, np.nan)
    queue = s.get("queue")
    if queue is not None and served is not None and has_queue_semantics(t, nodes):
        s["queueTimeMs"] = np.where(served > 0, queue / served * bin_ms, np.nan)
        s["latencyMinutes"] = s["queueTimeMs"] / MS_PER_MINUTE
    pts, count = s.get("processingTimeMsSum"), s.get("servedCount")
    if pts is not None and count is not None and category(t) == "service":
        s["serviceTimeMs"] = np.where(count > 0, pts / count, np.nan)
    q_time, s_time = s.get("queueTimeMs"), s.get("serviceTimeMs")
    if q_time is not None and s_time is not None:
        s["cycleTimeMs"] = added(q_time, s_time)
    elif q_time is not None or s_time is not None:
        s["cycleTimeMs"] = q_time if q_time is not None else s_time  # type: ignore[assignment]  # one is set
    if s_time is not None:
        cycle = s["cycleTimeMs"]
        s["flowEfficiency"] = np.where(cycle > 0, s_time / cycle, np.nan)
    arrivals = s.get("arrivals")
    if arrivals is not None and served is not None:
        s["throughputRatio"] = np.where(arrivals > settings.tolerance, np.clip(served / arrivals, 0.0, 1.0), np.nan)
    return s, inputs


def _readonly(a: Series) -> Series:
    a.flags.writeable = False
    return a


def _bands(x: Series, yellow: float, red: float, *, inclusive: bool) -> Colours:
    """Green below ``yellow``, yellow below ``red``, red from there (``inclusive``: at the edge is still better)."""
    c = np.searchsorted(np.array([yellow, red]), x, side="left" if inclusive else "right").astype(np.int8) + GREEN
    c[np.isnan(x)] = GRAY  # NaN sorts past every edge
    return c


def _colour(cat: str, s: Mapping[str, Series], sla_min: float | None, settings: AnalysisSettings,
            bins: int) -> Colours:
    """
    Services, routers and dependencies by utilization; queues by latency against
    slaMin (a serviceWithBuffer without a capacity too); DLQs and sinks gray.
    """
    latency = s.get("latencyMinutes")
    by_latency = latency is not None and sla_min is not None and sla_min > 0
    if cat in ("service", "router", "dependency") and "utilization" in s:
        return _bands(s["utilization"], settings.utilization_yellow, settings.utilization_red, inclusive=False)
    if cat in ("queue", "service") and by_latency:
        assert latency is not None and sla_min is not None
        return _bands(latency, settings.latency_yellow * sla_min, settings.latency_red * sla_min, inclusive=True)
    return np.zeros(bins, dtype=np.int8)


def _sla(t: TopologyNode, cat: str, s: Mapping[str, Series], sla_min: float | None, nodes: Mapping[str, Any],
         settings: AnalysisSettings) -> SlaSummary | None:
    """A queue with slaMin: latency <= slaMin; else served / arrivals >= the completion target (bins with arrivals)."""
    latency = s.get("latencyMinutes")
    if latency is not None and sla_min is not None:
        return _summary(sla_min, "backlogAge", latency, latency <= sla_min)
    ratio = s.get("throughputRatio")
    if ratio is not None and (cat == "service" or has_queue_semantics(t, nodes)):
        target = settings.sla_completion
        return _summary(target, "completion", ratio, ratio >= target)
    return None


def _summary(target: float, kind: str, values: Series, met: npt.NDArray[np.bool_]) -> SlaSummary:
    evaluated = int(np.count_nonzero(~np.isnan(values)))
    n = int(np.count_nonzero(met))
    return SlaSummary(target, kind, n, evaluated, 100.0 * n / evaluated if evaluated else None)
