"""
What the state API says about one run: its graph, and its state at one bin.

Plain functions over a ``RunState`` returning JSON-ready dicts (NaN stays a
float and becomes ``null`` in orjson), shared by the HTTP routes and
``flowtime runs show --bin``. Field names follow the reference's
``GraphResponse`` and ``StateSnapshotResponse`` (analysis-head.md §2.1, §2.5)
where it has one; what it lacks (the finding's ``activity``, ``modelNote``) is ours.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from flowtime.analysis.findings import Finding
from flowtime.artifacts.class_parts import check_classes, class_list
from flowtime.artifacts.layout import class_series_id
from flowtime.artifacts.state import RunState, active_findings, utc_text
from flowtime.errors import ConflictError, QueryError
from flowtime.model.edges import edge_measure, edge_name, edge_type
from flowtime.model.kinds import is_internal
from flowtime.model.topology import SeriesRef, Topology

# The series a node is given (the reference's NodeSnapshot ``metrics``); every other key is ``derived``.
INPUT_KEYS = ("arrivals", "served", "errors", "attempts", "failures", "exhaustedFailures", "retryEcho",
              "retryBudgetRemaining", "externalDemand", "queue", "capacity", "parallelism", "processingTimeMsSum",
              "servedCount")
EDGE_METRICS = ("flowVolume", "attemptsVolume", "failuresVolume", "retryVolume")
_CATEGORY = {"service": "service", "serviceWithBuffer": "service", "queue": "queue", "dlq": "dlq",
             "router": "router", "dependency": "dependency", "sink": "sink"}
_COMPUTED = {"const": "constant", "pmf": "pmf", "expr": "expression"}


def colours() -> tuple[str, ...]:
    from flowtime.analysis.metrics import COLOURS

    return tuple(COLOURS)


def metadata(state: RunState) -> dict[str, Any]:
    run = state.run
    return {
        "runId": state.run_id, "title": run.get("title"), "mode": "simulation",
        "templateId": run.get("templateId"), "modelId": run.get("modelId"),
        "modelHash": run.get("modelHash"), "scenarioHash": run.get("scenarioHash"),
        "engineVersion": run.get("engineVersion"), "createdUtc": run.get("createdUtc"),
        "grid": {**state.grid.to_json(), "binMinutes": state.grid.bin_minutes,
                 "startTimeUtc": utc_text(state.start)},
        "findingsSource": state.findings_source, "modelNote": state.model_note,
        "classCoverage": class_coverage(state), "classes": class_list(state.model),
    }


def class_coverage(state: RunState) -> str | None:
    """The run's class coverage in the state schema's words (run.json says ``none`` for ``missing``)."""
    stored = state.run.get("classCoverage")
    if stored in ("full", "partial"):
        return str(stored)
    return "missing" if stored == "none" or not state.class_ids else None


def computed_nodes(state: RunState) -> list[tuple[str, str, str, int]]:
    """
    ``mode=full``: the model's own nodes with a stored series, internal ones left
    out - (id, kind, category, row of ``values``). The state API never evaluates,
    so a node the run did not store is not shown.
    """
    if state.model is None:
        return []
    out = []
    for n in state.model.nodes:
        row = state.rows.get(n.id)
        if row is not None and not is_internal(n.id):
            kind = str(getattr(n, "kind", type(n).__name__))
            out.append((n.id, kind, _COMPUTED.get(kind, "expression"), row))
    return out


def class_rows(state: RunState, series_id: str, chosen: Sequence[str] | None) -> dict[str, int]:
    """A stored series' class parts (class -> row of ``values``), in declaration order."""
    return {c: r for c in (state.class_ids if chosen is None else chosen)
            if (r := state.rows.get(class_series_id(series_id, c))) is not None}


def require_topology(state: RunState) -> Topology:
    """The run's topology; ``ConflictError`` (409) for a run without one - the state is per topology node."""
    if state.model is None:
        raise ConflictError(f"run {state.run_id}: {state.model_note}; its series are at "
                            f"/v1/runs/{state.run_id}/series/{{id}}")
    topology: Topology | None = state.model.topology
    if topology is None:
        raise ConflictError(f"run {state.run_id} has no topology: the state API describes topology nodes; "
                            f"its series are at /v1/runs/{state.run_id}/series/{{id}} and its nodes at "
                            f"/v1/runs/{state.run_id}/graph?mode=full")
    return topology


def check_bin(state: RunState, index: int, parameter: str = "bin") -> int:
    if not 0 <= index < state.bins:
        raise QueryError(parameter, f"{parameter}={index} is outside run {state.run_id}, whose bins are "
                         f"0..{state.bins - 1}", f"0..{state.bins - 1}")
    return index


# -- the graph -------------------------------------------------------------------------------------


def graph(state: RunState, *, full: bool = False) -> dict[str, Any]:
    """Topology nodes with layout hints and edges; ``full`` adds the model's computed nodes."""
    out: dict[str, Any] = {"runId": state.run_id, "mode": "full" if full else "operational",
                           "modelNote": state.model_note, "nodes": [], "edges": []}
    model = state.model
    topology = model.topology if model is not None else None
    if topology is not None:
        placed = layers(topology)
        for t in topology.nodes:
            m = state.metrics.get(t.id)
            out["nodes"].append({
                "id": t.id, "kind": t.kind, "category": m.category if m is not None else _CATEGORY.get(t.kind),
                "nodeRole": t.role, "group": t.group, "semantics": _semantics(t.semantics or {}),
                "dispatchSchedule": t.dispatch.to_json() if t.dispatch else None,
                "initialCondition": {"queueDepth": t.initial} if t.initial is not None else None,
                "wipLimit": t.wip_limit, "constraints": list(t.constraints),
                "ui": {"x": None, "y": None, "layer": placed[t.id][0], "order": placed[t.id][1]},
            })
        for e in topology.edges:
            name = edge_name(e)
            out["edges"].append({
                "id": e.id or name, "from": e.source, "to": e.target, "fromPort": e.source_port,
                "toPort": e.target_port, "weight": e.weight, "edgeType": edge_type(e), "field": edge_measure(e),
                "measure": edge_measure(e), "multiplier": e.multiplier, "lag": e.lag,
                "series": {k: sid for k in EDGE_METRICS if (sid := f"edge_{name}_{k}") in state.rows},
            })
    if full or topology is None:
        out["nodes"].extend(_computed(state))
    return out


def _semantics(sem: Mapping[str, Any]) -> dict[str, Any]:
    """References as written (``series:served``), numbers and text as they are."""
    out: dict[str, Any] = {}
    for k, v in sem.items():
        if isinstance(v, SeriesRef):
            out["queue" if k == "queueDepth" else k] = v.node or v.text
        elif isinstance(v, tuple):
            out[k] = list(v)
        else:
            out[k] = v
    return out


def _computed(state: RunState) -> list[dict[str, Any]]:
    """The model's own nodes (internal ones left out), or without a model the stored series."""
    if state.model is None:
        return [{"id": sid, "kind": "series", "category": None, "stored": True} for sid in state.ids]
    from flowtime.model.graph import graph_of

    g = graph_of(state.model)
    out = []
    for n in state.model.nodes:
        if is_internal(n.id):
            continue
        kind = str(getattr(n, "kind", type(n).__name__))
        expr = getattr(n, "expr", None)
        out.append({"id": n.id, "kind": kind, "category": _COMPUTED.get(kind, "expression"),
                    "expression": expr if isinstance(expr, str) else None,
                    "inputs": [i for i in g.inputs.get(n.id, ()) if not is_internal(i)],
                    "stored": n.id in state.rows})
    return out


def layers(topology: Topology) -> dict[str, tuple[int, int]]:
    """
    Each node's (layer, order): the layer is the longest path to it from a node
    without incoming edges (an edge closing a cycle is not followed), the order
    its place among its layer's nodes in declaration order.
    """
    ids = [t.id for t in topology.nodes]
    succ: dict[str, list[str]] = {i: [] for i in ids}
    for e in topology.edges:
        if e.source in succ and e.target in succ and e.source != e.target:
            succ[e.source].append(e.target)
    # Depth-first from each node in order: an edge back onto the current path closes a cycle.
    state: dict[str, int] = {}
    finished: list[str] = []
    kept: dict[str, list[str]] = {i: [] for i in ids}
    for root in ids:
        if root in state:
            continue
        stack: list[tuple[str, int]] = [(root, 0)]
        state[root] = 1
        while stack:
            node, k = stack[-1]
            if k < len(succ[node]):
                stack[-1] = (node, k + 1)
                nxt = succ[node][k]
                if state.get(nxt) == 1:
                    continue  # back edge
                kept[node].append(nxt)
                if nxt not in state:
                    state[nxt] = 1
                    stack.append((nxt, 0))
            else:
                state[node] = 2
                finished.append(node)
                stack.pop()
    layer = dict.fromkeys(ids, 0)
    for node in reversed(finished):  # reverse post-order: a topological order of the kept edges
        for nxt in kept[node]:
            layer[nxt] = max(layer[nxt], layer[node] + 1)
    seen: dict[int, int] = {}
    out: dict[str, tuple[int, int]] = {}
    for i in ids:
        out[i] = (layer[i], seen.get(layer[i], 0))
        seen[layer[i]] = seen.get(layer[i], 0) + 1
    return out


# -- one bin ---------------------------------------------------------------------------------------


def finding_json(f: Finding, activity: str | None = None) -> dict[str, Any]:
    out = f.to_dict()
    if activity is not None:
        out["activity"] = activity
    return out


def snapshot(state: RunState, index: int, *, full: bool = False,
             class_ids: Sequence[str] | None = None) -> dict[str, Any]:
    """
    The reference's ``/state?binIndex=N``: every topology node's series and
    derived metrics at one bin, each with its classes (``byClass``, limited to
    ``class_ids``); ``full`` adds the model's computed nodes (``metrics.values``).
    """
    topology = require_topology(state)
    check_bin(state, index)
    chosen = check_classes(class_ids, state.class_ids, state.run_id)
    class_column = state.class_values[:, index].tolist()
    column = state.metric_values[:, index].tolist()
    names = colours()
    active = active_findings(state, index)
    by_node: dict[str | None, list[dict[str, Any]]] = {}
    for f, how in active:
        by_node.setdefault(f.node, []).append(finding_json(f, how))
    nodes = []
    for row, (node_id, m) in enumerate(state.metrics.items()):
        keys = state.keys[node_id]
        inputs = {k: column[r] for k, r in keys.items() if k in INPUT_KEYS}
        derived: dict[str, Any] = {k: column[r] for k, r in keys.items() if k not in INPUT_KEYS}
        colour = names[int(state.colours[row, index])]
        derived["color"] = colour
        classes = state.classes[node_id]
        by_class = {c: {k: class_column[r] for k, r in classes.rows[c].items()}
                    for c in classes.rows if chosen is None or c in chosen}
        nodes.append({"id": node_id, "kind": m.kind, "category": m.category, "metrics": inputs, "derived": derived,
                      "color": colour, "slaMin": m.sla_min, "sla": _sla_json(m.sla),
                      "classTruth": classes.truth(), "byClass": by_class, "warnings": by_node.get(node_id, [])})
    if full:
        for node_id, kind, category, row in computed_nodes(state):
            nodes.append({"id": node_id, "kind": kind, "category": category,
                          "metrics": {"values": float(state.values[row, index])}, "derived": {},
                          "byClass": {c: {"values": float(state.values[r, index])}
                                      for c, r in class_rows(state, node_id, chosen).items()},
                          "warnings": by_node.get(node_id, [])})
    start = state.bin_start(index)
    end = state.bin_start(index + 1)
    return {
        "metadata": metadata(state),
        "mode": "full" if full else "operational",
        "bin": {"index": index, "startUtc": utc_text(start), "endUtc": utc_text(end),
                "durationMinutes": state.grid.bin_minutes},
        "nodes": nodes,
        "edges": edges_at(state, topology, index),
        "warnings": [finding_json(f, how) for f, how in active],
        "edgeWarnings": edge_warnings(finding_json(f, how) for f, how in active),
    }


def edge_warnings(warnings: Iterable[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """The reference's ``edgeWarnings``: the warnings that name an edge, by edge id."""
    out: dict[str, list[dict[str, Any]]] = {}
    for w in warnings:
        for edge in w.get("edgeIds") or ():
            out.setdefault(edge, []).append(w)
    return out


def _sla_json(sla: Any) -> dict[str, Any] | None:
    """The node's SLA over the whole run (``analysis.metrics.SlaSummary``); ``percent`` 0-100."""
    if sla is None:
        return None
    return {"kind": sla.kind, "target": sla.target, "met": sla.met, "evaluated": sla.evaluated,
            "percent": sla.percent, "scope": "run"}


def edges_at(state: RunState, topology: Topology, index: int) -> list[dict[str, Any]]:
    out = []
    for e in topology.edges:
        name = edge_name(e)
        series = {k: float(state.values[r, index]) for k in EDGE_METRICS
                  if (r := state.rows.get(f"edge_{name}_{k}")) is not None}
        out.append({"id": e.id or name, "from": e.source, "to": e.target, "flowVolume": series.get("flowVolume"),
                    "series": series})
    return out
