"""
Built-in functions: one table of name -> arity and implementations.

Each function has a NumPy implementation over whole series (or floats) and a
plain-float implementation used inside feedback loops, which are computed bin
by bin. Both give the same bits for every input: the exact operations agree
by IEEE; EXP, LOG and POW call NumPy on the float too.

``SHIFT`` is listed for arity checks; its lag must be a literal and it is
compiled by the engine, not called. ``CONV`` and ``PULSE`` take literal
arguments too (a kernel; a period and a phase) and depend on the bin, so the
engine calls them with those literals and the number of bins (``v_conv``,
``v_pulse``, ``v_array``); their per-bin forms read a history (``s_conv``) or
the bin (``s_pulse``). The exact order of CONV's sums is in 0017.
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Callable
from functools import reduce
from typing import Any

import numpy as np

from flowtime.expr.syntax import Array, Call, Expr, Num, Unary
from flowtime.records import record

Value = Any  # a float or a float64 array


@record
class Function:
    name: str
    min_args: int
    max_args: int | None  # None = variadic
    vector: Callable[..., Value] | None
    scalar: Callable[..., float] | None
    signature: str

    def arity_text(self) -> str:
        if self.max_args is None:
            return f"at least {self.min_args} argument{'s' if self.min_args != 1 else ''}"
        if self.min_args == self.max_args:
            return f"{self.min_args} argument{'s' if self.min_args != 1 else ''}"
        return f"{self.min_args} to {self.max_args} arguments"


# --- vector implementations -------------------------------------------------

def v_div(a: Value, b: Value) -> Value:
    """Division where a zero divisor gives 0 (the reference's rule)."""
    if np.ndim(b) == 0:
        bf = float(b)
        if bf == 0.0:
            return np.zeros_like(a, dtype=np.float64) if np.ndim(a) else 0.0
        return a / bf
    b = np.asarray(b, dtype=np.float64)
    out = np.zeros(np.broadcast_shapes(np.shape(a), b.shape), dtype=np.float64)
    np.divide(a, b, out=out, where=b != 0.0)
    return out


# MIN, MAX and CLAMP give +0 for a zero result: on a tie between 0 and -0 NumPy
# returns either operand, depending on the CPU's instructions, and a result must
# not depend on the machine (adding 0.0 turns -0 into +0 and changes nothing else).

def v_min(*xs: Value) -> Value:
    return reduce(np.minimum, xs) + 0.0 if len(xs) > 1 else xs[0]


def v_max(*xs: Value) -> Value:
    return reduce(np.maximum, xs) + 0.0 if len(xs) > 1 else xs[0]


def v_clamp(v: Value, lo: Value, hi: Value) -> Value:
    return np.maximum(lo, np.minimum(hi, v)) + 0.0


def v_pow(a: Value, b: Value) -> Value:
    """
    a ** b as C99 pow gives it everywhere: NumPy replaces some powers by a scalar
    exponent with a faster function (x ** 0.5 by sqrt, so POW(-0, 0.5) would be
    -0 and POW(-inf, 0.5) NaN) - an exponent given as an array never takes that path.
    """
    if np.ndim(b) == 0:
        b = np.full(np.shape(a) or (1,), float(b))
        return np.power(a, b) if np.ndim(a) else float(np.power(np.array([a], dtype=np.float64), b)[0])
    return np.power(a, b)


def v_round(x: Value) -> Value:
    """Round half away from zero (2.5 -> 3, -2.5 -> -3)."""
    t = np.trunc(x)
    return np.where(np.abs(x - t) >= 0.5, t + np.sign(x), t)


def v_mod(a: Value, b: Value) -> Value:
    """Floored modulo (result takes the divisor's sign); a zero divisor gives 0."""
    return np.where(np.asarray(b) == 0.0, 0.0, np.mod(a, np.where(np.asarray(b) == 0.0, 1.0, b)))


def v_if(c: Value, a: Value, b: Value) -> Value:
    return np.where(np.asarray(c) != 0.0, a, b)


def v_step(x: Value, th: Value) -> Value:
    """1 where x >= th, else 0 (NaN on either side: 0)."""
    return np.asarray(np.greater_equal(x, th), dtype=np.float64)


def v_conv(x: Value, kernel: tuple[float, ...], bins: int, out: Value = None) -> Value:
    """
    Causal convolution along the last (time) axis: ``y[t] = sum of x[t-j] * kernel[j]``
    over ``j <= t``, non-finite samples skipped. The sum starts at +0 and adds
    the terms in the order j = 0, 1, ... (one ``+`` per term, as the per-bin
    ``s_conv``); a skipped sample adds +0, which changes no sum (a sum that
    starts at +0 is never -0). So CONV never gives -0. ``out``: an array of
    the result's shape to write into (not one of ``x``).

    >>> v_conv(np.array([10.0, 10, 10, 10, 10]), (0.0, 0.6, 0.3, 0.1), 5).tolist()
    [0.0, 6.0, 9.0, 10.0, 10.0]
    """
    xs = np.asarray(x, dtype=np.float64)
    if xs.ndim == 0:
        xs = np.full(bins, float(xs))
    xs = np.where(np.isfinite(xs), xs, 0.0)
    if out is None:
        out = np.zeros(xs.shape, dtype=np.float64)
    else:
        out.fill(0.0)
    for j, k in enumerate(kernel[:bins]):
        out[..., j:] += xs[..., : bins - j] * k
    return out


def v_pulse(period: int, phase: int, amp: Value, bins: int, out: Value = None) -> Value:
    """
    ``amp[t]`` where ``t >= phase`` and ``(t - phase) % period == 0``, else +0
    (along the last axis; the phase is not reduced modulo the period).

    >>> v_pulse(3, 1, 2.0, 8).tolist()
    [0.0, 2.0, 0.0, 0.0, 2.0, 0.0, 0.0, 2.0]
    """
    a = np.asarray(amp, dtype=np.float64)
    if out is None:
        out = np.zeros((*a.shape[:-1], bins) if a.ndim else (bins,), dtype=np.float64)
    else:
        out.fill(0.0)
    out[..., phase::period] = a[..., phase::period] if a.ndim else float(a)
    return out


def v_array(values: tuple[float, ...], bins: int) -> Value:
    """An array literal read as a series: ``values[t]``, 0 past its end."""
    out = np.zeros(bins, dtype=np.float64)
    n = min(len(values), bins)
    out[:n] = values[:n]
    return out


def _cmp(op: Callable[[Value, Value], Value]) -> Callable[[Value, Value], Value]:
    def f(a: Value, b: Value) -> Value:
        return np.asarray(op(a, b), dtype=np.float64)

    return f


VECTOR_COMPARE: dict[str, Callable[[Value, Value], Value]] = {
    "<": _cmp(np.less), "<=": _cmp(np.less_equal), ">": _cmp(np.greater),
    ">=": _cmp(np.greater_equal), "==": _cmp(np.equal), "!=": _cmp(np.not_equal),
}

# --- scalar implementations (plain floats, for bin-by-bin loops) -------------

_NAN = float("nan")


def s_div(a: float, b: float) -> float:
    return a / b if b != 0.0 else 0.0


def s_min(*xs: float) -> float:
    r = xs[0]
    for x in xs[1:]:
        if x != x or r != r:  # NaN propagates, as np.minimum does
            return _NAN
        if x < r:
            r = x
    return r + 0.0 if len(xs) > 1 else r


def s_max(*xs: float) -> float:
    r = xs[0]
    for x in xs[1:]:
        if x != x or r != r:
            return _NAN
        if x > r:
            r = x
    return r + 0.0 if len(xs) > 1 else r


def s_clamp(v: float, lo: float, hi: float) -> float:
    return s_max(lo, s_min(hi, v))


def s_round(x: float) -> float:
    if not math.isfinite(x):
        return x
    t = math.copysign(float(math.trunc(x)), x)  # IEEE: a zero keeps x's sign (-0.4 -> -0)
    return t + math.copysign(1.0, x) if abs(x - t) >= 0.5 else t


def s_mod(a: float, b: float) -> float:
    if b == 0.0:
        return 0.0
    return float(np.mod(a, b))


def s_sqrt(x: float) -> float:
    return math.sqrt(x) if x >= 0 else _NAN


# EXP, LOG and POW on one float go through NumPy too: its routines (vectorised,
# CPU-specific) and the C library's differ in the last bit, and a loop's numbers
# must not depend on whether it ran on floats or as vectors (0014).

def s_log(x: float) -> float:
    return float(np.log(x))


def s_exp(x: float) -> float:
    return float(np.exp(x))


def s_pow(a: float, b: float) -> float:
    return float(v_pow(np.array([a]), np.array([b]))[0])


def s_floor(x: float) -> float:
    # IEEE, as NumPy: a zero result keeps x's sign (FLOOR(-0) = -0, CEIL(-0.5) = -0).
    if not math.isfinite(x):
        return x
    r = float(math.floor(x))
    return r if r else math.copysign(0.0, x)


def s_ceil(x: float) -> float:
    if not math.isfinite(x):
        return x
    r = float(math.ceil(x))
    return r if r else math.copysign(0.0, x)


def s_if(c: float, a: float, b: float) -> float:
    return a if c != 0.0 else b


def s_step(x: float, th: float) -> float:
    return 1.0 if x >= th else 0.0


def s_conv(history: Any, t: int, kernel: tuple[float, ...]) -> float:
    """
    CONV at bin ``t`` from ``history`` (the argument's values at bins 0..t, a
    list of floats): the terms in the order j = 0, 1, ... (as ``v_conv``).
    """
    acc = 0.0
    for j, k in enumerate(kernel):
        if j > t:
            break
        v = history[t - j]
        if v - v == 0.0:  # finite
            acc = acc + v * k
    return acc


def s_conv_v(history: Any, t: int, kernel: tuple[float, ...], zero: Any) -> Any:
    """``s_conv`` on a ``(bins, n)`` history: n columns at once (vector loop kernels)."""
    acc = zero
    for j, k in enumerate(kernel):
        if j > t:
            break
        v = history[t - j]
        acc = acc + np.where(np.isfinite(v), v * k, 0.0)
    return acc


def s_pulse(t: int, period: int, phase: int, amp: Any, zero: Any = 0.0) -> Any:
    """PULSE at bin ``t``: ``amp`` on a pulse bin, else ``zero``."""
    return amp if t >= phase and (t - phase) % period == 0 else zero


SCALAR_COMPARE: dict[str, Callable[[float, float], float]] = {
    "<": lambda a, b: 1.0 if a < b else 0.0,
    "<=": lambda a, b: 1.0 if a <= b else 0.0,
    ">": lambda a, b: 1.0 if a > b else 0.0,
    ">=": lambda a, b: 1.0 if a >= b else 0.0,
    "==": lambda a, b: 1.0 if a == b else 0.0,
    "!=": lambda a, b: 1.0 if a != b else 0.0,
}

FUNCTIONS: dict[str, Function] = {
    f.name: f
    for f in (
        Function("SHIFT", 2, 2, None, None, "SHIFT(series, lag)"),
        Function("MIN", 1, None, v_min, s_min, "MIN(a, b, ...)"),
        Function("MAX", 1, None, v_max, s_max, "MAX(a, b, ...)"),
        Function("CLAMP", 3, 3, v_clamp, s_clamp, "CLAMP(value, lo, hi)"),
        Function("ABS", 1, 1, np.abs, abs, "ABS(x)"),
        Function("SQRT", 1, 1, np.sqrt, s_sqrt, "SQRT(x)"),
        Function("POW", 2, 2, v_pow, s_pow, "POW(base, exponent)"),
        Function("EXP", 1, 1, np.exp, s_exp, "EXP(x)"),
        Function("LOG", 1, 1, np.log, s_log, "LOG(x)"),
        Function("FLOOR", 1, 1, np.floor, s_floor, "FLOOR(x)"),
        Function("CEIL", 1, 1, np.ceil, s_ceil, "CEIL(x)"),
        Function("ROUND", 1, 1, v_round, s_round, "ROUND(x)"),
        Function("MOD", 2, 2, v_mod, s_mod, "MOD(a, b)"),
        Function("IF", 3, 3, v_if, s_if, "IF(condition, then, else)"),
        Function("STEP", 2, 2, v_step, s_step, "STEP(x, threshold)"),
        Function("CONV", 2, 2, v_conv, s_conv, "CONV(x, [k0, k1, ...])"),
        Function("PULSE", 1, 3, v_pulse, s_pulse, "PULSE(period, phase, amplitude)"),
    )
}


# Functions the engine calls with their literal arguments and the number of bins (not as plain values).
TIMED = frozenset({"SHIFT", "CONV", "PULSE"})


def conv_kernel(arg: Expr) -> tuple[float, ...] | None:
    """
    CONV's kernel: an array literal, or a number literal (a kernel of length
    one, a sign allowed); None for anything else.

    >>> conv_kernel(Array((0.5, 0.5))), conv_kernel(Unary("-", Num(2.0))), conv_kernel(Call("MIN", ()))
    ((0.5, 0.5), (-2.0,), None)
    """
    if isinstance(arg, Array):
        return arg.values
    if isinstance(arg, Num):
        return (arg.value,)
    if isinstance(arg, Unary) and isinstance(arg.operand, Num):
        return ((-arg.operand.value if arg.op == "-" else arg.operand.value) + 0.0,)
    return None


def _whole(e: Expr, least: int) -> int | None:
    if isinstance(e, Num) and e.value >= least and e.value == int(e.value) and e.value < 2**53:
        return int(e.value)
    return None


def pulse_timing(call: Call) -> tuple[int, int] | str:
    """PULSE's (period, phase), or a message saying which literal is wrong."""
    period = _whole(call.args[0], 1) if call.args else None
    if period is None:
        return "PULSE period must be a whole number literal >= 1 (e.g. PULSE(24)), got " + _what(call.args[0])
    phase = _whole(call.args[1], 0) if len(call.args) > 1 else 0
    if phase is None:
        return "PULSE phase must be a whole number literal >= 0 (e.g. PULSE(24, 6)), got " + _what(call.args[1])
    return period, phase


def _what(e: Expr) -> str:
    if isinstance(e, Unary) and isinstance(e.operand, Num):
        return f"{e.op}{e.operand.value:g}"
    if isinstance(e, Num):
        return f"{e.value:g}"
    return "an array" if isinstance(e, Array) else "an expression"


def suggest(name: str, candidates: list[str] | tuple[str, ...]) -> str:
    """' (did you mean X?)' or ''."""
    close = difflib.get_close_matches(name, list(candidates), n=1, cutoff=0.6)
    if not close:
        lowered = {c.lower(): c for c in candidates}
        if name.lower() in lowered:
            close = [lowered[name.lower()]]
    return f" (did you mean `{close[0]}`?)" if close else ""


def check_call(name: str, n_args: int) -> str | None:
    """An error message for an unknown function or a wrong argument count, else None."""
    fn = FUNCTIONS.get(name)
    if fn is None:
        hint = suggest(name, tuple(FUNCTIONS))
        return f"unknown function {name}{hint}; known functions: {', '.join(FUNCTIONS)}"
    if n_args < fn.min_args or (fn.max_args is not None and n_args > fn.max_args):
        return f"{name} expects {fn.arity_text()}, got {n_args}: {fn.signature}"
    return None
