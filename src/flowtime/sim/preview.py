"""
A DAG drawing of a model as SVG, laid out left to right, written by hand.

Layout: a node's column is the length of the longest path reaching it from a
source (over same-bin references; SHIFT feedback edges that point backwards
are drawn dashed, below the boxes, and do not push columns). An edge that
spans several columns gets a thin waypoint slot in each column it crosses,
so it runs between boxes rather than behind them. Rows are ordered by
barycentre sweeps, ties by declaration order. Boxes are coloured by kind and labelled with the node id; outputs get
a thicker border.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from xml.sax.saxutils import escape, quoteattr

from flowtime.model.schema import Model
from flowtime.sim.topology import Topology, topology

BOX_HEIGHT = 44
ROW_GAP = 22
COL_GAP = 80
MARGIN = 24
HEADER = 56
CHAR_WIDTH = 7.4  # average width of a 12 px sans-serif character
MIN_BOX_WIDTH = 110
WAYPOINT_HEIGHT = 8  # a long edge's slot in a column it crosses
WAYPOINT_WIDTH = 40

KIND_STYLE = {
    "const": ("#dbeafe", "#2563eb", "constant"),
    "expr": ("#dcfce7", "#16a34a", "expression"),
    "pmf": ("#ffedd5", "#ea580c", "PMF"),
}
_FALLBACK_STYLE = ("#f3f4f6", "#6b7280", "node")


@dataclass(frozen=True)
class _Box:
    x: float
    y: float
    width: float
    height: float = BOX_HEIGHT

    @property
    def left(self) -> tuple[float, float]:
        return self.x, self.y + self.height / 2

    @property
    def right(self) -> tuple[float, float]:
        return self.x + self.width, self.y + self.height / 2


@dataclass(frozen=True)
class Layout:
    """Columns of slots (node ids, or waypoints of long edges) and each forward edge's route."""

    columns: list[list[str]]
    routes: dict[tuple[str, str], list[str]]  # (src, dst) -> waypoint slots between them


def _waypoint(src: str, dst: str, column: int) -> str:
    return f"\x00{src}\x00{dst}\x00{column}"  # cannot collide with a node id


def is_waypoint(slot: str) -> bool:
    return slot.startswith("\x00")


def layout(topo: Topology) -> Layout:
    """
    Columns by longest path, long edges broken into one waypoint per column
    they cross, rows ordered by barycentre sweeps (forward, backward, forward).

    >>> t = Topology({"a": {}, "b": {"a": 0}, "c": {"a": 0, "b": 0}, "q": {"q": 1, "c": 0}},
    ...              ("q",), ("a", "b", "c", "q"), {})
    >>> [[s for s in col if not is_waypoint(s)] for col in layout(t).columns]
    [['a'], ['b'], ['c'], ['q']]
    """
    position = {n: i for i, n in enumerate(topo.order)}
    column: dict[str, int] = {}
    for node in topo.order:
        forward = [src for src in topo.inputs[node] if position[src] < position[node]]
        column[node] = max((column[src] + 1 for src in forward), default=0)
    declared = {n: float(i) for i, n in enumerate(topo.inputs)}
    cols: list[list[str]] = [[] for _ in range(max(column.values(), default=-1) + 1)]
    for node in topo.inputs:
        cols[column[node]].append(node)
    preds: dict[str, list[str]] = {n: [] for n in topo.inputs}
    succs: dict[str, list[str]] = {n: [] for n in topo.inputs}
    routes: dict[tuple[str, str], list[str]] = {}
    for node, ins in topo.inputs.items():
        for src in ins:
            if position[src] >= position[node]:
                continue  # feedback edges are drawn separately and do not order rows
            chain = [_waypoint(src, node, c) for c in range(column[src] + 1, column[node])]
            routes[(src, node)] = chain
            for c, slot in zip(range(column[src] + 1, column[node]), chain, strict=True):
                cols[c].append(slot)
                declared[slot] = declared[src]
            path = [src, *chain, node]
            for a, b in itertools.pairwise(path):
                succs.setdefault(a, []).append(b)
                preds.setdefault(b, []).append(a)
    row = {slot: float(r) for col in cols for r, slot in enumerate(col)}
    for neighbours, order in ((preds, cols[1:]), (succs, cols[-2::-1]), (preds, cols[1:])):
        for col in order:
            def centre(slot: str, nb: dict[str, list[str]] = neighbours) -> float:
                rows = [row[x] for x in nb.get(slot, ())]
                return sum(rows) / len(rows) if rows else row[slot]
            col.sort(key=lambda s: (centre(s), declared[s]))
            row.update((slot, float(r)) for r, slot in enumerate(col))
    return Layout(cols, routes)


def render_svg(model: Model, title: str | None = None, *, topo: Topology | None = None) -> str:
    """The model's DAG as a standalone SVG document."""
    topo = topo or topology(model)
    plan = layout(topo)
    outputs = set(topo.outputs)

    def height(slot: str) -> float:
        return WAYPOINT_HEIGHT if is_waypoint(slot) else BOX_HEIGHT

    def col_height(col: list[str]) -> float:
        return sum(height(s) for s in col) + max(len(col) - 1, 0) * ROW_GAP

    widths = [max((_label_width(n) for n in col if not is_waypoint(n)), default=WAYPOINT_WIDTH)
              for col in plan.columns]
    body = max((col_height(col) for col in plan.columns), default=0.0)
    boxes: dict[str, _Box] = {}
    x = float(MARGIN)
    for col, width in zip(plan.columns, widths, strict=True):
        y = HEADER + (body - col_height(col)) / 2
        for slot in col:
            boxes[slot] = _Box(x, y, width, height(slot))
            y += height(slot) + ROW_GAP
        x += width + COL_GAP
    width_total = max(x - COL_GAP + MARGIN, 420.0)
    height_total = HEADER + body + MARGIN + 40  # room for feedback arcs below

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width_total:.0f}" '
        f'height="{height_total:.0f}" viewBox="0 0 {width_total:.0f} {height_total:.0f}" '
        'font-family="Helvetica, Arial, sans-serif" font-size="12">',
        f"<title>{escape(title or 'model')}</title>",
        "<defs>"
        '<marker id="arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="8" '
        'markerHeight="8" orient="auto-start-reverse"><path d="M 0 0 L 10 5 L 0 10 z" '
        'fill="#374151"/></marker></defs>',
        f'<rect width="{width_total:.0f}" height="{height_total:.0f}" fill="#ffffff"/>',
    ]
    parts += _legend(title)
    parts += _edges(topo, plan, boxes, height_total)
    for slot, box in boxes.items():
        if not is_waypoint(slot):
            parts += _box(slot, topo.kinds.get(slot, ""), box, slot in outputs)
    parts.append("</svg>")
    return "\n".join(parts) + "\n"


def _label_width(node_id: str) -> float:
    return max(MIN_BOX_WIDTH, len(node_id) * CHAR_WIDTH + 24)


def _legend(title: str | None) -> list[str]:
    out = []
    if title:
        out.append(f'<text x="{MARGIN}" y="22" font-size="14" font-weight="bold">{escape(title)}</text>')
    x = MARGIN
    for fill, stroke, label in KIND_STYLE.values():
        out.append(f'<rect x="{x}" y="32" width="14" height="10" rx="2" fill="{fill}" '
                   f'stroke="{stroke}"/>')
        out.append(f'<text x="{x + 19}" y="41" font-size="10" fill="#374151">{label}</text>')
        x += 30 + len(label) * 7
    out.append(f'<rect x="{x}" y="32" width="14" height="10" rx="2" fill="#ffffff" '
               'stroke="#111827" stroke-width="2.5"/>')
    out.append(f'<text x="{x + 19}" y="41" font-size="10" fill="#374151">output</text>')
    return out


def _edges(topo: Topology, plan: Layout, boxes: dict[str, _Box], height: float) -> list[str]:
    out = []
    for node, ins in topo.inputs.items():
        for src, lag in ins.items():
            a, b = boxes[src], boxes[node]
            route = plan.routes.get((src, node))
            if route is not None:
                points = [a.right]
                for slot in route:  # straight through each crossed column
                    w = boxes[slot]
                    points += [w.left, w.right]
                points.append(b.left)
                d = f"M {points[0][0]:.1f} {points[0][1]:.1f}"
                for (x1, y1), (x2, y2) in itertools.pairwise(points):
                    if y1 == y2 or x2 - x1 > COL_GAP / 2 or x2 - x1 <= 0:
                        dx = max((x2 - x1) / 2, 10)
                        d += f" C {x1 + dx:.1f} {y1:.1f}, {x2 - dx:.1f} {y2:.1f}, {x2:.1f} {y2:.1f}"
                    else:
                        d += f" L {x2:.1f} {y2:.1f}"
                dash = ' stroke-dasharray="5 3"' if lag else ""
            else:  # feedback through SHIFT: an arc below the boxes, back to the reader
                x1, y1 = a.x + a.width * 0.7, a.y + a.height
                x2, y2 = b.x + b.width * 0.3, b.y + b.height
                low = min(max(y1, y2) + 34, height - 6)
                d = f"M {x1:.1f} {y1:.1f} C {x1:.1f} {low:.1f}, {x2:.1f} {low:.1f}, {x2:.1f} {y2:.1f}"
                dash = ' stroke-dasharray="5 3"'
            label = f"<title>{escape(src)} → {escape(node)}{f' (lag {lag})' if lag else ''}</title>"
            out.append(f'<path d="{d}" fill="none" stroke="#374151" stroke-width="1.4"{dash} '
                       f'marker-end="url(#arrow)">{label}</path>')
    return out


def _box(node: str, kind: str, box: _Box, is_output: bool) -> list[str]:
    fill, stroke, label = KIND_STYLE.get(kind, _FALLBACK_STYLE)
    border = ' stroke-width="2.5"' if is_output else ' stroke-width="1.2"'
    edge = "#111827" if is_output else stroke
    cx = box.x + box.width / 2
    return [
        f'<g class="node {escape(kind)}" data-id={quoteattr(node)}>',
        f'<rect x="{box.x:.1f}" y="{box.y:.1f}" width="{box.width:.1f}" height="{BOX_HEIGHT}" rx="6" '
        f'fill="{fill}" stroke="{edge}"{border}/>',
        f'<text x="{cx:.1f}" y="{box.y + 19:.1f}" text-anchor="middle" font-weight="bold" '
        f'fill="#111827">{escape(node)}</text>',
        f'<text x="{cx:.1f}" y="{box.y + 34:.1f}" text-anchor="middle" font-size="10" '
        f'fill="{stroke}">{label}{" · output" if is_output else ""}</text>',
        "</g>",
    ]
