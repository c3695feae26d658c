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
"""

from __future__ import annotations

from dataclasses import dataclass, field

from flowtime.engine.graph import Graph


@dataclass
class Level:
    nodes: list[str] = field(default_factory=list)  # acyclic nodes, in evaluation order
    alone: list[int] = field(default_factory=list)  # components (indexes into graph.components)
    waves: list[list[int]] = field(default_factory=list)  # linked components, in evaluation order


def levels(graph: Graph) -> list[Level]:
    """
    The level schedule of ``graph``, in order.

    >>> from flowtime.model.load import load_model
    >>> from flowtime.engine.graph import compile_model
    >>> m = load_model("schemaVersion: 1\\ngrid: {bins: 3, binSize: 1, binUnit: hours}\\nnodes:\\n"
    ...     "  - {id: a, values: [1, 2, 3]}\\n"
    ...     "  - {id: q1, kind: expr, expr: 'SHIFT(q1, 1) + a'}\\n"
    ...     "  - {id: q2, kind: expr, expr: 'SHIFT(q2, 1) + SHIFT(q1, 1)'}\\n"
    ...     "  - {id: q3, kind: expr, expr: 'SHIFT(q3, 1) + a'}\\n"
    ...     "  - {id: total, kind: expr, expr: q2 + q3}\\n").model
    >>> [(lv.nodes, lv.alone, lv.waves) for lv in levels(compile_model(m))]
    [(['a'], [], []), ([], [2], [[0, 1]]), (['total'], [], [])]
    """
    comp_of = {m: i for i, c in enumerate(graph.components) for m in c}
    unit_of: dict[str, int | str] = {n: comp_of.get(n, n) for n in graph.order}
    level: dict[int | str, int] = {}
    links: dict[int, set[int]] = {}  # component -> components it reads on its own level
    # graph.order is topological over units, each unit's members together.
    for n in graph.order:
        u = unit_of[n]
        lv = level.get(u, 0)
        for d, lag in graph.lags[n].items():
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
        for d in graph.lags[n]:
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
