"""
What differs between two models, node by node: the model half of comparing two runs.

Nodes are matched by id. Each difference says what changed in words a modeller
reads (``expr: MIN(a, 10) -> MIN(a, 12)``, ``values: 3 of 24 bins, first bin 5:
10 -> 12``); the grid, the outputs and the rng are compared too. Expressions are
compared in their canonical form, so spacing and redundant parentheses are no
difference.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

from flowtime.expr.parser import parse_expression
from flowtime.expr.syntax import to_text
from flowtime.model.kinds import is_internal
from flowtime.model.schema import ConstNode, ExprNode, Model, Node, PmfNode
from flowtime.records import record


@record
class Change:
    """One difference: ``where`` is a node id, or ``grid``/``outputs``/``rng``; ``kind`` says what sort."""

    where: str
    kind: str  # added | removed | kind | expr | values | pmf | definition | grid | outputs | rng | classes | traffic
    detail: str

    def to_json(self) -> dict[str, Any]:
        return {"node" if self.kind in _NODE_KINDS else "part": self.where, "change": self.kind, "detail": self.detail}


_NODE_KINDS = frozenset({"added", "removed", "kind", "expr", "values", "pmf", "definition"})


def _n(v: float) -> str:
    text = f"{float(v):.8g}"
    return "0" if text == "-0" else text


def _expr_text(node: ExprNode) -> str:
    """The expression as printed from the model graph's syntax tree (spacing and parentheses do not count)."""
    return to_text(parse_expression(node.expr))


def _describe(node: Node) -> str:
    if isinstance(node, ExprNode):
        return f"expr {_expr_text(node)}"
    if isinstance(node, ConstNode):
        return f"const {_values_text(node.values)}"
    if isinstance(node, PmfNode):
        return f"pmf {_pmf_text(node)}"
    return _other_text(node)


def _other_text(node: Any) -> str:
    """A kind the table adds (router, serviceWithBuffer, ...): its canonical fields."""
    fields = {k: v for k, v in node.to_json().items() if k not in ("id", "kind") and v not in (None, [], {})}
    return f"{node.kind} " + ", ".join(f"{k}: {v}" for k, v in fields.items())


def _values_text(values: npt.NDArray[np.float64]) -> str:
    if values.size and bool(np.all(values == values[0])):
        return f"{_n(values[0])} in every bin"
    head = ", ".join(_n(v) for v in values[:4])
    return f"[{head}{', ...' if values.size > 4 else ''}]"


def _pmf_text(node: PmfNode) -> str:
    pairs = ", ".join(f"{_n(v)}: {_n(p)}" for v, p in zip(node.values, node.probabilities, strict=True))
    return "{" + pairs + "}" + (" sampled" if node.sample else "")


def _values_change(a: npt.NDArray[np.float64], b: npt.NDArray[np.float64]) -> str | None:
    if a.shape != b.shape:
        return f"{a.size} values -> {b.size} values"
    differ = np.flatnonzero(~((a == b) | (np.isnan(a) & np.isnan(b))))
    if differ.size == 0:
        return None
    if bool(np.all(a == a[0])) and bool(np.all(b == b[0])):
        return f"{_n(a[0])} -> {_n(b[0])} in every bin"
    first = int(differ[0])
    return f"{differ.size} of {a.size} bins, first bin {first}: {_n(a[first])} -> {_n(b[first])}"


def _node_change(a: Node, b: Node) -> Change | None:
    if a.kind != b.kind:
        return Change(a.id, "kind", f"{_describe(a)} -> {_describe(b)}")
    if isinstance(a, ExprNode) and isinstance(b, ExprNode):
        ea, eb = _expr_text(a), _expr_text(b)
        return Change(a.id, "expr", f"{ea} -> {eb}") if ea != eb else None
    if isinstance(a, ConstNode) and isinstance(b, ConstNode):
        detail = _values_change(a.values, b.values)
        return Change(a.id, "values", detail) if detail else None
    if isinstance(a, PmfNode) and isinstance(b, PmfNode):
        same = (a.sample == b.sample and a.values.shape == b.values.shape
                and bool(np.array_equal(a.values, b.values)) and bool(np.array_equal(a.probabilities, b.probabilities)))
        return None if same else Change(a.id, "pmf", f"{_pmf_text(a)} -> {_pmf_text(b)}")
    if type(a) is type(b) and not isinstance(a, ConstNode | ExprNode | PmfNode) and a.to_json() != b.to_json():
        return Change(a.id, "definition", f"{_other_text(a)} -> {_other_text(b)}")
    return None


def _outputs_text(m: Model) -> str:
    return ", ".join(o.series + (f" as {o.as_}" if o.as_ else "") for o in m.outputs) or "none"


def _classes_text(m: Model) -> str:
    return ", ".join(c.id for c in m.classes) or "none"


def _traffic_text(m: Model) -> str:
    return ", ".join(f"{a.class_id} at {a.node_id}" + (f" ({_n(a.rate)}/bin)" if a.rate is not None else "")
                     for a in m.arrivals) or "none"


def diff_models(a: Model, b: Model) -> list[Change]:
    """
    Every difference from ``a`` to ``b``: grid first, then nodes in ``a``'s order
    (changed or removed), then nodes only in ``b``, then outputs and rng.

    >>> from flowtime.model.load import load_model
    >>> base = "schemaVersion: 1\\ngrid: {bins: 2, binSize: 1, binUnit: hours}\\nnodes:\\n"
    >>> a = load_model(base + "  - {id: c, values: 10}\\n  - {id: x, kind: expr, expr: c * 2}\\n").model
    >>> b = load_model(base + "  - {id: c, values: [10, 12]}\\n  - {id: x, kind: expr, expr: (c) * 3}\\n").model
    >>> [(d.where, d.detail) for d in diff_models(a, b)]
    [('c', '1 of 2 bins, first bin 1: 10 -> 12'), ('x', 'c * 2 -> c * 3')]
    """
    out: list[Change] = []
    if a.grid != b.grid:
        ga, gb = a.grid, b.grid
        out.append(Change("grid", "grid", f"{ga.bins} bins of {ga.bin_size} {ga.bin_unit.value} -> "
                                          f"{gb.bins} bins of {gb.bin_size} {gb.bin_unit.value}"))
    ids_b = {n.id: n for n in b.nodes if not is_internal(n.id)}  # FlowTime's own nodes follow from the rest
    ids_a = {n.id for n in a.nodes if not is_internal(n.id)}
    for node in (n for n in a.nodes if n.id in ids_a):
        other = ids_b.get(node.id)
        if other is None:
            out.append(Change(node.id, "removed", _describe(node)))
            continue
        change = _node_change(node, other)
        if change is not None:
            out.append(change)
    out.extend(Change(n.id, "added", _describe(n)) for n in b.nodes if n.id in ids_b and n.id not in ids_a)
    if [o.to_json() for o in a.outputs] != [o.to_json() for o in b.outputs]:
        out.append(Change("outputs", "outputs", f"{_outputs_text(a)} -> {_outputs_text(b)}"))
    for part, text in (("classes", _classes_text), ("traffic", _traffic_text)):
        ta, tb = text(a), text(b)
        if ta != tb:
            out.append(Change(part, part, f"{ta} -> {tb}"))
    seed_a = a.rng.seed if a.rng else None
    seed_b = b.rng.seed if b.rng else None
    if seed_a != seed_b:
        out.append(Change("rng", "rng", f"seed {seed_a} -> {seed_b}"))
    return out
