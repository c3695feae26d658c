"""
Topology -> model nodes: queue synthesis, overflow routing, retry echoes, sinks' served series and the
initial-condition rule.

Each queue-like topology node (serviceWithBuffer, queue, dlq) gets a queue
node, as the reference's compiler makes one (``engine-head.md`` §3.3): unless
its ``semantics.queueDepth`` names an existing node, a ``serviceWithBuffer``
node is added with inflow = arrivals, outflow = served (else capacity),
loss = errors, the node's initial depth, dispatch schedule and WIP limit, and
the id ``queueDepth`` names - or ``snake_case(id) + "_queue"`` (``_1``, ``_2``
on a collision), written back into ``semantics.queueDepth``. A queue node
written in ``nodes[]`` and named by a topology node's ``queueDepth`` takes
that node's initial depth and limit. Overflow routed into another node's
queue is added to that queue's inflow; the routing must not loop. Every queue
node then brings its companion series (``model.queues.companions``). A missing
``retryEcho`` is added as CONV (``model.retry``); a sink gets no queue and its
``served`` completed (``model.sinks``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from flowtime.expr.functions import suggest as _close
from flowtime.expr.syntax import Call, Expr, Num, Ref, walk
from flowtime.model.constraints import constraint_caps
from flowtime.model.edges import edge_series
from flowtime.model.queues import QueueNode, companions
from flowtime.model.retry import retry_echoes
from flowtime.model.schema import ConstNode, ExprNode, PmfNode
from flowtime.model.sinks import is_sink, sink_served
from flowtime.model.topology import QUEUE_KINDS, Path, Reporter, SeriesRef, Topology, TopologyNode
from flowtime.records import record


def suggest(name: str, candidates: Sequence[str]) -> str:
    """Like ``expr.functions.suggest``, a name differing only in case first (``IntakeDLQ`` -> ``IntakeDlq``)."""
    same = [c for c in candidates if c.lower() == name.lower()]
    return f" (did you mean `{same[0]}`?)" if same else _close(name, tuple(candidates))


def snake_case(value: str) -> str:
    """
    The reference's (C#) snake case: ``_`` before each capital after the first
    character unless one is already there, lower case, whitespace dropped,
    other non-alphanumerics as ``_``, ``_`` trimmed from the ends.

    >>> snake_case("HubQueue"), snake_case("DLQ"), snake_case("Queue"), snake_case("edge-gw 2"), snake_case("A_B")
    ('hub_queue', 'd_l_q', 'queue', 'edge_gw2', 'a_b')
    """
    chars: list[str] = []
    for i, c in enumerate(value):
        if c.isspace():
            continue
        if c.isupper():
            if i > 0 and chars and chars[-1] != "_":
                chars.append("_")
            chars.append(c.lower())
        elif c.isalnum():
            chars.append(c)
        else:
            chars.append("_")
    return "".join(chars).strip("_") or value


@record
class Lowered:
    """The model's nodes after the topology: bound queues replaced, synthesized ones and companions added."""

    topology: Topology | None
    nodes: list[Any]
    origins: dict[str, Path]  # each added node -> the topology node (or node) it comes from


def _here(t: TopologyNode, *field: str | int) -> Path:
    return ("topology", "nodes", t.index, *field)


def lower(topology: Topology | None, nodes: Sequence[Any], exprs: Mapping[str, Expr], declared: Iterable[str],
          node_paths: Mapping[str, Path], bins: int | None, at: Reporter) -> Lowered:
    """Synthesize, bind and route the queues of ``topology``; problems reported through ``at``."""
    declared_ids = list(dict.fromkeys(declared))
    known = set(declared_ids)
    taken = {n.lower() for n in declared_ids}
    by_id = {n.id: n for n in nodes}
    tnodes = topology.nodes if topology is not None else ()
    # 1. which node holds each topology node's queue depth (synthesized names chosen here)
    planned: dict[str, QueueNode] = {}  # topology id -> its queue node (synthesized or bound)
    bound: dict[str, str] = {}  # explicit queue node id -> topology id
    written_back: dict[str, str] = {}  # topology id -> queue id for semantics.queueDepth
    for t in tnodes:
        if is_sink(t):
            _not_computed(t, "it is a sink (FlowTime computes no queue for a sink)", at)
            continue
        qref = t.ref("queueDepth")
        requested = qref.node if qref is not None and qref.form in ("node", "series") else None
        if qref is not None and qref.form in ("file", "class"):
            continue  # reported with the other references
        if requested is not None and requested in known:
            node = by_id.get(requested)
            if isinstance(node, QueueNode):
                if requested in bound:
                    at.error(_here(t, "semantics", "queueDepth"), f"topology nodes '{bound[requested]}' and "
                             f"'{t.id}' both name queue node '{requested}' as their queueDepth")
                    continue
                bound[requested] = t.id
                if node.dispatch is not None and t.dispatch is not None:
                    at.error(_here(t, "dispatchSchedule"), f"queue node '{requested}' has its own "
                             f"dispatchSchedule; give it in one place (topology node '{t.id}' or the node)")
                    continue
                planned[t.id] = dataclasses.replace(
                    node, initial=t.initial or 0.0, dispatch=node.dispatch or t.dispatch, wip_limit=t.wip_limit,
                    wip_limit_series=t.wip_limit_series, base=snake_case(t.id), origin=t.id)
            else:  # an expression's initial depth: the initial-condition rule speaks of it
                _not_computed(t, f"its queueDepth '{requested}' is a {getattr(node, 'kind', 'other')} node that "
                              "computes the depth itself", at, initial=not isinstance(node, ExprNode))
            continue
        if t.kind not in QUEUE_KINDS:
            _not_computed(t, f"it is a {t.kind} node (only serviceWithBuffer, queue and dlq nodes have a queue "
                          "FlowTime computes)", at)
            continue
        arrivals = t.ref("arrivals")
        outflow = t.ref("served") or t.ref("capacity")
        if arrivals is None or outflow is None:
            missing = "semantics.arrivals" if arrivals is None else "semantics.served (or capacity)"
            at.error(_here(t, "semantics") if t.semantics else _here(t),
                     f"topology node '{t.id}' must define {missing} to synthesize its queue depth", key=True)
            continue
        if requested is not None:
            name = requested
        else:
            stem = f"{snake_case(t.id)}_queue"
            name, k = stem, 1
            while name.lower() in taken:
                name, k = f"{stem}_{k}", k + 1
        taken.add(name.lower())
        known.add(name)
        loss = t.ref("errors")
        planned[t.id] = QueueNode(name, _producer(arrivals, t), _producer(outflow, t),
                                  _producer(loss, t) if loss is not None else None, initial=t.initial or 0.0,
                                  dispatch=t.dispatch, wip_limit=t.wip_limit, wip_limit_series=t.wip_limit_series,
                                  base=snake_case(t.id), origin=t.id)
        written_back[t.id] = name
    # 2. every reference resolves (against the queues about to exist and their series too)
    for planned_q in planned.values():
        known.update(planned_q.series_names().values())
    for n in nodes:
        if isinstance(n, QueueNode) and n.id not in bound:
            known.update(n.series_names().values())
    echoes = retry_echoes(tnodes, known, at)
    sinks = sink_served(tnodes, known, taken, snake_case, at)
    bad_refs = _check_refs(topology, known, declared_ids, set(written_back), at) if topology is not None else set()
    caps = constraint_caps(topology, known, taken, snake_case, at)
    for tid, capped in caps.inflow.items():
        if tid in planned:
            _cap_inflow(planned, tid, capped, topology, at)
    out_nodes: list[Any] = []
    explicit: dict[str, QueueNode] = {}
    for n in nodes:
        if isinstance(n, QueueNode):
            mine = planned.get(bound[n.id]) if n.id in bound else n
            if mine is None or not _inputs_known(mine, known, declared_ids, node_paths.get(n.id), at):
                continue  # reported; a reader of it is not also told it is unknown (it is declared)
            explicit[mine.id] = mine
            out_nodes.append(mine)
        else:
            out_nodes.append(n)
    queues: dict[str, QueueNode] = {}  # topology id -> queue node that is computed
    added: list[QueueNode] = []
    for t in tnodes:
        if t.id not in planned:
            continue
        tq = planned[t.id]
        if tq.id in explicit:
            queues[t.id] = explicit[tq.id]
        elif t.id not in bad_refs and _inputs_known(tq, known, declared_ids, _here(t), at):
            queues[t.id] = tq
            added.append(tq)
    # 3. overflow routed into other queues, without loops
    routes = _routes(tnodes, queues, topology, at)
    extra: dict[str, list[str]] = {}
    for src, dst in routes.items():
        extra.setdefault(dst, []).append(queues[src].series_names()["overflow"])
    finite = {n.id for n in nodes if isinstance(n, ConstNode | PmfNode)}
    origins: dict[str, Path] = {}
    final: dict[str, QueueNode] = {}
    for tid, q in queues.items():
        q = dataclasses.replace(q, overflow_into=queues[routes[tid]].id if tid in routes else None,
                                extra_inflows=tuple(extra.get(tid, ())))
        final[q.id] = q
    for q in [*explicit.values(), *added]:
        q = final.get(q.id, q)
        own = {f"{q.stem}_wip_limit"} if q.wip_limit is not None and q.wip_limit_series is None else set()
        q = dataclasses.replace(q, finite=frozenset((finite | own) & (set(_inputs(q)) | own)))
        final[q.id] = q
    result: list[Any] = [final.get(n.id, n) if isinstance(n, QueueNode) else n for n in out_nodes]
    for q in added:
        result.append(final[q.id])
        origins[q.id] = _here(topology.node(q.origin)) if topology is not None and q.origin else ()
    for e in [*echoes, *sinks.nodes]:
        result.append(e)
        origins[e.id] = _here(topology.node(e.origin)) if topology is not None else ()
    for e in caps.nodes:
        result.append(e)
        origins[e.id] = caps.origins[e.id]
    emitted = set(declared_ids) | {q.id for q in final.values()} | {e.id for e in [*echoes, *sinks.nodes, *caps.nodes]}
    for q in [final[x] for x in [*explicit, *(a.id for a in added)]]:
        where = _here(topology.node(q.origin)) if topology is not None and q.origin else node_paths.get(q.id, ())
        for c in companions(q, bins or 1):
            if c.id in emitted:
                at.error(where, f"the series '{c.id}' FlowTime adds for queue '{q.id}' is already a node; rename "
                         "that node")
                continue
            emitted.add(c.id)
            result.append(c)
            origins[c.id] = where
    if topology is not None:
        nodes_t = tuple(_write_back(t, written_back.get(t.id), sinks.served.get(t.id)) for t in topology.nodes)
        topology = dataclasses.replace(topology, nodes=nodes_t)
        _initial_condition_rule(topology, by_id, exprs, node_paths, at)
        edges = edge_series(topology, emitted, at, routed_edges(topology, nodes))
        result.extend(edges.nodes)
        origins.update(edges.origins)
    return Lowered(topology, result, origins)


def _cap_inflow(planned: dict[str, QueueNode], tid: str, capped: str, topology: Topology | None,
                at: Reporter) -> None:
    """The member's queue takes its capped arrivals as inflow (a queue node that reads another inflow is left)."""
    q = planned[tid]
    assert topology is not None
    t = topology.node(tid)
    arrivals = t.ref("arrivals")
    if arrivals is not None and q.inflow == _producer(arrivals, t):
        planned[tid] = dataclasses.replace(q, inflow=capped)
    else:
        at.warn(_here(t, "constraints"), f"topology node '{tid}': its queue '{q.id}' reads inflow '{q.inflow}', not "
                "the node's arrivals, so the constraints' cap is not applied to it", key=True)


def routed_edges(topology: Topology, nodes: Sequence[Any]) -> dict[int, Expr]:
    """
    Edges out of a router take the routed amounts (engine-head.md §11): an edge from
    topology node R (a router node of that id in ``nodes``) into T carries what R routes
    into T's arrivals - that node's series, which routing replaces by the routed flow.
    """
    from flowtime.model.routers import RouterNode  # routers register after queues

    routers = {n.id: n for n in nodes if isinstance(n, RouterNode)}
    by_id = {t.id: t for t in topology.nodes}
    out: dict[int, Expr] = {}
    for i, e in enumerate(topology.edges):
        r, target = routers.get(e.source), by_id.get(e.target)
        arrivals = target.ref("arrivals") if target is not None else None
        if r is None or target is None or arrivals is None or arrivals.form not in ("node", "series"):
            continue
        if any(route.target == arrivals.node for route in r.routes):
            out[i] = Ref(arrivals.node)
    return out


def _producer(ref: SeriesRef, t: TopologyNode) -> str:
    return t.id if ref.form == "self" else ref.node


def _inputs(q: QueueNode) -> list[str]:
    names = [q.inflow, q.outflow, *([q.loss] if q.loss else [])]
    if q.dispatch is not None and q.dispatch.capacity:
        names.append(q.dispatch.capacity)
    if q.wip_limit_series:
        names.append(q.wip_limit_series)
    return names


def _inputs_known(q: QueueNode, known: set[str], ids: list[str], where: Path | None, at: Reporter) -> bool:
    ok = True
    for name in _inputs(q):
        if name not in known:
            at.error(where or (), f"queue '{q.id}' reads unknown node '{name}'{suggest(name, ids)}")
            ok = False
    return ok


def _not_computed(t: TopologyNode, why: str, at: Reporter, *, initial: bool = True) -> None:
    for field, given in (("initialCondition", t.initial if initial else None), ("dispatchSchedule", t.dispatch),
                         ("wipLimit", t.wip_limit), ("wipLimitSeries", t.wip_limit_series)):
        if given is not None and not (field == "initialCondition" and given == 0):
            at.warn(_here(t, field), f"topology node '{t.id}': {field} is not applied because {why}", key=True)


def _check_refs(topology: Topology, known: set[str], ids: list[str], synthesized: set[str],
                at: Reporter) -> set[str]:
    """Report every reference that does not resolve; the ids of topology nodes with such a reference."""
    bad: set[str] = set()

    def check(ref: SeriesRef, path: Path, owner: str, self_id: str | None, field: str) -> bool:
        if ref.form == "file":
            return ref.node in known  # one that could not be read is reported where it was read
        if ref.form == "class":
            at.error(path, f"{owner}: per-class references ({ref.text}) are not supported yet")
        else:
            name = self_id if ref.form == "self" and self_id is not None else ref.node
            if name in known:
                return True
            if field == "retryEcho":
                at.error(path, f"{owner}: retryEcho names '{name}', which is not a node, and there are no "
                         "semantics.failures or errors for FlowTime to echo: give one, or define the node")
            elif ref.form == "self":
                at.error(path, f"{owner}: {field} is `self`, but there is no node '{name}'")
            else:
                at.error(path, f"{owner}: {field} names unknown node '{name}'{suggest(name, ids)}")
        return False

    for t in topology.nodes:
        owner = f"topology node '{t.id}'"
        for field, v in t.semantics.items():
            skip = field == "queueDepth" and t.id in synthesized  # the name FlowTime gave its queue
            if isinstance(v, SeriesRef) and not skip and not check(v, _here(t, "semantics", field), owner, t.id,
                                                                    field):
                bad.add(t.id)
        for field, name in (("wipLimitSeries", t.wip_limit_series),
                            ("dispatchSchedule", t.dispatch.capacity if t.dispatch else None)):
            if name is not None and name not in known:
                at.error(_here(t, field), f"{owner}: {field} names unknown node '{name}'{suggest(name, ids)}")
                bad.add(t.id)
    for i, c in enumerate(topology.constraints):
        for field, v in c.semantics.items():
            if isinstance(v, SeriesRef) and field != "arrivals":  # unused: warned about with the constraint
                check(v, ("topology", "constraints", i, "semantics", field), f"constraint '{c.id}'", None, field)
    return bad


def _routes(tnodes: Sequence[TopologyNode], queues: Mapping[str, QueueNode], topology: Topology | None,
            at: Reporter) -> dict[str, str]:
    """Source topology id -> target topology id, for overflow routed into another queue (checked)."""
    ids = [t.id for t in tnodes]
    routes: dict[str, str] = {}
    for t in tnodes:
        if t.wip_overflow is None or t.id not in queues or not queues[t.id].has_limit:
            continue
        target = t.wip_overflow
        if target not in ids:
            at.error(_here(t, "wipOverflow"), f"topology node '{t.id}': wipOverflow names unknown topology node "
                     f"'{target}'{suggest(target, ids)}; give `loss` or a topology node id")
        elif target not in queues:
            at.error(_here(t, "wipOverflow"), f"topology node '{t.id}': wipOverflow target '{target}' has no queue "
                     "FlowTime computes (a serviceWithBuffer, queue or dlq node)")
        else:
            routes[t.id] = target
    reported: set[str] = set()
    for t in tnodes:  # each loop once, at the first of its nodes
        path, here = [t.id], t.id
        while here in routes and routes[here] not in path:
            here = routes[here]
            path.append(here)
        if here in routes and routes[here] == t.id and not reported.intersection(path):
            reported.update(path)
            at.error(_here(t, "wipOverflow"), "WIP overflow routing contains a cycle: " + " -> ".join([*path, t.id])
                     + "; overflow must end in a queue that sends it nowhere (loss)")
    for r in reported:
        routes.pop(r, None)
    return routes


def _write_back(t: TopologyNode, queue_id: str | None, served: SeriesRef | None = None) -> TopologyNode:
    semantics = dict(t.semantics)
    if queue_id is not None:
        semantics["queueDepth"] = SeriesRef(queue_id, "node", queue_id)
    if served is not None:
        semantics["served"] = served
    return t if semantics == dict(t.semantics) else dataclasses.replace(t, semantics=semantics)


def self_shift_column(e: Expr, name: str) -> int | None:
    """The column of a ``SHIFT(name, k)`` with k > 0 in ``e``, or None."""
    for n in walk(e):
        if (isinstance(n, Call) and n.name == "SHIFT" and len(n.args) == 2 and isinstance(n.args[0], Ref)
                and n.args[0].name == name and isinstance(n.args[1], Num) and n.args[1].value > 0):
            return n.column
    return None


def _initial_condition_rule(topology: Topology, by_id: Mapping[str, Any], exprs: Mapping[str, Expr],
                            node_paths: Mapping[str, Path], at: Reporter) -> None:
    """
    An expr node that reads its own past and stands for a topology node's
    queue (its id is the topology node's, or its queueDepth) needs that node's
    initialCondition, as in the reference (§3.5); other expressions may read
    their own past freely. The condition is a declaration: SHIFT still reads 0
    before the first bin, so a non-zero depth there is warned about.
    """
    for t in topology.nodes:
        qref = t.ref("queueDepth")
        names = dict.fromkeys([t.id, *([qref.node] if qref is not None and qref.form in ("node", "series") else [])])
        for name in names:
            node = by_id.get(name)
            if not isinstance(node, ExprNode) or name not in exprs:
                continue
            col = self_shift_column(exprs[name], name)
            path = (*node_paths.get(name, ()), "expr")
            if col is not None and t.initial is None:
                at.error(path, f"expr node '{name}' uses SHIFT on itself and stands for the queue of topology node "
                         f"'{t.id}', which has no initial condition: add `initialCondition: {{queueDepth: 0}}` "
                         f"to topology node '{t.id}' (column {col})")
            elif t.initial:
                at.warn(path, f"expr node '{name}' computes its own depth: initialCondition.queueDepth "
                        f"{t.initial:g} of topology node '{t.id}' is not added to it (SHIFT reads 0 before the "
                        "first bin); write the start value into the expression")


