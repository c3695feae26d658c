"""
The model's DAG as inline SVG, laid out in layers from Engine's ``/v1/graph``.

A node's layer is one more than the deepest of its inputs (lagged self
references through SHIFT are ignored, so the drawing stays acyclic); nodes in
a layer are ordered by the mean position of their inputs to cut crossings.
No JavaScript: the SVG carries ``<title>`` tooltips for expressions.
Series FlowTime keeps for itself (ids with ``#``: a queue's seed and raw
depth, class parts, routed flows) are not drawn: ``X#...`` stands for node X,
and an edge through a node's own hidden parts is drawn between the nodes it
joins, with the smallest lag along it.

>>> g = {"nodes": [{"id": "a", "kind": "const", "inputs": []},
...                {"id": "b", "kind": "expr", "inputs": ["a"], "expr": "a * 2"}],
...      "order": ["a", "b"]}
>>> layout(g).layers
[['a'], ['b']]
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from html import escape
from typing import Any

from flowtime.model.kinds import INTERNAL

NODE_W = 156
NODE_H = 40
GAP_X = 64
GAP_Y = 22
PAD = 28
MAX_LABEL = 20


@dataclass(frozen=True)
class Layout:
    layers: list[list[str]]
    kinds: dict[str, str]
    exprs: dict[str, str]
    edges: list[tuple[str, str, int]]

    def positions(self) -> dict[str, tuple[float, float]]:
        """Top-left corner of each node's box."""
        return {
            nid: (PAD + li * (NODE_W + GAP_X), PAD + row * (NODE_H + GAP_Y))
            for li, layer in enumerate(self.layers)
            for row, nid in enumerate(layer)
        }


def _inputs(graph: Mapping[str, Any]) -> dict[str, list[tuple[str, int]]]:
    inputs: dict[str, list[tuple[str, int]]] = {}
    for node in graph.get("nodes", []):
        if isinstance(node, str):
            inputs.setdefault(node, [])
            continue
        nid = str(node.get("id"))
        inputs.setdefault(nid, [])
        for src in node.get("inputs") or []:
            inputs[nid].append((str(src), 0))
    for edge in graph.get("edges", []) or []:
        if not isinstance(edge, Mapping):
            continue
        if "from" in edge and "to" in edge:
            src, dst, lag = str(edge["from"]), str(edge["to"]), int(edge.get("lag") or 0)
            pairs = inputs.setdefault(dst, [])
            pairs[:] = [(s, lg) for s, lg in pairs if s != src] + [(src, lag)]
            inputs.setdefault(src, [])
        elif "id" in edge:  # reference shape: {"id": node, "inputs": [...]}
            dst = str(edge["id"])
            for src in edge.get("inputs") or []:
                if (str(src), 0) not in inputs.setdefault(dst, []):
                    inputs[dst].append((str(src), 0))
    return inputs


def _visible(inputs: dict[str, list[tuple[str, int]]]) -> dict[str, list[tuple[str, int]]]:
    """Inputs of the nodes an author sees, reached through hidden (``#``) nodes: the smallest lag per input."""
    out: dict[str, list[tuple[str, int]]] = {}
    for nid in inputs:
        if INTERNAL in nid:
            continue
        best: dict[str, int] = {}
        through: dict[str, int] = {}  # hidden node -> smallest lag it was reached with (loops end here)
        stack = list(inputs[nid])
        while stack:
            src, lag = stack.pop()
            owner = src.split(INTERNAL, 1)[0]
            if INTERNAL in src and owner != nid and owner in inputs:
                src = owner  # a part of another node (its class parts, raw depth...) stands for that node
            if INTERNAL in src:
                if src not in through or lag < through[src]:
                    through[src] = lag
                    stack.extend((s2, lag + l2) for s2, l2 in inputs.get(src, []))
            elif src not in best or lag < best[src]:
                best[src] = lag
        out[nid] = list(best.items())
    return out


def layout(graph: Mapping[str, Any]) -> Layout:
    inputs = _visible(_inputs(graph))
    order = [str(n) for n in graph.get("order") or [] if INTERNAL not in str(n)]
    order += [n for n in inputs if n not in order]
    depth: dict[str, int] = {}
    for nid in order:
        ups = [src for src, lag in inputs.get(nid, []) if src != nid and lag == 0 and src in depth]
        depth[nid] = 1 + max((depth[u] for u in ups), default=-1)
    n_layers = 1 + max(depth.values(), default=-1)
    layers: list[list[str]] = [[] for _ in range(n_layers)]
    for nid in order:
        layers[depth[nid]].append(nid)
    # One barycentre sweep: order each layer by the mean row of its inputs.
    row: dict[str, float] = {n: float(i) for i, n in enumerate(layers[0])} if layers else {}
    for li in range(1, n_layers):
        def key(nid: str) -> float:
            ups = [row[s] for s, _ in inputs.get(nid, []) if s in row]
            return sum(ups) / len(ups) if ups else float("inf")

        layers[li].sort(key=key)
        row.update({n: float(i) for i, n in enumerate(layers[li])})
    kinds: dict[str, str] = {}
    exprs: dict[str, str] = {}
    for node in graph.get("nodes", []):
        if isinstance(node, Mapping):
            kinds[str(node.get("id"))] = str(node.get("kind") or "")
            if node.get("expr"):
                exprs[str(node.get("id"))] = str(node["expr"])
    edges = [(src, dst, lag) for dst, pairs in inputs.items() for src, lag in pairs if src in depth]
    return Layout(layers, kinds, exprs, edges)


def render_svg(graph: Mapping[str, Any]) -> str:
    """The DAG as a standalone ``<svg>`` element (escaped, safe to embed)."""
    lay = layout(graph)
    if not lay.layers:
        return '<p class="muted">The model has no nodes.</p>'
    width = PAD * 2 + len(lay.layers) * NODE_W + (len(lay.layers) - 1) * GAP_X
    tallest = max(len(layer) for layer in lay.layers)
    height = PAD * 2 + tallest * NODE_H + (tallest - 1) * GAP_Y
    out = [
        f'<svg class="dag" xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" role="img" aria-label="Model graph">',
        '<defs><marker id="arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" '
        'markerHeight="7" orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" '
        'class="dag-arrow"/></marker></defs>',
    ]
    pos = lay.positions()
    for src, dst, lag in lay.edges:
        sx, sy = pos[src]
        dx, dy = pos[dst]
        if src == dst:
            x, y = sx + NODE_W / 2, sy
            out.append(f'<path class="dag-edge lagged" d="M{x - 12},{y} C{x - 30},{y - 26} '
                       f'{x + 30},{y - 26} {x + 12},{y}" marker-end="url(#arrow)">'
                       f'<title>{escape(src)} → itself (lag {lag})</title></path>')
            continue
        x1, y1 = sx + NODE_W, sy + NODE_H / 2
        x2, y2 = dx, dy + NODE_H / 2
        if x2 <= x1:  # a lagged edge pointing back: route it under the nodes
            x1, x2 = sx + NODE_W / 2, dx + NODE_W / 2
            y1, y2 = sy + NODE_H, dy + NODE_H
            bend = max(y1, y2) + GAP_Y
            d = f"M{x1},{y1} C{x1},{bend} {x2},{bend} {x2},{y2}"
        else:
            mid = (x1 + x2) / 2
            d = f"M{x1},{y1} C{mid},{y1} {mid},{y2} {x2 - 2},{y2}"
        cls = "dag-edge lagged" if lag else "dag-edge"
        label = f"{src} → {dst}" + (f" (lag {lag})" if lag else "")
        out.append(f'<path class="{cls}" d="{d}" marker-end="url(#arrow)">'
                   f'<title>{escape(label)}</title></path>')
    for layer in lay.layers:
        for nid in layer:
            x, y = pos[nid]
            kind = lay.kinds.get(nid, "")
            text = nid if len(nid) <= MAX_LABEL else nid[: MAX_LABEL - 1] + "…"
            tip = nid + (f" = {lay.exprs[nid]}" if nid in lay.exprs else (f" ({kind})" if kind else ""))
            out.append(
                f'<g class="dag-node kind-{escape(kind or "node")}" data-node="{escape(nid)}">'
                f"<title>{escape(tip)}</title>"
                f'<rect x="{x}" y="{y}" width="{NODE_W}" height="{NODE_H}" rx="8"/>'
                f'<text x="{x + 12}" y="{y + 17}" class="dag-id">{escape(text)}</text>'
                f'<text x="{x + 12}" y="{y + 31}" class="dag-kind">{escape(kind)}</text></g>'
            )
    out.append("</svg>")
    return "".join(out)
