"""
Shared capacity (``topology.constraints``): the arrivals each member may send on, as expressions.

A constraint has a capacity series (its ``semantics.served``); the topology
nodes that list it in ``constraints`` share it. In each bin, with ``A_i`` a
member's arrivals read as ``A_i' = MAX(0, A_i)`` (non-finite as 0, as a queue
reads its inputs) and ``D = sum(A_i')`` (``engine-head.md`` §8):

* capacity <= 0 or D <= 0: every member is allocated 0;
* D <= capacity: each member keeps ``A_i'``;
* otherwise member i gets ``capacity * A_i' / D``.

As in the reference's Rust engine, the cap applies to the *arrivals*: the
allocation is the series ``{snake(node)}_capped_{constraintId}`` and the
member's queue takes it as its inflow, so the queue's conservation
(in - out - loss) stays honest (decision 0022). A node in several constraints
is capped by them in the order ``topology.constraints`` declares them, each
capping the previous one's allocation (declaration order, not the node's own
list, so two nodes listing the same constraints differently cannot make a
loop). The capacity is read like a queue input (non-finite as 0). The
constraint's own ``arrivals`` is not used (nor by the reference); it is
warned about (``constraint_missing_arrivals``) when it names no series.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence

from flowtime.expr.syntax import BinOp, Call, Expr, Num, Ref
from flowtime.model.kinds import INTERNAL
from flowtime.model.queues import DerivedNode
from flowtime.model.sinks import is_sink
from flowtime.model.topology import QUEUE_KINDS, Path, Reporter, SeriesRef, Topology, TopologyNode
from flowtime.records import record

_UNSAFE = re.compile(r"[^\w.\-]")


@record
class Caps:
    """What the constraints add: the allocation series (and hidden demands), and each member's capped arrivals."""

    nodes: list[DerivedNode]
    inflow: dict[str, str]  # topology id -> the series its queue takes as inflow (the last allocation)
    origins: dict[str, Path]


def _read(name: str) -> Expr:
    """``name`` with non-finite values as 0 (``x - x`` is NaN exactly when x is not finite)."""
    r = Ref(name)
    return Call("IF", (BinOp("==", BinOp("-", r, r), Num(0.0)), r, Num(0.0)))


def _producer(ref: SeriesRef | None, t: TopologyNode) -> str | None:
    if ref is None:
        return None
    if ref.form == "self":
        return t.id
    return ref.node if ref.form in ("node", "series", "file") and ref.node else None


def allocation(arrivals: str, demand: str, capacity: str) -> Expr:
    """One member's allocation: ``IF(C > 0, IF(D > 0, IF(D <= C, A', C * A' / D), 0), 0)``."""
    a = Call("MAX", (Num(0.0), _read(arrivals)))
    c = _read(capacity)
    d = Ref(demand)
    share = BinOp("/", BinOp("*", c, a), d)
    within = Call("IF", (BinOp("<=", d, c), a, share))
    return Call("IF", (BinOp(">", c, Num(0.0)), Call("IF", (BinOp(">", d, Num(0.0)), within, Num(0.0))), Num(0.0)))


def constraint_caps(topology: Topology | None, known: set[str], taken: set[str], snake: Callable[[str], str],
                    at: Reporter) -> Caps:
    """Lower every constraint; ``known`` and ``taken`` (lower-cased) gain the ids added."""
    caps = Caps([], {}, {})
    if topology is None or not topology.constraints:
        return caps
    for i, c in enumerate(topology.constraints):
        here: Path = ("topology", "constraints", i)
        members = [t for t in topology.nodes if c.id in t.constraints]
        arrivals = c.semantics.get("arrivals")
        if not isinstance(arrivals, SeriesRef) or _producer(arrivals, _NOBODY) not in known:
            at.warn((*here, "semantics", "arrivals") if arrivals is not None else here,
                    f"constraint_missing_arrivals: constraint '{c.id}' has no arrivals series"
                    f"{f' ({arrivals.text!r} names none)' if isinstance(arrivals, SeriesRef) else ''}; it is not "
                    "used (each member's own arrivals are)")
        capacity = _producer(c.semantics.get("served"), _NOBODY)
        if capacity is None or capacity not in known:
            continue  # no served is reported where constraints are read, an unknown one with the references
        if not members:
            at.warn(here, f"constraint '{c.id}' has no members (no topology node lists it in `constraints`); "
                    "it caps nothing")
            continue
        inputs = _member_inputs(members, c.id, caps.inflow, known, at)
        if inputs is None:
            continue
        demand = f"{c.id}{INTERNAL}demand"
        total: Expr | None = None
        for _t, a in inputs:
            term = Call("MAX", (Num(0.0), _read(a)))
            total = term if total is None else BinOp("+", total, term)
        assert total is not None
        caps.nodes.append(DerivedNode(demand, total, "constraint_demand", members[0].id))
        caps.origins[demand] = here
        for t, a in inputs:
            name = _fresh(f"{snake(t.id)}_capped_{_UNSAFE.sub('_', c.id)}", taken)
            known.add(name)
            caps.nodes.append(DerivedNode(name, allocation(a, demand, capacity), "capped_arrivals", t.id))
            caps.origins[name] = ("topology", "nodes", t.index)
            caps.inflow[t.id] = name
    return caps


_NOBODY = TopologyNode("", "service")


def _member_inputs(members: Sequence[TopologyNode], cid: str, current: dict[str, str], known: set[str],
                   at: Reporter) -> list[tuple[TopologyNode, str]] | None:
    """Each member and the series it brings to this constraint (its latest allocation, else arrivals), or None."""
    out: list[tuple[TopologyNode, str]] = []
    ok = True
    for t in members:
        a = current.get(t.id) or _producer(t.ref("arrivals"), t)
        if a is None:
            if t.ref("arrivals") is None and t.kind not in QUEUE_KINDS and not is_sink(t):
                at.error(("topology", "nodes", t.index, "constraints"), f"topology node '{t.id}' is in constraint "
                         f"'{cid}' but has no semantics.arrivals to cap", key=True)
            ok = False  # otherwise reported where its arrivals are checked
        elif a not in known:
            ok = False  # reported with the other references
        else:
            out.append((t, a))
    return out if ok else None


def _fresh(stem: str, taken: set[str]) -> str:
    """``stem``, or ``stem_1``, ``stem_2`` ... when that is taken (compared lower-cased, as queue names are)."""
    name, k = stem, 1
    while name.lower() in taken:
        name, k = f"{stem}_{k}", k + 1
    taken.add(name.lower())
    return name
