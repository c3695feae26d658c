"""
The analyser's checks that read the model alone: which series a topology node lacks, and how its edges are typed.

Every check here asks only whether a series is *available* - a name in
``known``: the model's node ids when no run exists (``invariants.check_model``,
usable by Sim and validation), the evaluated series' names after a run. The
reference runs the same checks over its evaluated series (``engine-head.md``
§13); here they need no evaluation, so a template can be told before it runs.
"""

from __future__ import annotations

from collections.abc import Collection, Iterator
from typing import Any

from flowtime.analysis.codes import CODES
from flowtime.analysis.findings import Finding
from flowtime.model.decompose import class_part_id
from flowtime.model.edges import edge_name, edge_type
from flowtime.model.queues import DispatchSchedule, QueueNode
from flowtime.model.schema import Model
from flowtime.model.topology import SeriesRef, Topology, TopologyEdge, TopologyNode
from flowtime.records import record


def finding(code: str, message: str, node: str | None = None, *, edge: str | None = None,
            bins: tuple[int, ...] = (), count: int = 0, value: float | None = None) -> Finding:
    """A finding of ``code``, with the vocabulary's severity and hint."""
    info = CODES[code]
    return Finding(code, info.severity, message, node=node, edge=edge, bins=bins, count=count, value=value,
                   hint=info.hint)


def ref_name(ref: Any, owner: TopologyNode | None = None) -> str | None:
    """The series a reference names (``self`` is the owner's; ``node@Class`` the hidden class part)."""
    if not isinstance(ref, SeriesRef):
        return None
    if ref.form == "self":
        return owner.id if owner is not None else None
    if ref.form == "class" and ref.class_id:
        return class_part_id(ref.node, ref.class_id)
    return ref.node or None


def series_of(t: TopologyNode, field: str) -> str | None:
    return ref_name(t.ref(field), t)


@record
class Index:
    """What the checks look up per topology node, found once per model: queue nodes and edges by end."""

    queues: dict[str, QueueNode]
    into: dict[str, list[TopologyEdge]]
    out_of: dict[str, list[TopologyEdge]]

    def queue(self, name: str | None) -> QueueNode | None:
        """The queue node ``name`` is, when FlowTime computes that depth."""
        return self.queues.get(name) if name is not None else None

    def schedule(self, t: TopologyNode) -> DispatchSchedule | None:
        """The topology node's dispatch schedule, else the one of the queue node holding its depth."""
        if t.dispatch is not None:
            return t.dispatch
        q = self.queue(series_of(t, "queueDepth"))
        return q.dispatch if q is not None else None

    def incoming(self, node_id: str) -> list[TopologyEdge]:
        return self.into.get(node_id, [])

    def outgoing(self, node_id: str) -> list[TopologyEdge]:
        return self.out_of.get(node_id, [])


def index(model: Model) -> Index:
    into: dict[str, list[TopologyEdge]] = {}
    out_of: dict[str, list[TopologyEdge]] = {}
    for e in model.topology.edges if model.topology is not None else ():
        into.setdefault(e.target, []).append(e)
        out_of.setdefault(e.source, []).append(e)
    return Index({n.id: n for n in model.nodes if isinstance(n, QueueNode)}, into, out_of)


def model_findings(model: Model, known: Collection[str], idx: Index | None = None) -> list[Finding]:
    """Every model-level finding, a series counting as available when its name is in ``known``."""
    topology: Topology | None = model.topology
    if topology is None:
        return []
    idx = idx or index(model)
    out = list(_lagged_edges(topology))
    for t in topology.nodes:
        out.extend(_node(idx, topology, t, known))
    return out


def _lagged_edges(topology: Topology) -> Iterator[Finding]:
    for e in topology.edges:
        if e.lag > 0:
            yield finding("edge_behavior_violation_lag", f"edge {edge_name(e)} applies a lag of {e.lag} bin(s); "
                          "edges carry no flow into their target", e.source, edge=edge_name(e), value=float(e.lag))


def _node(idx: Index, topology: Topology, t: TopologyNode, known: Collection[str]) -> Iterator[Finding]:
    kind = t.kind
    service = kind in ("service", "router")
    dependency = kind == "dependency"

    def has(field: str) -> bool:
        name = series_of(t, field)
        return name is not None and name in known

    def declared(field: str) -> bool:
        return t.ref(field) is not None

    for cid in t.constraints:
        c = next((x for x in topology.constraints if x.id == cid), None)
        if c is None:
            continue
        for field in ("arrivals", "served"):
            name = ref_name(c.semantics.get(field))
            if name is None or name not in known:
                yield finding(f"constraint_missing_{field}", f"constraint '{cid}' has no {field} series"
                              f"{'' if field == 'arrivals' else ' (its capacity)'}", t.id)
    if (service or declared("capacity")) and not has("capacity"):
        yield finding("missing_capacity_series", "no capacity series: utilization cannot be computed", t.id)
    if "maxAttempts" in (t.semantics or {}):
        for field, code in (("exhaustedFailures", "missing_exhausted_failures_series"),
                            ("retryBudgetRemaining", "missing_retry_budget_series")):
            if not has(field):
                yield finding(code, f"maxAttempts is set but there is no {field} series", t.id)
    if dependency and not has("arrivals"):
        yield finding("missing_dependency_arrivals", "the dependency has no arrivals series", t.id)
    if dependency and not has("served"):
        yield finding("missing_dependency_served", "the dependency has no served series", t.id)
    elif (service or declared("served")) and not has("served"):
        yield finding("missing_served_series", "no served series: throughput and utilization cannot be computed",
                      t.id)
    if dependency:
        effort = [e for e in idx.incoming(t.id) if edge_type(e) in ("effort", "dependency")]
        if not effort:
            yield finding("dependency_missing_effort_edges", "no effort or dependency edge comes into the "
                          "dependency", t.id)
        elif declared("errors"):
            callers = {e.source for e in effort}
            if not any(x.id in callers and x.ref("attempts") is not None for x in topology.nodes):
                yield finding("dependency_retry_pressure_missing", "the dependency has errors but none of its "
                              f"callers ({', '.join(sorted(callers))}) gives attempts", t.id)
    if (kind in ("queue", "dlq") or declared("queueDepth")) and not has("queueDepth"):
        yield finding("missing_queue_depth_series", "no queue depth series", t.id)
    schedule = idx.schedule(t)
    if schedule is not None:
        if schedule.capacity is not None and schedule.capacity not in known:
            yield finding("dispatch_capacity_missing", f"the dispatch schedule's capacitySeries "
                          f"'{schedule.capacity}' is not a series", t.id)
        if not has("served"):
            yield finding("dispatch_missing_served_series", "a dispatch schedule is set but there is no served "
                          "series", t.id)
    for field, code in (("processingTimeMsSum", "missing_processing_time_series"),
                        ("servedCount", "missing_served_count_series")):
        if (service or declared(field)) and not has(field):
            yield finding(code, f"no {field} series: service time cannot be computed", t.id)
    if kind == "dlq":
        for direction, edges in (("inbound", idx.incoming(t.id)), ("outbound", idx.outgoing(t.id))):
            for e in edges:
                if edge_type(e) != "terminal":
                    yield finding(f"dlq_non_terminal_{direction}", f"edge {edge_name(e)} of the dead-letter queue "
                                  f"is of type {edge_type(e)}, not terminal", t.id, edge=edge_name(e))
