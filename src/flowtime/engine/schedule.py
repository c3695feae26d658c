"""
Graph -> levels: which nodes and feedback loops can be computed together.

A node's level is the longest path to it from the sources, where an edge costs
one level - except a *lagged* edge between two feedback components, which costs
none: a component reading another's past (``SHIFT(outflow_1, 1)``) can step
through the bins alongside it. So a chain of N delays sits on one level, as one
wave stepped together, instead of N levels stepped one after another.

Within a level, only feedback components are ever joined by edges, and those
are lagged: components joined that way (directly or through others) form a
*wave*; a component joined to none stands *alone* (and may batch with others of
its shape).

A small node between two loops (``arrivals_2 = SHIFT(served_1, 2)``) would
still put them on different levels, so loop expressions are read with such
nodes written in place (``loop_expressions``): the loop then reads
``SHIFT(served_1, 2)`` itself, and the node is still computed for its own sake.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from flowtime.expr.syntax import BinOp, Call, Expr, Ref, Unary, fold, walk
from flowtime.model.deps import references_with_lag
from flowtime.model.graph import ModelGraph

INLINE_LIMIT = 64  # syntax nodes: a bigger node is read as a finished series, not recomputed per bin


@dataclass
class Level:
    nodes: list[str] = field(default_factory=list)  # acyclic nodes, in evaluation order
    alone: list[int] = field(default_factory=list)  # components (indexes into graph.components)
    waves: list[list[int]] = field(default_factory=list)  # linked components, in evaluation order


def _substitute(e: Expr, inline: dict[str, Expr]) -> Expr:
    """``e`` with each reference to a node in ``inline`` replaced by that node's expression."""

    def fn(node: Expr, kids: list[Expr]) -> Expr:
        if isinstance(node, Ref):
            return inline.get(node.name, node)
        if isinstance(node, Unary):
            return Unary(node.op, kids[0], node.column)
        if isinstance(node, BinOp):
            return BinOp(node.op, kids[0], kids[1], node.column)
        if isinstance(node, Call):
            return Call(node.name, tuple(kids), node.column)
        return node

    return fold(e, fn)


def loop_expressions(graph: ModelGraph) -> dict[str, Expr]:
    """
    Every node's expression as loops read it: in a loop member's, each small
    acyclic node that reads a loop (directly or through another such node) is
    written in place. Pure expressions make that exact: the same operations on
    the same numbers, only computed where the loop needs them.

    >>> from flowtime.model.load import load_model
    >>> from flowtime.model.graph import graph_of
    >>> from flowtime.expr.syntax import to_text
    >>> g = graph_of(load_model("schemaVersion: 1\\ngrid: {bins: 3, binSize: 1, binUnit: hours}\\nnodes:\\n"
    ...     "  - {id: a, values: [1, 2, 3]}\\n"
    ...     "  - {id: q1, kind: expr, expr: 'SHIFT(q1, 1) + a'}\\n"
    ...     "  - {id: in2, kind: expr, expr: 'SHIFT(q1, 2) * 0.5'}\\n"
    ...     "  - {id: q2, kind: expr, expr: 'SHIFT(q2, 1) + in2'}\\n").model)
    >>> to_text(loop_expressions(g)["q2"])
    'SHIFT(q2, 1) + SHIFT(q1, 2) * 0.5'
    """
    members = {m for c in graph.components for m in c}
    if not members:
        return dict(graph.exprs)
    inline: dict[str, Expr] = {}
    for n in graph.order:  # inputs first, so a node's own inlined form is ready
        if n in members or n not in graph.exprs:
            continue
        e = graph.exprs[n]
        refs = references_with_lag(e)
        if not any(r in members or r in inline for r in refs):
            continue
        e = _substitute(e, inline) if any(r in inline for r in refs) else e
        if sum(1 for _ in walk(e)) <= INLINE_LIMIT:
            inline[n] = e
    out = dict(graph.exprs)
    for m in members:
        if any(r in inline for r in graph.lags[m]):
            out[m] = _substitute(graph.exprs[m], inline)
    return out


def levels(graph: ModelGraph, asts: dict[str, Expr] | None = None) -> list[Level]:
    """
    The level schedule of ``graph``, in order; loop members read what their
    expressions in ``asts`` read (by default ``loop_expressions(graph)``).

    >>> from flowtime.model.load import load_model
    >>> from flowtime.model.graph import graph_of
    >>> m = load_model("schemaVersion: 1\\ngrid: {bins: 3, binSize: 1, binUnit: hours}\\nnodes:\\n"
    ...     "  - {id: a, values: [1, 2, 3]}\\n"
    ...     "  - {id: q1, kind: expr, expr: 'SHIFT(q1, 1) + a'}\\n"
    ...     "  - {id: q2, kind: expr, expr: 'SHIFT(q2, 1) + SHIFT(q1, 1)'}\\n"
    ...     "  - {id: q3, kind: expr, expr: 'SHIFT(q3, 1) + a'}\\n"
    ...     "  - {id: total, kind: expr, expr: q2 + q3}\\n").model
    >>> [(lv.nodes, lv.alone, lv.waves) for lv in levels(graph_of(m))]
    [(['a'], [], []), ([], [2], [[0, 1]]), (['total'], [], [])]
    """
    asts = loop_expressions(graph) if asts is None else asts
    comp_of = {m: i for i, c in enumerate(graph.components) for m in c}
    unit_of: dict[str, int | str] = {n: comp_of.get(n, n) for n in graph.order}
    # What each node reads, and through how much lag: loop members as they read with nodes inlined.
    reads = {n: (references_with_lag(asts[n]) if n in comp_of and asts[n] is not graph.exprs[n] else graph.lags[n])
             for n in graph.order}
    level: dict[int | str, int] = {}
    links: dict[int, set[int]] = {}  # component -> components it reads on its own level
    # graph.order is topological over units, each unit's members together; an
    # inlined node's inputs come before it, so before its readers too.
    for n in graph.order:
        u = unit_of[n]
        lv = level.get(u, 0)
        for d, lag in reads[n].items():
            du = unit_of[d]
            if du == u:
                continue
            free = isinstance(u, int) and isinstance(du, int) and lag >= 1
            lv = max(lv, level[du] + (0 if free else 1))
        level[u] = lv
    for n in graph.order:
        u = unit_of[n]
        if not isinstance(u, int):
            continue
        for d in reads[n]:
            du = unit_of[d]
            if isinstance(du, int) and du != u and level[du] == level[u]:
                links.setdefault(u, set()).add(du)
                links.setdefault(du, set()).add(u)

    rank = {n: i for i, n in enumerate(graph.order)}
    out: dict[int, Level] = {}
    seen: set[int | str] = set()
    wave_of: dict[int, list[int]] = {}
    for n in graph.order:
        u = unit_of[n]
        if u in seen:
            continue
        seen.add(u)
        at = out.setdefault(level[u], Level())
        if isinstance(u, str):
            at.nodes.append(u)
        elif u not in links:
            at.alone.append(u)
        elif u not in wave_of:
            wave = sorted(_linked(u, links), key=lambda c: rank[graph.components[c][0]])
            at.waves.append(wave)
            for c in wave:
                wave_of[c] = wave
    return [out[k] for k in sorted(out)]


def _linked(start: int, links: dict[int, set[int]]) -> set[int]:
    """Every component joined to ``start``."""
    found = {start}
    stack = [start]
    while stack:
        for nxt in links[stack.pop()]:
            if nxt not in found:
                found.add(nxt)
                stack.append(nxt)
    return found
