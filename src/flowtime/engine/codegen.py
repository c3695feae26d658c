"""
Expression trees -> Python source for feedback kernels, and the names that source uses.

A loop's hoisted parts are one statement per operation over whole series
(``t3 = t1 + t2``); its per-bin parts are written by ``engine.feedback``.
Acyclic nodes are not generated code: they run as programs (``engine.program``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from flowtime.expr import functions as fx
from flowtime.expr.syntax import Array, BinOp, Call, Expr, Num, Ref, Unary, fold

ARITHMETIC = {"+", "-", "*"}
CMP_NAMES = {"<": "lt", "<=": "le", ">": "gt", ">=": "ge", "==": "eq", "!=": "ne"}


class Code:
    """Accumulates statements, naming each result with a fresh temporary."""

    def __init__(self, prefix: str = "t") -> None:
        self.lines: list[str] = []
        self.n = 0
        self.prefix = prefix

    def emit(self, rhs: str) -> str:
        name = f"{self.prefix}{self.n}"
        self.n += 1
        self.lines.append(f"{name} = {rhs}")
        return name


def literal(v: float) -> str:
    return repr(float(v))


def vector_expr(ast: Expr, ref: Callable[[str], str], code: Code, shape: str | None = None,
                number: Callable[[float], str] = literal) -> str:
    """
    Emit whole-series statements for ``ast`` into ``code``; return the operand
    holding its value. ``shape`` names a shape variable for SHIFT's zero fill
    (kernels run on (bins,) or (bins, loops) arrays); without it SHIFT uses the
    model's grid through ``_shift``. ``number`` names a number (by default, as
    a literal).
    """

    def fn(node: Expr, kids: list[str]) -> str:
        if isinstance(node, Num):
            return number(node.value)
        if isinstance(node, Ref):
            return ref(node.name)
        if isinstance(node, Array):  # an operand, not a statement: as CONV's kernel it is not computed
            assert shape is not None
            return f"_arr_s({node.values!r}, {shape})"
        if isinstance(node, Unary):
            return kids[0] if node.op == "+" else code.emit(f"-{kids[0]}")
        if isinstance(node, BinOp):
            a, b = kids
            if node.op in ARITHMETIC:
                return code.emit(f"{a} {node.op} {b}")
            if node.op == "/":
                return code.emit(f"_div({a}, {b})")
            return code.emit(f"_c_{CMP_NAMES[node.op]}({a}, {b})")
        assert isinstance(node, Call)
        if node.name == "SHIFT":
            lag = node.args[1]
            assert isinstance(lag, Num)
            if shape is not None:
                return code.emit(f"_shift_s({kids[0]}, {int(lag.value)}, {shape})")
            return code.emit(f"_shift({kids[0]}, {int(lag.value)})")
        if node.name == "CONV":  # the kernel and PULSE's timing are literals in the code: part of its shape
            assert shape is not None
            return code.emit(f"_conv_s({kids[0]}, {conv_literal(node)}, {shape})")
        if node.name == "PULSE":
            assert shape is not None
            amp = kids[2] if len(node.args) > 2 else "1.0"
            return code.emit(f"_pulse_s({pulse_literal(node)}, {amp}, {shape})")
        return code.emit(f"_f_{node.name}({', '.join(kids)})")

    return fold(ast, fn)


def conv_literal(node: Call) -> str:
    """CONV's kernel as a tuple literal in generated code."""
    kernel = fx.conv_kernel(node.args[1])
    assert kernel is not None
    return repr(tuple(float(k) for k in kernel))


def pulse_literal(node: Call) -> str:
    """PULSE's period and phase as ``period, phase`` in generated code."""
    timing = fx.pulse_timing(node)
    assert not isinstance(timing, str)
    return f"{timing[0]}, {timing[1]}"


# ---------------------------------------------------------------------------
# names the generated code calls


def shift_last(x: Any, k: int, bins: int) -> Any:
    """``x`` (a number, a series or one series per scenario) read ``k`` bins back along its last axis."""
    if k == 0:
        return x
    if np.ndim(x) == 0:
        out = np.zeros(bins, dtype=np.float64)
        if k < bins:
            out[k:] = x
        return out
    out = np.zeros(np.shape(x), dtype=np.float64)
    if k < bins:
        out[..., k:] = x[..., : bins - k]
    return out


def shift_s(x: Any, k: int, shape: tuple[int, ...]) -> Any:
    """``x`` (a series or a number) read ``k`` bins back, zero before the start."""
    if k == 0:
        return x
    out = np.zeros(shape, dtype=np.float64)
    if k < shape[0]:
        # A number, or one number per column (a kernel's constants), holds in every bin.
        out[k:] = x if np.ndim(x) < len(shape) else x[: shape[0] - k]
    return out


def full_s(x: Any, shape: tuple[int, ...]) -> Any:
    """A number or series as a float64 array of ``shape``."""
    if np.ndim(x) == 0:
        return np.full(shape, float(x), dtype=np.float64)
    return np.broadcast_to(x, shape).astype(np.float64, copy=False)


def _time_first(x: Any, shape: tuple[int, ...]) -> Any:
    """A value as ``shape`` (time first; a number, or one number per column, in every bin)."""
    return np.broadcast_to(np.asarray(x, dtype=np.float64), shape)


def conv_s(x: Any, kernel: tuple[float, ...], shape: tuple[int, ...]) -> Any:
    """``fx.v_conv`` along the first (time) axis of kernels' (bins,) or (bins, n) arrays: the same sums."""
    xs = _time_first(x, shape)
    xs = np.where(np.isfinite(xs), xs, 0.0)
    out = np.zeros(shape, dtype=np.float64)
    bins = shape[0]
    for j, k in enumerate(kernel[:bins]):
        out[j:] += xs[: bins - j] * k
    return out


def pulse_s(period: int, phase: int, amp: Any, shape: tuple[int, ...]) -> Any:
    """``fx.v_pulse`` along the first (time) axis."""
    out = np.zeros(shape, dtype=np.float64)
    a = np.asarray(amp, dtype=np.float64)
    out[phase::period] = a[phase::period] if a.ndim == len(shape) else a
    return out


def arr_s(values: tuple[float, ...], shape: tuple[int, ...]) -> Any:
    """An array literal as a series along the first (time) axis: values[t], 0 past its end."""
    out = np.zeros(shape, dtype=np.float64)
    n = min(len(values), shape[0])
    out[:n] = np.asarray(values[:n], dtype=np.float64).reshape((n,) + (1,) * (len(shape) - 1))
    return out


def kernel_runtime() -> dict[str, Any]:
    """
    Globals for feedback kernels. ``_f_``/``_c_``/``_div`` work on whole series
    (hoisted code); per-bin code calls ``_p_``/``_q_``/``_pdiv`` on floats and
    ``_v_``/``_w_``/``_vdiv`` on vectors across loops. CONV, PULSE and array
    literals have names of their own (``_conv_s``, ``_pulse_s``, ``_arr_s``
    over whole series; ``_pconv``/``_vconv`` per bin from a history).
    """
    env: dict[str, Any] = {"np": np, "_div": fx.v_div, "_shift_s": shift_s, "_full_s": full_s,
                           "_pdiv": fx.s_div, "_vdiv": fx.v_div, "_conv_s": conv_s, "_pulse_s": pulse_s,
                           "_arr_s": arr_s, "_pconv": fx.s_conv, "_vconv": fx.s_conv_v}
    for name, fn in fx.FUNCTIONS.items():
        if fn.vector is not None and name not in fx.TIMED:
            env[f"_f_{name}"] = env[f"_v_{name}"] = fn.vector
            env[f"_p_{name}"] = fn.scalar
    for op, cmp in fx.VECTOR_COMPARE.items():
        env[f"_c_{CMP_NAMES[op]}"] = env[f"_w_{CMP_NAMES[op]}"] = cmp
        env[f"_q_{CMP_NAMES[op]}"] = fx.SCALAR_COMPARE[op]
    return env
