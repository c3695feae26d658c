"""
Edge series: what each topology edge carries, as expression nodes (``engine-head.md`` §9, §11).

Edges still carry no flow *into* their target (its arrivals are what its
semantics name, §3.2); these series describe the edges, as the reference's
``EdgeFlowMaterializer`` does after a run. Each is a derived node named
``edge_{id}_{metric}``, the id part being the edge's ``id`` or else
``from->to`` as written, with every character outside ``[A-Za-z0-9_.-]`` as
``_`` (``A:out->B`` gives ``edge_A_out-_B_flowVolume``). The metrics:

* ``flowVolume`` - a throughput edge (the default type; ``topology`` counts as
  one) shares its source's series of the edge's measure (``measure``, else the
  source port when it names one, else ``served``) with the source's other
  throughput edges of that measure, in proportion to their weights (a weight
  <= 0 counts as 1). An effort edge of measure ``served`` shares too.
  ``flow_volumes`` is the seam where a router's routed amounts will replace the
  share for its edges (``routed``).
* ``attemptsVolume`` - an effort or dependency edge from a node with
  ``attempts``: ``attempts * (multiplier or weight)``.
* ``failuresVolume`` - a terminal edge of measure errors, failures (else
  errors) or exhaustedFailures: that series times ``multiplier`` (1 without).
* ``retryVolume`` - a node's ``retryEcho`` split over its incoming edges with a
  flowVolume in proportion to those flows (equally in a bin where they are all 0).

An edge's ``lag`` shifts its series (``SHIFT(x, lag)``); its retryVolume is
split by the lagged flows, so it is not shifted again. The series are
written with every run (decision 0022), as the reference always materialises them.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

from flowtime.expr.syntax import BinOp, Call, Expr, Num, Ref
from flowtime.model.queues import DerivedNode
from flowtime.model.topology import EDGE_MEASURES, Path, Reporter, SeriesRef, Topology, TopologyEdge, TopologyNode
from flowtime.records import record

_UNSAFE = re.compile(r"[^A-Za-z0-9_.\-]")
FAILURE_MEASURES = ("errors", "failures", "exhaustedFailures")


@record
class EdgeSeries:
    nodes: list[DerivedNode]
    origins: dict[str, Path]


def edge_name(edge: TopologyEdge) -> str:
    """
    The id part of an edge's series: its ``id``, else ``from->to`` as written, unsafe characters as ``_``.

    >>> edge_name(TopologyEdge("A", "B", "out")), edge_name(TopologyEdge("A", "B", id="a b"))
    ('A_out-_B', 'a_b')
    """
    if edge.id:
        return _UNSAFE.sub("_", edge.id)
    ends = [n + (f":{p}" if p else "") for n, p in ((edge.source, edge.source_port), (edge.target, edge.target_port))]
    return _UNSAFE.sub("_", "->".join(ends))


def edge_type(edge: TopologyEdge) -> str:
    return "throughput" if edge.type in (None, "topology") else edge.type


def edge_measure(edge: TopologyEdge) -> str:
    """``measure``, else the source port when it names a measure (``A:errors``), else ``served``."""
    if edge.measure:
        return edge.measure
    port = {m.lower(): m for m in EDGE_MEASURES}.get((edge.source_port or "").lower())
    return port or "served"


def _series(t: TopologyNode, measure: str, known: set[str]) -> str | None:
    ref = t.ref(measure)
    if ref is None and measure == "failures":
        ref = t.ref("errors")  # failures fall back to errors, as the reference's semantic loader does
    return _producer(ref, t, known)


def _producer(ref: SeriesRef | None, t: TopologyNode, known: set[str]) -> str | None:
    if ref is None:
        return None
    name = t.id if ref.form == "self" else ref.node if ref.form in ("node", "series", "file") else None
    return name if name and name in known else None


def _weight(edge: TopologyEdge) -> float:
    return edge.weight if edge.weight > 0 else 1.0


def _is_flow(edge: TopologyEdge) -> bool:
    kind = edge_type(edge)
    return kind == "throughput" or (kind == "effort" and edge_measure(edge) == "served")


def flow_volumes(topology: Topology, known: set[str], routed: Mapping[int, Expr] | None = None) -> dict[int, Expr]:
    """
    Each flow edge's flowVolume before its lag, by edge index. ``routed`` (edge
    index -> expression) is where a router's routed amounts go: those edges take
    them and leave the weighted share of their source's other edges.
    """
    routed = routed or {}
    out: dict[int, Expr] = dict(routed)
    groups: dict[tuple[str, str], list[int]] = {}
    by_id = {t.id: t for t in topology.nodes}
    for i, e in enumerate(topology.edges):
        # an edge from a node that is not there was reported while reading the topology
        if i not in routed and _is_flow(e) and e.source in by_id:
            groups.setdefault((e.source, edge_measure(e)), []).append(i)
    for (source, measure), members in groups.items():
        series = _series(by_id[source], measure, known)
        if series is None:
            continue
        total = sum(_weight(topology.edges[i]) for i in members)
        for i in members:
            fraction = _weight(topology.edges[i]) / total
            out[i] = Ref(series) if fraction == 1.0 else BinOp("*", Ref(series), Num(fraction))
    return out


def edge_series(topology: Topology | None, known: set[str], at: Reporter,
                routed: Mapping[int, Expr] | None = None) -> EdgeSeries:
    """Every edge's series; ``known`` gains their ids. A source lacking the series an edge needs is warned about."""
    result = EdgeSeries([], {})
    if topology is None or not topology.edges:
        return result
    by_id = {t.id: t for t in topology.nodes}
    flows = flow_volumes(topology, known, routed)
    made: dict[str, int] = {}

    def add(i: int, metric: str, tree: Expr, *, lagged: bool = True) -> str | None:
        e = topology.edges[i]
        name = f"edge_{edge_name(e)}_{metric}"
        here: Path = ("topology", "edges", i)
        if name in made or name in known:
            at.warn(here, f"edge series '{name}' is already "
                    f"{f'the series of edge {made[name]}' if name in made else 'a node'}; give this edge its own "
                    "`id` (its series are not computed)")
            return None
        made[name] = i
        known.add(name)
        if lagged and e.lag > 0:
            tree = Call("SHIFT", (tree, Num(float(e.lag))))
        result.nodes.append(DerivedNode(name, tree, f"edge_{metric}", e.source, written_always=True))
        result.origins[name] = here
        return name

    flow_names: dict[int, str] = {}
    for i, e in enumerate(topology.edges):
        src = by_id.get(e.source)
        if src is None:  # reported while reading the topology
            continue
        kind = edge_type(e)
        if i in flows:
            name = add(i, "flowVolume", flows[i])
            if name is not None:
                flow_names[i] = name
        elif _is_flow(e):
            _missing(at, i, e, edge_measure(e), "flowVolume")
        if kind in ("effort", "dependency"):
            attempts = _series(src, "attempts", known)
            if attempts is not None:
                k = e.multiplier if e.multiplier is not None else e.weight
                add(i, "attemptsVolume", _scaled(attempts, k))
            elif kind == "effort" and not _is_flow(e):
                _missing(at, i, e, "attempts", "attemptsVolume")
        if kind == "terminal":
            measure = edge_measure(e)
            if measure in FAILURE_MEASURES:
                failures = _series(src, measure, known)
                if failures is None:
                    _missing(at, i, e, measure, "failuresVolume")
                else:
                    add(i, "failuresVolume", _scaled(failures, e.multiplier if e.multiplier is not None else 1.0))
    for t in topology.nodes:
        echo = _producer(t.ref("retryEcho"), t, known)
        incoming = [i for i in flow_names if topology.edges[i].target == t.id]
        if echo is not None and incoming:
            for i in incoming:
                # the flows it is split by carry the lag already
                add(i, "retryVolume", _retry_share(echo, [flow_names[j] for j in incoming], flow_names[i]),
                    lagged=False)
    return result


def _scaled(series: str, k: float) -> Expr:
    return Ref(series) if k == 1.0 else BinOp("*", Ref(series), Num(k))


def _retry_share(echo: str, flows: Sequence[str], mine: str) -> Expr:
    """``IF(S == 0, echo / n, echo * flow / S)`` with S the sum of the incoming flows."""
    if len(flows) == 1:
        return Ref(echo)
    total: Expr = Ref(flows[0])
    for f in flows[1:]:
        total = BinOp("+", total, Ref(f))
    share = BinOp("/", BinOp("*", Ref(echo), Ref(mine)), total)
    equal = BinOp("/", Ref(echo), Num(float(len(flows))))
    return Call("IF", (BinOp("==", total, Num(0.0)), equal, share))


def _missing(at: Reporter, i: int, e: TopologyEdge, measure: str, metric: str) -> None:
    at.warn(("topology", "edges", i), f"edge {edge_name(e)}: source '{e.source}' has no semantics.{measure} series, "
            f"so the edge has no {metric}")
