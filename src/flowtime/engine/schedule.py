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

``satellites`` names the small acyclic nodes a standalone loop's step may
compute with it (its compiled kernel, bin by bin: 0029).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
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
    reads = _reads(graph, asts, comp_of)
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


def satellites(graph: ModelGraph, lvs: list[Level], asts: Mapping[str, Expr],
               compilable: Callable[[Expr], bool]) -> dict[int, tuple[list[str], list[str]]]:
    """
    For each loop standing alone at its level (a component index): the small
    acyclic nodes its compiled step may compute with it, bin by bin, as
    ``(heads, tails)`` in evaluation order. A tail reads that loop (and
    otherwise only what is computed before the loop's step); a head is read by
    it, and by nothing computed before the step or in another's. So moving
    them into the step changes no one's inputs, only where they are computed.

    >>> from flowtime.model.load import load_model
    >>> from flowtime.model.graph import graph_of
    >>> g = graph_of(load_model("schemaVersion: 1\\ngrid: {bins: 3, binSize: 1, binUnit: hours}\\nnodes:\\n"
    ...     "  - {id: a, values: [1, 2, 3]}\\n"
    ...     "  - {id: cap, kind: expr, expr: 'MIN(a, 2)'}\\n"
    ...     "  - {id: q, kind: expr, expr: 'MAX(0, SHIFT(q, 1) + a - cap)'}\\n"
    ...     "  - {id: late, kind: expr, expr: 'q - cap'}\\n").model)
    >>> asts = loop_expressions(g)
    >>> satellites(g, levels(g, asts), asts, lambda e: True)
    {0: (['cap'], ['late'])}
    """
    comp_of = {m: i for i, c in enumerate(graph.components) for m in c}
    if not comp_of:
        return {}
    alone = {c: i for i, lv in enumerate(lvs) for c in lv.alone}
    rank: dict[str, int] = {}  # a node's level (a loop member's is its loop's)
    for i, lv in enumerate(lvs):
        rank.update(dict.fromkeys(lv.nodes, i))
        for c in [*lv.alone, *(c for w in lv.waves for c in w)]:
            rank.update(dict.fromkeys(graph.components[c], i))
    reads = _reads(graph, asts, comp_of)
    readers: dict[str, list[str]] = {n: [] for n in graph.order}
    for n in graph.order:
        for d in reads[n]:
            readers[d].append(n)
    owner: dict[str, int] = {}  # satellite -> its loop
    tails: dict[int, list[str]] = {}
    heads: dict[int, list[str]] = {}

    def fits(n: str) -> bool:
        e = graph.exprs.get(n)
        return (e is not None and n not in comp_of and sum(1 for _ in walk(e)) <= INLINE_LIMIT
                and compilable(e))

    def loop_of(names: Mapping[str, int] | list[str]) -> int | None:
        """The one alone-standing loop among ``names`` (members or satellites), if exactly one."""
        found = {comp_of[d] if d in comp_of else owner[d] for d in names if d in comp_of or d in owner}
        return found.pop() if len(found) == 1 and next(iter(found)) in alone else None

    for n in graph.order:  # tails: inputs first, so a tail may read an earlier tail
        home = loop_of(reads[n]) if fits(n) else None
        if home is None:
            continue
        at = alone[home]
        if all(comp_of.get(d, owner.get(d)) == home
               or (d not in owner and (rank[d] < at if d in comp_of else rank[d] <= at)) for d in reads[n]):
            owner[n] = home
            tails.setdefault(home, []).append(n)
    for n in reversed(graph.order):  # heads: readers first, so a head may be read by a later head
        home = loop_of(readers[n]) if n not in owner and fits(n) else None
        if home is None:
            continue
        at = alone[home]
        if (all(comp_of.get(r, owner.get(r)) == home or (r not in owner and rank[r] > at) for r in readers[n])
                and not any(comp_of.get(d) == home or d in tails.get(home, ()) for d in reads[n])):
            owner[n] = home
            heads.setdefault(home, []).append(n)
    return {c: (heads.get(c, [])[::-1], tails.get(c, [])) for c in sorted({*heads, *tails})}


def _reads(graph: ModelGraph, asts: Mapping[str, Expr], comp_of: Mapping[str, int]) -> dict[str, Mapping[str, int]]:
    """What each node reads when evaluated, and through how much lag: loop members as they read with nodes inlined."""
    return {n: (references_with_lag(asts[n]) if n in comp_of and asts[n] is not graph.exprs[n] else graph.lags[n])
            for n in graph.order}


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
