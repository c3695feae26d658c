"""
The two metrics that look beyond one node's own series: flow latency along the edges, and Kingman's wait.

Flow latency (``engine-head.md`` §12, the reference's ``ComputeFlowLatency``)
walks the topology in order: a node's value is its own cycle time plus the
mean of its predecessors' flow latencies weighted by the flow on each incoming
edge (the edge's ``flowVolume`` series; only finite latencies and positive
flows count). A missing part counts as 0; a bin where both are missing, where
the node served nothing, or (a sink) where nothing arrived is undefined.

Kingman's G/G/1 approximation of the mean wait is
``rho/(1-rho) * (Ca^2 + Cs^2)/2 * E[S]`` with rho the utilization, Ca the
coefficient of variation of the arrivals' node and Cs that of the capacity's
(a pmf node's sigma/mu, anything else 0), and E[S] the measured service time
when the node has one, else the time one entity takes at full capacity,
``binMs / effectiveCapacity``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import numpy.typing as npt

from flowtime.model.edges import edge_name
from flowtime.model.schema import PmfNode
from flowtime.model.sinks import is_sink
from flowtime.model.topology import Topology, TopologyNode

Series = npt.NDArray[np.float64]


def order(topology: Topology) -> list[TopologyNode]:
    """
    The nodes with every edge's source before its target (Kahn's algorithm, ties
    in declaration order); the nodes of a cycle follow in declaration order.
    """
    ids = [t.id for t in topology.nodes]
    succ: dict[str, list[str]] = {i: [] for i in ids}
    indegree = dict.fromkeys(ids, 0)
    for e in {(e.source, e.target) for e in topology.edges if e.source in succ and e.target in succ}:
        succ[e[0]].append(e[1])
        indegree[e[1]] += 1
    position = {i: k for k, i in enumerate(ids)}
    ready = [i for i in ids if indegree[i] == 0]
    done: list[str] = []
    while ready:
        ready.sort(key=position.__getitem__, reverse=True)
        n = ready.pop()
        done.append(n)
        for m in succ[n]:
            indegree[m] -= 1
            if indegree[m] == 0:
                ready.append(m)
    seen = set(done)
    done += [i for i in ids if i not in seen]
    by_id = {t.id: t for t in topology.nodes}
    return [by_id[i] for i in done]


def flow_latency(topology: Topology, series: Mapping[str, Series],
                 metrics: Mapping[str, Mapping[str, Series]]) -> dict[str, Series]:
    """Each node's flowLatencyMs, by id; a node with no cycle time and no predecessor with one has none."""
    out: dict[str, Series] = {}
    incoming: dict[str, list[tuple[str, Series]]] = {}
    for e in topology.edges:
        flow = series.get(f"edge_{edge_name(e)}_flowVolume")
        if flow is not None:
            incoming.setdefault(e.target, []).append((e.source, flow))
    for t in order(topology):
        s = metrics[t.id]
        own = s.get("cycleTimeMs")
        weighted: Series | None = None
        weight: Series | None = None
        for source, flow in incoming.get(t.id, ()):
            upstream = out.get(source)
            if upstream is None:  # the source has no latency (or sits later in a cycle)
                continue
            w = np.where(np.isfinite(upstream) & (flow > 0), flow, 0.0)
            term = w * np.where(np.isfinite(upstream), upstream, 0.0)
            weighted = term if weighted is None else weighted + term
            weight = w if weight is None else weight + w
        if own is None and weighted is None:
            continue
        up = np.where(weight > 0, weighted / weight, np.nan) if weight is not None and weighted is not None else None
        if own is not None and up is not None:
            value = added(own, up)
        else:
            value = own if own is not None else up  # type: ignore[assignment]  # one is set
        gate = s.get("arrivals") if is_sink(t) else s.get("served")
        if gate is not None:
            value = np.where(gate > 0, value, np.nan)
        out[t.id] = value
    return out


def added(a: Series, b: Series) -> Series:
    """``a + b`` with a missing (NaN) part counted as 0; NaN where both are missing."""
    total: Series = np.where(np.isnan(a), 0.0, a) + np.where(np.isnan(b), 0.0, b)
    total[np.isnan(a) & np.isnan(b)] = np.nan
    return total


def cv(node: Any) -> float:
    """
    The coefficient of variation a node's values carry: a pmf's sigma/mu over its
    normalised distribution (NaN when mu <= 0), anything else 0.

    >>> cv(PmfNode("a", np.array([0.0, 2.0]), np.array([0.5, 0.5])))
    1.0
    """
    if not isinstance(node, PmfNode):
        return 0.0
    p = node.probabilities / node.probabilities.sum()
    mean = float(np.dot(node.values, p))
    if not mean > 0:
        return math.nan
    var = float(np.dot((node.values - mean) ** 2, p))
    return math.sqrt(max(var, 0.0)) / mean


def kingman_wait(t: TopologyNode, s: Mapping[str, Series], inputs: Mapping[str, str], nodes: Mapping[str, Any],
                 bin_ms: float) -> Series | None:
    """kingmanWqMs where 0 < rho < 1, the Cvs are defined and E[S] > 0; None for a node without rho or arrivals."""
    rho = s.get("utilization")
    if rho is None or "arrivals" not in inputs:
        return None
    ca = cv(nodes.get(inputs["arrivals"]))
    cs = cv(nodes.get(inputs.get("capacity", "")))
    if "serviceTimeMs" in s:
        mean_service = s["serviceTimeMs"]
    else:
        eff = s.get("effectiveCapacity", s["capacity"])
        mean_service = np.where(eff > 0, bin_ms / eff, np.nan)
    ok = (rho > 0) & (rho < 1) & (mean_service > 0)
    if math.isnan(ca) or math.isnan(cs):
        return np.full(rho.shape, np.nan)
    return np.where(ok, rho / (1.0 - rho) * ((ca * ca + cs * cs) / 2.0) * mean_service, np.nan)
