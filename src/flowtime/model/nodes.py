"""
The built-in node kinds - ``const``, ``expr``, ``pmf`` - as entries of the kind table.

Each ``parse`` reads one node mapping and reports problems through the
loader's ``NodeSource`` (which knows the file, line and column of every field);
each ``expression`` gives the node as the graph sees it.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from flowtime.expr.parser import parse_expression
from flowtime.expr.syntax import Expr
from flowtime.model.kinds import NodeKind, NodeSource, register
from flowtime.model.schema import ConstNode, ExprNode, PmfNode

PMF_TOLERANCE = 1e-6
# Sums this close to 1 are float noise: used as given, so expected values match
# the reference bit for bit. Between this and PMF_TOLERANCE: normalised, warned.
PMF_NOISE = 1e-9
_COMMON = frozenset({"id", "kind", "title", "description"})
_new = object.__new__


def type_name(v: Any) -> str:
    """How a value reads in a message: ``the text 'x'``, ``a list``, ``nothing (null)``..."""
    if v is None:
        return "nothing (null)"
    if isinstance(v, bool):
        return f"a boolean ({str(v).lower()})"
    if isinstance(v, str):
        return f"the text {v!r}" if len(v) < 40 else "a text"
    if isinstance(v, list):
        return "a list"
    if isinstance(v, dict):
        return "a mapping"
    return f"{v!r}"


def is_number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


# -- const -------------------------------------------------------------------------------------------


def parse_const(item: dict[str, Any], src: NodeSource) -> ConstNode | None:
    bins = src.bins
    if "values" not in item:
        src.error((), f"const node '{src.node_id}' needs `values`: a list of {bins or 'grid.bins'} numbers")
        return None
    raw = item["values"]
    if is_number(raw) and bins is not None and math.isfinite(float(raw)):
        # A single number means "this value in every bin" (no list of a million floats on the way).
        full = np.full(bins, float(raw), dtype=np.float64)
        full.flags.writeable = False
        return ConstNode(id=src.node_id, values=full, title=src.title, description=src.description)
    if not isinstance(raw, list):
        src.error("values", f"values must be a list of numbers, got {type_name(raw)}")
        return None
    arr = src.numbers("values", raw, "values")
    if arr is None:
        return None
    if bins is not None and arr.size != bins:
        src.error("values", f"const node '{src.node_id}' has {arr.size} values but grid.bins is "
                  f"{bins}; give one value per bin")
        return None
    return ConstNode(id=src.node_id, values=arr, title=src.title, description=src.description)


# -- expr --------------------------------------------------------------------------------------------


def parse_expr(item: dict[str, Any], src: NodeSource) -> ExprNode | None:
    text = item.get("expr")
    if text is None and "expression" in item:
        src.error("expression", "the field is called `expr`, not `expression`; rename it", key=True)
        return None
    if text is None:
        src.error((), f"expr node '{src.node_id}' needs `expr`, a formula such as `MIN(demand, capacity)`")
        return None
    if not isinstance(text, str):
        if not is_number(text):
            src.error("expr", f"expr must be a text formula, got {type_name(text)}")
            return None
        text = repr(float(text)) if isinstance(text, float) else str(text)
    text = text.rstrip("\n")  # block scalars (`expr: |`) end with a newline
    if src.expression("expr", text) is None:
        return None
    # ExprNode(src.node_id, text, "expr", src.title, src.description), made as its __init__ makes it
    # (the same fields in the same order) at half the cost: this runs once per node of the largest models.
    node = _new(ExprNode)
    d = node.__dict__
    d["id"] = src.node_id
    d["expr"] = text
    d["kind"] = "expr"
    d["title"] = src.title
    d["description"] = src.description
    return node


def expr_expression(node: ExprNode) -> Expr:
    return parse_expression(node.expr)


# -- pmf ---------------------------------------------------------------------------------------------


def parse_pmf(item: dict[str, Any], src: NodeSource) -> PmfNode | None:
    raw = item.get("pmf")
    if raw is None:
        src.error((), f"pmf node '{src.node_id}' needs `pmf`: either {{values: [...], probabilities: [...]}} "
                  "or a mapping of value: probability")
        return None
    if not isinstance(raw, dict) or not raw:
        src.error("pmf", f"pmf must be a non-empty mapping, got {type_name(raw)}")
        return None
    sample = False
    if "values" in raw or "probabilities" in raw:
        for key in raw:
            if key not in ("values", "probabilities", "sample"):
                src.warn(("pmf", key), f"pmf field '{key}' is ignored", key=True)
        vals, probs = raw.get("values"), raw.get("probabilities")
        if not isinstance(vals, list) or not vals:
            src.error(("pmf", "values"), f"pmf.values must be a non-empty list of numbers, got {type_name(vals)}")
            return None
        if not isinstance(probs, list) or not probs:
            src.error(("pmf", "probabilities"),
                      f"pmf.probabilities must be a non-empty list of numbers, got {type_name(probs)}")
            return None
        if len(vals) != len(probs):
            src.error("pmf", f"pmf has {len(vals)} values but {len(probs)} probabilities; they must pair up")
            return None
        v_arr = src.numbers(("pmf", "values"), vals, "pmf values")
        p_arr = src.numbers(("pmf", "probabilities"), probs, "pmf probabilities")
        s = raw.get("sample", False)
        if not isinstance(s, bool):
            src.error(("pmf", "sample"), f"pmf.sample must be true or false, got {type_name(s)}")
            return None
        sample = s
    else:
        keys: list[float] = []
        probs_l: list[Any] = []
        for k, p in raw.items():
            try:
                kv = float(k) if not isinstance(k, bool) else math.nan
            except (TypeError, ValueError, OverflowError):
                kv = math.nan
            if not math.isfinite(kv):
                src.error(("pmf", k), f"pmf value {k!r} must be a number", key=True)
                return None
            keys.append(kv)
            probs_l.append(p)
        v_arr = np.array(keys, dtype=np.float64)
        p_arr = src.numbers("pmf", probs_l, "pmf probabilities")
    if v_arr is None or p_arr is None:
        return None
    uniq, counts = np.unique(v_arr, return_counts=True)
    if (counts > 1).any():
        src.error("pmf", f"duplicate pmf value {uniq[counts > 1][0]:g}; list each value once")
        return None
    neg = np.flatnonzero(p_arr < 0)
    if neg.size:
        j = int(neg[0])
        src.error("pmf", f"pmf probabilities must be >= 0; value {v_arr[j]:g} has {p_arr[j]:g}")
        return None
    total = math.fsum(p_arr.tolist())
    if abs(total - 1.0) > PMF_TOLERANCE:
        src.error("pmf", f"pmf probabilities sum to {total:.9g}, not 1 (tolerance {PMF_TOLERANCE:g}); fix them")
        return None
    if abs(total - 1.0) > PMF_NOISE:
        src.warn("pmf", f"pmf probabilities sum to {total:.12g}; normalised to 1")
        p_arr = p_arr / total
        p_arr.flags.writeable = False
    v_arr.flags.writeable = False
    return PmfNode(id=src.node_id, values=v_arr, probabilities=p_arr, sample=sample, title=src.title,
                   description=src.description)


def _no_expression(node: Any) -> None:
    return None


CONST = register(NodeKind("const", ConstNode, _COMMON | {"values"}, parse_const, _no_expression, default=True))
EXPR = register(NodeKind("expr", ExprNode, _COMMON | {"expr"}, parse_expr, expr_expression))
PMF = register(NodeKind("pmf", PmfNode, _COMMON | {"pmf"}, parse_pmf, _no_expression))
