"""
Metrics: one number per point from the series of a batch of points.

A metric is a series (a node id, or a derived metric's series id such as
``checkout_utilization`` when the model has a topology) or an expression over
series, reduced over a bin window by an aggregate. Expressions use the model's
expression language (``flowtime.expr``), evaluated element-wise over
``(points, bins)`` arrays with the same NumPy functions the engine uses; the
functions that depend on the bin (SHIFT, CONV, PULSE) are refused - a metric
reads what the model computed, it does not compute a new series over time.
An unknown series is an error located at ``metrics[i].series`` (or ``.expr``),
never a silent 0; NaN results say which points.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from flowtime.analysis.metrics import METRICS, series_name
from flowtime.errors import ExperimentError, ExpressionError, Problem
from flowtime.experiments.spec import Metric
from flowtime.expr.functions import FUNCTIONS, TIMED, VECTOR_COMPARE, check_call, suggest, v_div
from flowtime.expr.parser import parse_expression
from flowtime.expr.syntax import Array, BinOp, Call, Expr, Num, Ref, Unary, references, walk
from flowtime.model.kinds import is_internal
from flowtime.model.schema import Model
from flowtime.records import record

Array2 = npt.NDArray[np.float64]
_ARITH = {"+": np.add, "-": np.subtract, "*": np.multiply}


def derived_names(model: Model) -> dict[str, tuple[str, str]]:
    """Series id of every derived metric a topology node could have -> (node id, metric key)."""
    if model.topology is None:
        return {}
    return {series_name(t.id, key): (t.id, key) for t in model.topology.nodes for key in METRICS}


@record
class CompiledMetric:
    index: int
    label: str
    aggregate: str
    start: int
    end: int
    tree: Expr
    refs: tuple[str, ...]  # the series it reads


def compile_metrics(metrics: Sequence[Metric], model: Model) -> list[CompiledMetric]:
    """Each metric checked against the model: its series known, its expression parsed; every problem at once."""
    known = {n.id for n in model.nodes}
    derived = derived_names(model)
    visible = sorted([n for n in known if not is_internal(n)] + list(derived))
    bins = model.grid.bins
    problems: list[Problem] = []
    out: list[CompiledMetric] = []
    labels: dict[str, int] = {}
    for i, m in enumerate(metrics):
        field = "series" if m.series is not None else "expr"
        here = f"metrics[{i}].{field}"
        try:
            tree: Expr = Ref(m.series) if m.series is not None else parse_expression(m.expr or "")
        except ExpressionError as exc:
            problems.append(Problem(here, str(exc)))
            continue
        bad = _bad_calls(tree)
        unknown = [r for r in references(tree) if r not in known and r not in derived]
        for r in unknown:
            problems.append(Problem(here, f"unknown series '{r}'{suggest(r, visible)}"))
        if bad:
            problems.append(Problem(here, bad))
        start = m.window.start if m.window is not None else 0
        end = (m.window.end if m.window is not None else None) or bins
        if end > bins or start >= bins:
            problems.append(Problem(f"metrics[{i}].window", f"window {start}..{end} is outside the grid's "
                                                            f"{bins} bins"))
        if m.label in labels:
            problems.append(Problem(f"metrics[{i}].name", f"metric name '{m.label}' is also that of "
                                                          f"metrics[{labels[m.label]}]; give each a distinct name"))
        labels.setdefault(m.label, i)
        if not unknown and not bad:
            refs = tuple(dict.fromkeys(references(tree)))
            out.append(CompiledMetric(i, m.label, m.aggregate, start, end, tree, refs))
    if problems:
        raise ExperimentError(problems)
    return out


def _bad_calls(tree: Expr) -> str | None:
    for e in walk(tree):
        if isinstance(e, Call):
            if e.name in TIMED:
                return f"{e.name} depends on the bin; a metric can use arithmetic, comparisons and " \
                       f"{', '.join(n for n in FUNCTIONS if n not in TIMED)}"
            msg = check_call(e.name, len(e.args))
            if msg is not None:
                return msg
        if isinstance(e, Array):
            return "an array literal is a series over bins; a metric reads the model's series"
    return None


def _value(e: Expr, series: Mapping[str, Array2]) -> Any:
    if isinstance(e, Num):
        return e.value
    if isinstance(e, Ref):
        return series[e.name]
    if isinstance(e, Unary):
        v = _value(e.operand, series)
        return -v if e.op == "-" else v
    if isinstance(e, BinOp):
        a, b = _value(e.left, series), _value(e.right, series)
        if e.op == "/":
            return v_div(a, b)
        if e.op in _ARITH:
            return _ARITH[e.op](a, b)
        return VECTOR_COMPARE[e.op](a, b)
    assert isinstance(e, Call)
    fn = FUNCTIONS[e.name].vector
    assert fn is not None
    return fn(*(_value(a, series) for a in e.args))


def aggregate(values: Array2, how: str) -> Array2:
    """One number per row of ``values`` ``(n, w)``: NaN propagates (a NaN bin makes its point's result NaN)."""
    if how == "mean":
        return values.mean(axis=1)  # type: ignore[no-any-return]
    if how == "sum":
        return values.sum(axis=1)  # type: ignore[no-any-return]
    if how == "max":
        return values.max(axis=1)  # type: ignore[no-any-return]
    if how == "min":
        return values.min(axis=1)  # type: ignore[no-any-return]
    if how == "last":
        return np.ascontiguousarray(values[:, -1])
    # linear interpolation between order statistics (numpy's default, as Excel's PERCENTILE.INC)
    return np.percentile(values, float(how[1:]), axis=1)


def evaluate_metric(m: CompiledMetric, series: Mapping[str, Array2], n: int) -> Array2:
    """The metric of each of ``n`` points, from ``(n, bins)`` (or ``(bins,)``) series."""
    with np.errstate(all="ignore"):
        v = np.asarray(_value(m.tree, series), dtype=np.float64)
    if v.ndim < 2:  # a constant, or series that do not vary between points
        v = np.broadcast_to(v, (n, v.shape[-1] if v.ndim else m.end))
    return aggregate(np.asarray(v[:, m.start:m.end], dtype=np.float64), m.aggregate)


def nan_points(values: Array2, first: int = 0) -> str:
    """'points 3, 8 and 2 more' for the NaN entries of a metric column."""
    bad = np.flatnonzero(np.isnan(values))
    shown = ", ".join(str(int(k) + first) for k in bad[:5])
    more = f" and {bad.size - 5} more" if bad.size > 5 else ""
    return f"point{'s' if bad.size > 1 else ''} {shown}{more}"
