"""
The ``topology`` section: services, queues and the edges between them, read and checked.

A topology node describes a service by *references* to series (``semantics``:
arrivals, served, errors, queue depth, ...), plus what FlowTime computes for
it - a queue's initial depth, dispatch schedule and WIP limit. Edges and
constraints are read and checked here; what they compute comes later (edges
carry no flow in the reference either, ``engine-head.md`` §3.2). Every key is
either understood or warned about, at its line. ``model.synthesis`` turns the
queue-like nodes into queue nodes of the model.

A series reference is one of ``node``, ``series:node``, ``node@Class``,
``self`` (the topology node's own series) or ``file:path.csv``:

>>> parse_ref("series:served"), parse_ref("self").form, parse_ref("arrivals@VIP").class_id
(SeriesRef(text='series:served', form='series', node='served', class_id=None, path=None), 'self', 'VIP')
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any, Protocol

from flowtime.expr.functions import suggest
from flowtime.model.nodes import is_number, type_name
from flowtime.model.queues import DispatchSchedule, read_limit, read_schedule
from flowtime.records import record

Path = tuple[str | int, ...]

NODE_KINDS = ("service", "serviceWithBuffer", "queue", "dlq", "router", "sink", "dependency")
QUEUE_KINDS = frozenset({"serviceWithBuffer", "queue", "dlq"})
SERIES_FIELDS = ("arrivals", "served", "errors", "attempts", "failures", "exhaustedFailures", "retryEcho",
                 "retryBudgetRemaining", "externalDemand", "queueDepth", "capacity", "processingTimeMsSum",
                 "servedCount")
NUMBER_FIELDS = ("slaMin", "maxAttempts")
TEXT_FIELDS = ("backoffStrategy", "exhaustedPolicy")
SEMANTICS_FIELDS = (*SERIES_FIELDS, "parallelism", "retryKernel", *NUMBER_FIELDS, *TEXT_FIELDS, "aliases",
                    "metadata")
NODE_FIELDS = ("id", "kind", "nodeRole", "group", "ui", "constraints", "semantics", "initialCondition",
               "dispatchSchedule", "wipLimit", "wipLimitSeries", "wipOverflow", "metadata", "title", "description")
EDGE_TYPES = ("throughput", "effort", "terminal", "dependency", "topology")  # topology: a throughput edge
EDGE_MEASURES = ("served", "attempts", "errors", "failures", "exhaustedFailures", "load")
EDGE_FIELDS = ("id", "from", "to", "source", "target", "weight", "type", "measure", "multiplier", "lag")
CONSTRAINT_FIELDS = ("arrivals", "served", "errors", "latencyMinutes")
_NAME = re.compile(r"^[^\W\d][\w.\-]{0,127}\Z")


class Reporter(Protocol):
    def error(self, path: Path, message: str, *, key: bool = False) -> None: ...

    def warn(self, path: Path, message: str, *, key: bool = False) -> None: ...


@record
class SeriesRef:
    """A series reference as written (``text``) and read: ``form`` is node, series, self, file or class."""

    text: str
    form: str
    node: str  # the producing node's id (for a file: '' until the loader has read it)
    class_id: str | None = None
    path: str | None = None  # of a ``file:`` reference


def parse_ref(text: str) -> SeriesRef | None:
    """The reference ``text`` names, or None when it is not one."""
    t = text.strip()
    if t.startswith("file:"):
        path = t[len("file:"):].strip()
        return SeriesRef(t, "file", "", path=path) if path else None
    if t == "self":
        return SeriesRef(t, "self", "")
    form = "node"
    body = t
    if t.startswith("series:"):
        form, body = "series", t[len("series:"):].strip()
    class_id = None
    if "@" in body:
        body, _, class_id = body.partition("@")
        if not _NAME.match(class_id):
            return None
        form = "class"
    if not _NAME.match(body):
        return None
    return SeriesRef(t, form, body, class_id)


@record
class TopologyNode:
    id: str
    kind: str
    role: str | None = None
    group: str | None = None
    constraints: tuple[str, ...] = ()
    semantics: Mapping[str, Any] = None  # type: ignore[assignment]  # field -> SeriesRef, number, text ...
    initial: float | None = None  # initialCondition.queueDepth
    dispatch: DispatchSchedule | None = None
    wip_limit: float | None = None
    wip_limit_series: str | None = None
    wip_overflow: str | None = None  # a topology node id; None: loss
    index: int = 0  # position in topology.nodes (to locate problems)

    def ref(self, name: str) -> SeriesRef | None:
        v = (self.semantics or {}).get(name)
        return v if isinstance(v, SeriesRef) else None

    def to_json(self) -> dict[str, Any]:
        sem = {k: (v.text if isinstance(v, SeriesRef) else [_finite_or_text(x) for x in v] if isinstance(v, tuple)
                   else v)
               for k, v in (self.semantics or {}).items()}
        return {"id": self.id, "kind": self.kind, "nodeRole": self.role, "constraints": list(self.constraints),
                "semantics": sem, "initialCondition": self.initial,
                "dispatchSchedule": self.dispatch.to_json() if self.dispatch else None,
                "wipLimit": self.wip_limit, "wipLimitSeries": self.wip_limit_series, "wipOverflow": self.wip_overflow}


def _finite_or_text(x: float) -> float | str:
    """A kernel coefficient for canonical JSON (which has no NaN): non-finite ones as text (``nan``, ``inf``)."""
    return x if math.isfinite(x) else str(x)


@record
class TopologyEdge:
    source: str
    target: str
    source_port: str | None = None
    target_port: str | None = None
    id: str | None = None
    weight: float = 1.0
    type: str | None = None
    measure: str | None = None
    multiplier: float | None = None
    lag: int = 0

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "from": self.source, "fromPort": self.source_port, "to": self.target,
                "toPort": self.target_port, "weight": self.weight, "type": self.type, "measure": self.measure,
                "multiplier": self.multiplier, "lag": self.lag}


@record
class TopologyConstraint:
    id: str
    semantics: Mapping[str, Any]

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "semantics": {k: v.text if isinstance(v, SeriesRef) else v
                                             for k, v in self.semantics.items()}}


@record
class Topology:
    nodes: tuple[TopologyNode, ...] = ()
    edges: tuple[TopologyEdge, ...] = ()
    constraints: tuple[TopologyConstraint, ...] = ()

    def node(self, node_id: str) -> TopologyNode:
        for n in self.nodes:
            if n.id == node_id:
                return n
        raise KeyError(node_id)

    def to_json(self) -> dict[str, Any]:
        return {"nodes": [n.to_json() for n in self.nodes], "edges": [e.to_json() for e in self.edges],
                "constraints": [c.to_json() for c in self.constraints]}


# -- reading ----------------------------------------------------------------------------------------


def read_topology(raw: Any, at: Reporter, default_kind: str | None = None) -> Topology | None:
    """
    The ``topology`` mapping, every problem reported through ``at`` (paths from
    ``topology``). ``default_kind`` is the kind of a node that gives none (the
    window form's nodes are services); without it a kind is required.
    """
    top: Path = ("topology",)
    if not isinstance(raw, dict):
        at.error(top, f"topology must be a mapping with nodes (and edges, constraints), got {type_name(raw)}")
        return None
    for key in raw:
        if key not in ("nodes", "edges", "constraints"):
            at.warn((*top, key), f"unknown topology key '{key}' is ignored"
                    f"{suggest(str(key), ('nodes', 'edges', 'constraints'))}", key=True)
    constraints = _constraints(raw.get("constraints"), at)
    raw_c = raw.get("constraints")  # a member of one that failed to read is not told it is unknown too
    written = [str(c["id"]) for c in raw_c if isinstance(c, dict) and isinstance(c.get("id"), str)] \
        if isinstance(raw_c, list) else []
    constraint_ids = list(dict.fromkeys([c.id for c in constraints] + written))
    nodes: list[TopologyNode] = []
    seen: dict[str, int] = {}
    items = raw.get("nodes")
    if items is None:
        at.error(top, "topology needs `nodes`: a list of services such as `- {id: Checkout, kind: service, ...}`")
        return None
    if not isinstance(items, list):
        at.error((*top, "nodes"), f"topology.nodes must be a list, got {type_name(items)}")
        return None
    for i, item in enumerate(items):
        node = _node(item, i, at, constraint_ids, default_kind)
        if node is None:
            continue
        if node.id in seen:
            at.error((*top, "nodes", i, "id"), f"duplicate topology node id '{node.id}'")
            continue
        seen[node.id] = i
        nodes.append(node)
    declared = [str(it["id"]) for it in items if isinstance(it, dict) and isinstance(it.get("id"), str)]
    edges = _edges(raw.get("edges"), at, declared)
    return Topology(tuple(nodes), tuple(edges), tuple(constraints))


def _node(item: Any, i: int, at: Reporter, constraint_ids: list[str],
          default_kind: str | None = None) -> TopologyNode | None:
    here: Path = ("topology", "nodes", i)
    if not isinstance(item, dict):
        at.error(here, f"each topology node must be a mapping with id, kind and semantics, got {type_name(item)}")
        return None
    node_id = item.get("id")
    if not isinstance(node_id, str) or not _NAME.match(node_id):
        at.error((*here, "id") if "id" in item else here,
                 "topology node needs an `id`: a name such as `Checkout` (letters, digits, '_', '.', '-')")
        return None
    for key in item:
        if key not in NODE_FIELDS:
            at.warn((*here, key), f"topology node '{node_id}': field '{key}' is not known and is ignored"
                    f"{suggest(str(key), NODE_FIELDS)}", key=True)
    ok = True
    kind_raw = item.get("kind", default_kind)
    kinds_by_lower = {k.lower(): k for k in NODE_KINDS}
    if kind_raw is None:
        at.error(here, f"topology node '{node_id}' needs `kind`: one of {', '.join(NODE_KINDS)} (the reference's two "
                 "engines assume different kinds when it is missing)")
        return None
    kind = kinds_by_lower.get(kind_raw.strip().lower()) if isinstance(kind_raw, str) else None
    if kind is None:
        at.error((*here, "kind"), f"topology node '{node_id}': unknown kind {type_name(kind_raw)}"
                 f"{suggest(str(kind_raw), NODE_KINDS)}; expected one of {', '.join(NODE_KINDS)}")
        return None
    role = _text(item, "nodeRole", here, at)
    group = _text(item, "group", here, at)
    if "ui" in item and not isinstance(item["ui"], dict):
        at.warn((*here, "ui"), "ui must be a mapping such as {x: 10, y: 20} (layout only); ignored")
    constraints: list[str] = []
    raw_c = item.get("constraints", [])
    if not isinstance(raw_c, list):
        at.error((*here, "constraints"), f"constraints must be a list of constraint ids, got {type_name(raw_c)}")
        ok = False
    else:
        for j, c in enumerate(raw_c):
            if not isinstance(c, str) or c not in constraint_ids:
                at.error((*here, "constraints", j), f"topology node '{node_id}': unknown constraint {type_name(c)}"
                         f"{suggest(str(c), constraint_ids)}; declare it under topology.constraints")
                ok = False
            else:
                constraints.append(c)
    semantics = _semantics(item.get("semantics"), (*here, "semantics"), node_id, at)
    ok = ok and semantics is not None
    initial = None
    if "initialCondition" in item:
        ic = item["initialCondition"]
        if not isinstance(ic, dict) or "queueDepth" not in ic:
            at.error((*here, "initialCondition"), f"initialCondition must be a mapping {{queueDepth: n}}, got "
                     f"{type_name(ic)}")
            ok = False
        else:
            for key in ic:
                if key != "queueDepth":
                    at.warn((*here, "initialCondition", key), f"initialCondition field '{key}' is ignored", key=True)
            v = ic["queueDepth"]
            if not is_number(v) or not math.isfinite(float(v)) or float(v) < 0:
                at.error((*here, "initialCondition", "queueDepth"), f"topology node '{node_id}': "
                         f"initialCondition.queueDepth must be a number >= 0, got {type_name(v)}")
                ok = False
            else:
                initial = float(v)
    dispatch = None
    if "dispatchSchedule" in item:
        dispatch = read_schedule(item["dispatchSchedule"], _At(at, here), ("dispatchSchedule",))
        ok = ok and dispatch is not None
    wip_limit = None
    if "wipLimit" in item:
        wip_limit = read_limit(item["wipLimit"], _At(at, here), ("wipLimit",))
        ok = ok and wip_limit is not None
    wip_series = None
    if "wipLimitSeries" in item:
        v = item["wipLimitSeries"]
        if not isinstance(v, str) or not _NAME.match(v.strip()):
            at.error((*here, "wipLimitSeries"), f"wipLimitSeries must name a node, got {type_name(v)}")
            ok = False
        else:
            wip_series = v.strip()
            if wip_limit is not None:
                at.warn((*here, "wipLimit"), f"topology node '{node_id}' gives wipLimit and wipLimitSeries; the "
                        "series is used", key=True)
    overflow = None
    if "wipOverflow" in item:
        v = item["wipOverflow"]
        if v is not None and not isinstance(v, str):
            at.error((*here, "wipOverflow"), f"wipOverflow must be `loss` or a topology node id, got {type_name(v)}")
            ok = False
        elif isinstance(v, str) and v.strip() and v.strip().lower() != "loss":
            overflow = v.strip()
        if wip_limit is None and wip_series is None:
            at.warn((*here, "wipOverflow"), f"topology node '{node_id}' has wipOverflow but no wipLimit or "
                    "wipLimitSeries; nothing overflows", key=True)
    if not ok:
        return None
    return TopologyNode(node_id, kind, role, group, tuple(constraints), semantics or {}, initial, dispatch,
                        wip_limit, wip_series, overflow, i)


class _At:
    """A reporter relative to one node (``read_schedule`` and ``read_limit`` speak in fields)."""

    def __init__(self, at: Reporter, here: Path) -> None:
        self.at, self.here = at, here

    def error(self, field: tuple[str | int, ...], message: str, *, key: bool = False) -> None:
        self.at.error((*self.here, *field), message, key=key)

    def warn(self, field: tuple[str | int, ...], message: str, *, key: bool = False) -> None:
        self.at.warn((*self.here, *field), message, key=key)


def _text(item: dict[str, Any], key: str, here: Path, at: Reporter) -> str | None:
    v = item.get(key)
    if v is None:
        return None
    if not isinstance(v, str):
        at.warn((*here, key), f"{key} should be text; read as {str(v)!r}")
        return str(v)
    return v


def _ref(v: Any, path: Path, what: str, at: Reporter) -> SeriesRef | None:
    ref = parse_ref(v) if isinstance(v, str) else None
    if ref is None:
        at.error(path, f"{what} must be a series reference (`node`, `series:node`, `node@Class`, `self` or "
                 f"`file:path.csv`), got {type_name(v)}")
    return ref


def _semantics(raw: Any, here: Path, node_id: str, at: Reporter) -> dict[str, Any] | None:
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        at.error(here, f"semantics must be a mapping of series references (arrivals, served, ...), got "
                 f"{type_name(raw)}")
        return None
    out: dict[str, Any] = {}
    ok = True
    for key, v in raw.items():
        path = (*here, key)
        if v is None:
            continue
        if key in SERIES_FIELDS:
            ref = _ref(v, path, f"topology node '{node_id}': semantics.{key}", at)
            ok = ok and ref is not None
            if ref is not None:
                out[key] = ref
        elif key == "parallelism":
            if is_number(v) and math.isfinite(float(v)) and float(v) > 0:
                out[key] = float(v)
            else:
                ref = _ref(v, path, f"topology node '{node_id}': semantics.parallelism (a number > 0 or)", at)
                ok = ok and ref is not None
                if ref is not None:
                    out[key] = ref
        elif key == "retryKernel":
            if not isinstance(v, list) or not all(is_number(x) for x in v):  # non-finite: the policy's 0
                at.error(path, f"retryKernel must be a list of numbers such as [0.0, 0.6, 0.3, 0.1], got "
                         f"{type_name(v)}")
                ok = False
            else:
                out[key] = tuple(float(x) for x in v)
        elif key in NUMBER_FIELDS:
            if not is_number(v) or not math.isfinite(float(v)):
                at.error(path, f"semantics.{key} must be a number, got {type_name(v)}")
                ok = False
            else:
                out[key] = float(v)
        elif key in TEXT_FIELDS:
            out[key] = str(v)
        elif key in ("aliases", "metadata"):
            if not isinstance(v, dict):
                at.warn(path, f"semantics.{key} must be a mapping of text; ignored")
            else:
                out[key] = {str(a): str(b) for a, b in v.items()}
        else:
            at.warn(path, f"topology node '{node_id}': semantics field '{key}' is not known and is ignored"
                    f"{suggest(str(key), SEMANTICS_FIELDS)}", key=True)
    return out if ok else None


def _constraints(raw: Any, at: Reporter) -> list[TopologyConstraint]:
    if raw is None:
        return []
    here: Path = ("topology", "constraints")
    if not isinstance(raw, list):
        at.error(here, f"topology.constraints must be a list, got {type_name(raw)}")
        return []
    out: list[TopologyConstraint] = []
    seen: set[str] = set()
    for i, item in enumerate(raw):
        path = (*here, i)
        if not isinstance(item, dict) or not isinstance(item.get("id"), str):
            at.error(path, "each constraint needs an `id` and `semantics: {arrivals, served}`")
            continue
        for key in item:
            if key not in ("id", "semantics"):
                at.warn((*path, key), f"constraint field '{key}' is ignored", key=True)
        sem = item.get("semantics")
        refs: dict[str, Any] = {}
        if not isinstance(sem, dict):
            at.error(path, f"constraint '{item['id']}' needs `semantics: {{arrivals, served}}`")
            continue
        for key, v in sem.items():
            if key not in CONSTRAINT_FIELDS:
                at.warn((*path, "semantics", key), f"constraint semantics field '{key}' is ignored", key=True)
            elif key == "latencyMinutes" and is_number(v):
                refs[key] = float(v)
            else:
                ref = _ref(v, (*path, "semantics", key), f"constraint '{item['id']}': semantics.{key}", at)
                if ref is not None:
                    refs[key] = ref
        if item["id"] in seen:
            at.error((*path, "id"), f"duplicate constraint id '{item['id']}'")
            continue
        seen.add(item["id"])
        if "served" not in refs:
            if "served" not in sem:
                at.error((*path, "semantics"), f"constraint '{item['id']}' needs semantics.served, its capacity "
                         "(a series such as `served: capacity`)", key=True)
            continue
        out.append(TopologyConstraint(item["id"], refs))
    return out


def _port(v: Any) -> tuple[str, str | None] | None:
    if not isinstance(v, str) or not v.strip():
        return None
    node, sep, port = v.strip().partition(":")
    return node, (port or None) if sep else None


def _edges(raw: Any, at: Reporter, declared: list[str]) -> list[TopologyEdge]:
    if raw is None:
        return []
    here: Path = ("topology", "edges")
    if not isinstance(raw, list):
        at.error(here, f"topology.edges must be a list, got {type_name(raw)}")
        return []
    out: list[TopologyEdge] = []
    known = set(declared)
    for i, item in enumerate(raw):
        path = (*here, i)
        if not isinstance(item, dict):
            at.error(path, f"each edge must be a mapping {{from, to}}, got {type_name(item)}")
            continue
        for key in item:
            if key not in EDGE_FIELDS:
                at.warn((*path, key), f"edge field '{key}' is not known and is ignored"
                        f"{suggest(str(key), EDGE_FIELDS)}", key=True)
        ends: list[tuple[str, str | None]] = []
        for key, alt in (("from", "source"), ("to", "target")):
            name = key if key in item else alt
            end = _port(item.get(name))
            if end is None:
                at.error((*path, name) if name in item else path, f"edge needs `{key}`: a topology node id, "
                         f"optionally with a port (`Checkout:out`)")
            elif end[0] not in known:
                at.error((*path, name), f"edge {key} names unknown topology node '{end[0]}'"
                         f"{suggest(end[0], declared)}")
            else:
                ends.append(end)
        fields: dict[str, Any] = {}
        for key in ("weight", "multiplier"):
            if key in item:
                v = item[key]
                if not is_number(v) or not math.isfinite(float(v)) or float(v) < 0:
                    at.error((*path, key), f"edge {key} must be a number >= 0, got {type_name(v)}")
                else:
                    fields[key] = float(v)
        for key, allowed in (("type", EDGE_TYPES), ("measure", EDGE_MEASURES)):
            if key in item:
                v = item[key]
                match = {a.lower(): a for a in allowed}.get(str(v).lower()) if isinstance(v, str) else None
                if match is None:
                    at.error((*path, key), f"edge {key} must be one of {', '.join(allowed)}, got {type_name(v)}")
                else:
                    fields[key] = match
        if "lag" in item:
            v = item["lag"]
            if not isinstance(v, int) or isinstance(v, bool) or v < 0:
                at.error((*path, "lag"), f"edge lag must be a whole number >= 0, got {type_name(v)}")
            else:
                fields["lag"] = v
                if v > 0:
                    at.warn((*path, "lag"), "edge_behavior_violation_lag: the lag shifts only this edge's series; "
                            "edges carry no flow into their target, so model transit as an explicit node (SHIFT)")
        if "id" in item:
            fields["id"] = str(item["id"])
        if len(ends) == 2:
            (src, sp), (dst, dp) = ends
            out.append(TopologyEdge(src, dst, sp, dp, **fields))
    return out
