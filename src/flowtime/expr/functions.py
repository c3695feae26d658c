"""
Built-in functions: one table of name -> arity and implementations.

Each function has a NumPy implementation over whole series (or floats) and a
plain-float implementation used inside feedback loops, which are computed bin
by bin. Both give the same bits for every input: the exact operations agree
by IEEE; EXP, LOG and POW call NumPy on the float too.

``SHIFT`` is listed for arity checks; its lag must be a literal and it is
compiled by the engine, not called.
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Callable
from functools import reduce
from typing import Any

import numpy as np

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
    )
}


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
