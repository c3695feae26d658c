"""
Per-class series and routed flows, lowered to expressions over the model's nodes.

For each node N that flow of class C reaches there is a hidden node
``N#class#C`` (``class_part_id``): an expression tree, evaluated in the same
plan as everything else, so one evaluation gives totals and classes, and
overrides, sweeps and batching see them (0021). The rules (after the
reference's ``ClassContributionBuilder``, ``engine-head.md`` §6), for a
subexpression ``e`` whose total is ``T`` (``Ref(N)`` at the top, ``e`` inside):

* a traffic source: its arrivals' classes, by ``rate_c / Σ rate``;
* ``a ± b``: class by class (a class-less side adds nothing), then normalised
  to the total: ``raw_c · T / Σ raw`` - this is what splits a queue's
  class-less initial depth by the classes' bin-0 inflow;
* ``a · k`` (k class-less) and ``-a``: scaled; ``SHIFT`` per class; ``CONV``
  per class, normalised;
* ``MIN``/``MAX``/``IF``: the winning (chosen) operand's mix, scaled to ``T``;
* anything else reading a class-aware operand (``a · b``, ``a / b``, other
  functions, comparisons): the first such operand's mix scaled to ``T``.

A mix is ``a_c / K(a)``, ``K(a)`` being the sum of a's class parts (written as
a small expression of its own, not as the parts added up, so trees stay linear
in the expression's size). Where ``K`` is 0 and the total is not - flow that no
class carries, such as a constant added to a series that is still 0 - every
class part is 0: per-class parts add up to the total in every bin where any
class carries flow.

Routers (``model.routers``) are applied here too: a target's expression is
replaced by its routed flow, and its class parts are the routed classes.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from flowtime.expr.functions import suggest
from flowtime.expr.syntax import Array, BinOp, Call, Expr, Num, Ref, Unary, walk
from flowtime.model import kinds
from flowtime.model.classes import Arrival, FlowClass
from flowtime.model.kinds import INTERNAL
from flowtime.model.queues import DerivedNode
from flowtime.model.routers import RouterNode
from flowtime.model.schema import ConstNode, ExprNode
from flowtime.model.shared_parts import share_parts
from flowtime.model.topology import Path, Reporter
from flowtime.records import record

CLASS_PART = f"{kinds.INTERNAL}class{kinds.INTERNAL}"
Parts = dict[str, Expr]


def class_part_id(node_id: str, class_id: str) -> str:
    """
    >>> class_part_id("served", "Order")
    'served#class#Order'
    """
    return f"{node_id}{CLASS_PART}{class_id}"


def split_class_part_id(node_id: str) -> tuple[str, str] | None:
    """(node, class) of a class part's id, else None."""
    node, sep, cls = node_id.rpartition(CLASS_PART)
    return (node, cls) if sep and node and cls else None


@record
class Decomposed:
    nodes: list[Any]
    origins: dict[str, Path]  # each added node -> where its node is written
    classes: dict[str, tuple[str, ...]]  # node -> the classes that reach it (declared order)


def decompose(nodes: Sequence[Any], exprs: Mapping[str, Expr], classes: Sequence[FlowClass],
              arrivals: Sequence[Arrival], where: Callable[[str], Path], at: Reporter) -> Decomposed:
    """Apply the routers, then add the class parts of every node classes reach (problems through ``at``)."""
    order = [c.id for c in classes]
    all_exprs = kinds.expressions(nodes, dict(exprs))
    by_id = {n.id: n for n in nodes}
    routers = [n for n in nodes if isinstance(n, RouterNode) and _router_ok(n, by_id, order, where, at)]
    routed: dict[str, list[tuple[RouterNode, int]]] = {}
    for r in routers:
        for i, route in enumerate(r.routes):
            routed.setdefault(route.target, []).append((r, i))
    sources: dict[str, dict[str, float]] = {}
    for a in arrivals:
        sources.setdefault(a.node_id, {})
        sources[a.node_id][a.class_id] = sources[a.node_id].get(a.class_id, 0.0) + a.weight

    reads = {n: sorted({x.name for x in walk(e) if isinstance(x, Ref)}) for n, e in all_exprs.items()}
    for target, via in routed.items():
        reads[target] = [r.source for r, _ in via]
    reach = _reach(by_id, reads, sources, routed, order)

    out: list[Any] = []
    origins: dict[str, Path] = {}
    parts_of: dict[str, Parts] = {}
    for n in nodes:
        if n.id in routed:
            tree, parts = _routed(n.id, routed[n.id], reach, where, at)
            _discarded(n, routed[n.id], where, at)
            out.append(DerivedNode(n.id, tree, "routed", routed[n.id][0][0].id))
            origins[n.id] = where(n.id)
            parts_of[n.id] = parts
        else:
            out.append(n)
    splitter = _Splitter(reach)
    for n in nodes:
        if not reach.get(n.id) or n.id in parts_of:
            continue
        if n.id in sources:
            parts_of[n.id] = _source_parts(n.id, sources[n.id], order)
        elif n.id in all_exprs:
            got = splitter.split(all_exprs[n.id], Ref(n.id))
            parts_of[n.id] = got[0] if got is not None else {}
    written: list[tuple[str, str, Expr]] = []
    owner: dict[str, str] = {}
    for node_id, parts in parts_of.items():
        for c in reach[node_id]:
            pid = class_part_id(node_id, c)
            written.append((pid, node_id, parts.get(c, Num(0.0))))
            owner[pid] = node_id
    rewritten, shared = share_parts(written)
    for sid, tree in shared:
        node_id = sid.split(INTERNAL, 1)[0]
        out.append(DerivedNode(sid, tree, "class", node_id))
        origins[sid] = where(node_id)
    for pid, tree in rewritten:
        out.append(DerivedNode(pid, tree, "class", owner[pid]))
        origins[pid] = where(owner[pid])
    return Decomposed(out, origins, {n: tuple(cs) for n, cs in reach.items() if cs})


def _router_ok(r: RouterNode, by_id: Mapping[str, Any], classes: Sequence[str], where: Callable[[str], Path],
               at: Reporter) -> bool:
    here = where(r.id)
    ids = list(by_id)
    ok = True
    if r.source not in by_id:
        at.error((*here, *r.field_path("inputs", "queue")), f"router '{r.id}' reads unknown node '{r.source}'"
                 f"{suggest(r.source, tuple(ids))}")
        ok = False
    for i, route in enumerate(r.routes):
        path = (*here, *r.field_path("routes", i))
        if route.target not in by_id:
            at.error((*path, "target"), f"unknown router target '{route.target}'{suggest(route.target, tuple(ids))}"
                     f" in router '{r.id}'")
            ok = False
        elif route.target in (r.id, r.source):
            what = "the router itself" if route.target == r.id else f"its own source '{r.source}'"
            at.error((*path, "target"), f"router '{r.id}' routes into {what}: a cycle; route into another node")
            ok = False
        for c in route.classes:
            if c not in classes:
                hint = f"{suggest(c, tuple(classes))}; declared: {', '.join(classes)}" if classes else \
                    "; no classes are declared (add a top-level `classes:` list)"
                at.error((*path, "classes"), f"router '{r.id}' routes undeclared class '{c}'{hint}")
                ok = False
    return ok


def _reach(by_id: Mapping[str, Any], reads: Mapping[str, Sequence[str]], sources: Mapping[str, Mapping[str, float]],
           routed: Mapping[str, Sequence[tuple[RouterNode, int]]], order: Sequence[str]) -> dict[str, list[str]]:
    """Which classes reach each node: a worklist over readers (feedback loops included)."""
    readers: dict[str, list[str]] = {}
    for n, srcs in reads.items():
        for s in srcs:
            readers.setdefault(s, []).append(n)
    reach: dict[str, set[str]] = {n: set(sources.get(n, ())) for n in by_id}
    work = list(sources)
    while work:
        for reader in readers.get(work.pop(), ()):
            if reader in sources:
                continue  # a traffic source's classes are its arrivals'
            if reader in routed:
                new: set[str] = set()
                for r, i in routed[reader]:
                    have = reach.get(r.source, set())
                    route = r.routes[i]
                    new |= have & set(route.classes) if route.by_class else have - set(r.claimed())
            else:
                new = set().union(*(reach.get(s, set()) for s in reads[reader]))
            if not new <= reach[reader]:
                reach[reader] |= new
                work.append(reader)
    return {n: [c for c in order if c in cs] for n, cs in reach.items()}


def _source_parts(node_id: str, rates: Mapping[str, float], order: Sequence[str]) -> Parts:
    cs = [c for c in order if c in rates]
    if len(cs) == 1:
        return {cs[0]: Ref(node_id)}
    total = sum(rates[c] for c in cs)
    return {c: BinOp("*", Ref(node_id), Num(rates[c] / total if total > 0 else 1.0 / len(cs))) for c in cs}


def _routed(target: str, via: Sequence[tuple[RouterNode, int]], reach: Mapping[str, Sequence[str]],
            where: Callable[[str], Path], at: Reporter) -> tuple[Expr, Parts]:
    """The flow routed into ``target`` and its class parts."""
    flows: list[Expr] = []
    parts: dict[str, list[Expr]] = {}
    for r, i in via:
        route = r.routes[i]
        have = reach.get(r.source, [])
        if route.by_class:
            if not have:
                at.error((*where(r.id), *r.field_path("routes", i, "classes")),
                         f"router '{r.id}' routes classes of '{r.source}', which carries no classes (no traffic "
                         "arrival reaches it); use weights, or add traffic arrivals upstream")
            mine = [c for c in have if c in route.classes]
            flows.append(_add([Ref(class_part_id(r.source, c)) for c in mine]))
            for c in mine:
                parts.setdefault(c, []).append(Ref(class_part_id(r.source, c)))
        else:
            claimed = [c for c in have if c in r.claimed()]
            rest: Expr = Ref(r.source)
            if claimed:
                rest = BinOp("-", rest, _add([Ref(class_part_id(r.source, c)) for c in claimed]))
            f = r.fraction(route)
            flows.append(rest if f == 1.0 else BinOp("*", rest, Num(f)))
            for c in have:
                if c not in claimed:
                    p: Expr = Ref(class_part_id(r.source, c))
                    parts.setdefault(c, []).append(p if f == 1.0 else BinOp("*", p, Num(f)))
    return _add(flows), {c: _add(ps) for c, ps in parts.items()}


def _discarded(node: Any, via: Sequence[tuple[RouterNode, int]], where: Callable[[str], Path],
               at: Reporter) -> None:
    """Warn when a router target computed something of its own (a placeholder `0` is the usual form)."""
    trivial = (isinstance(node, ConstNode) and not node.values.any()) or (
        isinstance(node, ExprNode) and node.expr.strip() in ("0", "0.0"))
    if not trivial:
        routers = ", ".join(sorted({r.id for r, _ in via}))
        at.warn(where(node.id), f"node '{node.id}' is a target of router {routers}: its series is the routed flow, "
                f"its own {getattr(node, 'kind', 'value')} is not used")


def _add(terms: Sequence[Expr]) -> Expr:
    if not terms:
        return Num(0.0)
    e = terms[0]
    for t in terms[1:]:
        e = BinOp("+", e, t)
    return e


class _Splitter:
    """An expression's class parts, following the rules of the module docstring."""

    def __init__(self, reach: Mapping[str, Sequence[str]]) -> None:
        self.reach = reach

    def split(self, e: Expr, total: Expr) -> tuple[Parts, Expr] | None:
        """(parts, K) for ``e`` whose total is ``total``; None when no class reaches ``e``."""
        if isinstance(e, Ref):
            cs = self.reach.get(e.name, ())
            if not cs:
                return None
            parts: Parts = {c: Ref(class_part_id(e.name, c)) for c in cs}
            return parts, _add(list(parts.values()))
        if isinstance(e, Num | Array):
            return None
        if isinstance(e, Unary):
            got = self.split(e.operand, e.operand)
            if got is None or e.op == "+":
                return got
            return {c: Unary("-", p) for c, p in got[0].items()}, Unary("-", got[1])
        if isinstance(e, BinOp):
            return self._binop(e, total)
        assert isinstance(e, Call)
        return self._call(e, total)

    def _binop(self, e: BinOp, total: Expr) -> tuple[Parts, Expr] | None:
        a, b = self.split(e.left, e.left), self.split(e.right, e.right)
        if a is None and b is None:
            return None
        if e.op in ("+", "-"):
            raw: Parts = {}
            for side, got in ((0, a), (1, b)):
                if got is None:
                    continue
                for c, p in got[0].items():
                    term = Unary("-", p) if side == 1 and e.op == "-" else p
                    raw[c] = BinOp(e.op, raw[c], p) if c in raw else term
            if a is not None and b is not None:
                s: Expr = BinOp(e.op, a[1], b[1])
            else:
                s = a[1] if a is not None else (Unary("-", b[1]) if e.op == "-" else b[1])  # type: ignore[index]
            return self._normalised(raw, s, total)
        if e.op == "*" and (a is None or b is None):
            if a is not None:
                return {c: BinOp("*", p, e.right) for c, p in a[0].items()}, BinOp("*", a[1], e.right)
            assert b is not None
            return {c: BinOp("*", e.left, p) for c, p in b[0].items()}, BinOp("*", e.left, b[1])
        return self._mix(a if a is not None else b, total)  # type: ignore[arg-type]

    def _call(self, e: Call, total: Expr) -> tuple[Parts, Expr] | None:
        args = [self.split(x, x) for x in e.args]
        if all(g is None for g in args):
            return None
        if e.name == "SHIFT" and args[0] is not None and len(e.args) == 2:
            k = e.args[1]
            return ({c: Call("SHIFT", (p, k)) for c, p in args[0][0].items()},
                    Call("SHIFT", (args[0][1], k)))
        if e.name == "CONV" and args[0] is not None and len(e.args) == 2:
            kern = e.args[1]
            raw: Parts = {c: Call("CONV", (p, kern)) for c, p in args[0][0].items()}
            return self._normalised(raw, Call("CONV", (args[0][1], kern)), total)
        if e.name in ("MIN", "MAX"):
            return self._chosen([(BinOp("==", x, total), g) for x, g in zip(e.args, args, strict=True)], total)
        if e.name == "IF" and len(e.args) == 3 and (args[1] is not None or args[2] is not None):
            return self._chosen([(e.args[0], args[1]), (Num(1.0), args[2])], total)
        first = next(g for g in args if g is not None)
        return self._mix(first, total)

    @staticmethod
    def _normalised(raw: Parts, s: Expr, total: Expr) -> tuple[Parts, Expr]:
        """``raw_c · T / S``: parts that add up to T (all 0 where S is 0)."""
        return {c: BinOp("/", BinOp("*", p, total), s) for c, p in raw.items()}, BinOp("*", total, BinOp("/", s, s))

    @staticmethod
    def _mix(got: tuple[Parts, Expr], total: Expr) -> tuple[Parts, Expr]:
        """The operand's mix scaled to ``total``."""
        parts, k = got
        return {c: BinOp("/", BinOp("*", p, total), k) for c, p in parts.items()}, BinOp("*", total, BinOp("/", k, k))

    def _chosen(self, options: Sequence[tuple[Expr, tuple[Parts, Expr] | None]], total: Expr
                ) -> tuple[Parts, Expr]:
        """
        The mix of the first option whose condition holds (the last one otherwise);
        a class-less option takes the mix of the first class-aware one.
        """
        fallback = next(g for _, g in options if g is not None)
        aware = [g for _, g in options if g is not None]
        if len(aware) == 1:
            return self._mix(fallback, total)
        classes = list(dict.fromkeys(c for g in aware for c in g[0]))

        def pick(value: Callable[[tuple[Parts, Expr]], Expr]) -> Expr:
            e = value(options[-1][1] or fallback)
            for cond, g in reversed(options[:-1]):
                e = Call("IF", (cond, value(g or fallback), e))
            return e

        def share(c: str) -> Callable[[tuple[Parts, Expr]], Expr]:
            return lambda g: BinOp("/", g[0][c], g[1]) if c in g[0] else Num(0.0)

        parts: Parts = {c: BinOp("*", pick(share(c)), total) for c in classes}
        return parts, BinOp("*", total, pick(lambda g: BinOp("/", g[1], g[1])))
