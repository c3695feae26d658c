"""
A slow, obviously correct evaluator to check the engine against.

It knows nothing of levels, kernels, hoisting or batching: the value of node n
at bin t is its expression evaluated at t, where ``SHIFT(e, k)`` is ``e`` at
t - k (0 before the first bin), memoised per (node, bin); ``CONV(e, kernel)`` is
the sum over j = 0, 1, ... (j <= t) of ``e`` at t - j times kernel[j], from +0,
skipping non-finite values of ``e``; ``PULSE`` and array literals read t
itself. Arithmetic uses the
engine's per-float functions, so results must match exactly for every
operation except EXP/LOG/POW (documented in decisions/0003).
"""

from __future__ import annotations

import sys
from typing import Any

import numpy as np

from flowtime.engine.plan import Plan as Graph
from flowtime.expr import functions as fx
from flowtime.expr.syntax import Array, BinOp, Call, Expr, Num, Ref, Unary
from flowtime.model.schema import ConstNode, PmfNode


def interpret(graph: Graph) -> dict[str, list[float]]:
    bins = graph.grid.bins
    memo: dict[tuple[str, int], float] = {}

    def value(name: str, t: int) -> float:
        if t < 0:
            return 0.0
        key = (name, t)
        if key not in memo:
            node: Any = graph.nodes[name]
            if isinstance(node, ConstNode):
                memo[key] = float(node.values[t])
            elif isinstance(node, PmfNode):
                memo[key] = float(node.expected_value)
            else:
                memo[key] = at(graph.exprs[name], t)
        return memo[key]

    def at(e: Expr, t: int) -> float:
        if t < 0:
            return 0.0
        if isinstance(e, Num):
            return float(e.value)
        if isinstance(e, Ref):
            return value(e.name, t)
        if isinstance(e, Array):
            return float(e.values[t]) if t < len(e.values) else 0.0
        if isinstance(e, Unary):
            v = at(e.operand, t)
            return -v if e.op == "-" else v
        if isinstance(e, BinOp):
            a, b = at(e.left, t), at(e.right, t)
            if e.op == "+":
                return a + b
            if e.op == "-":
                return a - b
            if e.op == "*":
                return a * b
            if e.op == "/":
                return fx.s_div(a, b)
            return fx.SCALAR_COMPARE[e.op](a, b)
        assert isinstance(e, Call)
        if e.name == "SHIFT":
            lag = e.args[1]
            assert isinstance(lag, Num)
            return at(e.args[0], t - int(lag.value))
        if e.name == "CONV":
            kernel = fx.conv_kernel(e.args[1])
            assert kernel is not None
            acc = 0.0
            for j, k in enumerate(kernel):
                if j <= t:
                    v = at(e.args[0], t - j)
                    if np.isfinite(v):
                        acc = acc + v * k
            return acc
        if e.name == "PULSE":
            timing = fx.pulse_timing(e)
            assert not isinstance(timing, str)
            period, phase = timing
            if t >= phase and (t - phase) % period == 0:
                return at(e.args[2], t) if len(e.args) > 2 else 1.0
            return 0.0
        fn = fx.FUNCTIONS[e.name].scalar
        assert fn is not None
        return fn(*(at(a, t) for a in e.args))

    old = sys.getrecursionlimit()
    sys.setrecursionlimit(max(old, 20_000))
    try:
        # Bin by bin, so memoised earlier bins keep the recursion shallow.
        for t in range(bins):
            for n in graph.order:
                value(n, t)
    finally:
        sys.setrecursionlimit(old)
    return {n: [memo[(n, t)] for t in range(bins)] for n in graph.order}


def same_bits(a: Any, b: Any) -> bool:
    """
    Equal series bit for bit - so 0 and -0 differ, as they do in a CSV - with
    every NaN counted as the same (the CSV writes any NaN as ``NaN``).
    """
    x = np.asarray(a, dtype=np.float64)
    y = np.asarray(b, dtype=np.float64)
    if x.shape != y.shape:
        return False
    nan_x, nan_y = np.isnan(x), np.isnan(y)
    return bool(np.array_equal(nan_x, nan_y) and np.array_equal(x[~nan_x].view(np.int64), y[~nan_y].view(np.int64)))
