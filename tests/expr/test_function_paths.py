"""
Every function has two implementations: over whole series (NumPy) and over one
float (inside feedback loops run bin by bin). Both must give the same bits -
including the sign of a zero, which the CSV shows as ``-0`` - or a loop's
numbers would change with how it happens to be scheduled.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from flowtime.expr import functions as fx

SPECIAL = [0.0, -0.0, 0.5, -0.5, 1.5, -1.5, 2.5, -2.5, 0.49999999999999994, -0.49999999999999994, 3.0, -3.0,
           1e-300, -1e-300, 1e300, -1e300, math.inf, -math.inf, math.nan, 7.25, -7.25]
# Every function gives the same bits on both paths (EXP, LOG and POW call NumPy on floats too: 0014).
APPROXIMATE: set[str] = set()
NUMBERS = st.one_of(st.sampled_from(SPECIAL), st.floats(allow_nan=True, allow_infinity=True))


def same(a: float, b: float) -> bool:
    """Equal bits, with every NaN counted as the same (the CSV writes any NaN as ``NaN``)."""
    if math.isnan(a) or math.isnan(b):
        return math.isnan(a) and math.isnan(b)
    return np.float64(a).view(np.int64) == np.float64(b).view(np.int64)


def close(a: float, b: float) -> bool:
    if math.isnan(a) or math.isnan(b) or math.isinf(a) or math.isinf(b) or a == 0 or b == 0:
        return same(a, b)
    return math.isclose(a, b, rel_tol=1e-15)


def arities(fn: fx.Function) -> list[int]:
    return [fn.min_args] if fn.max_args == fn.min_args else [fn.min_args, fn.min_args + 1, 3]


CASES = [(name, n) for name, fn in fx.FUNCTIONS.items() if fn.scalar is not None for n in arities(fn)]


@pytest.mark.parametrize(("name", "n"), CASES)
def test_float_and_series_paths_agree_on_every_special_value(name: str, n: int) -> None:
    fn = fx.FUNCTIONS[name]
    assert fn.scalar is not None and fn.vector is not None
    check = close if name in APPROXIMATE else same
    columns = list(itertools.product(SPECIAL, repeat=n)) if n <= 2 else \
        list(itertools.product(SPECIAL[:9], repeat=n))
    with np.errstate(all="ignore"):  # as during evaluation
        vector = fn.vector(*(np.array(col, dtype=np.float64) for col in zip(*columns, strict=True)))
        floats = [fn.scalar(*args) for args in columns]
    bad = [(args, f, float(v)) for args, f, v in zip(columns, floats, np.broadcast_to(vector, len(columns)),
                                                     strict=True)
           if not check(f, float(v))]
    assert not bad, f"{name}: (args, float path, series path) {bad[:5]}"


@given(st.sampled_from(CASES), st.lists(NUMBERS, min_size=3, max_size=3))
def test_float_and_series_paths_agree_on_any_floats(case: tuple[str, int], values: list[float]) -> None:
    name, n = case
    fn = fx.FUNCTIONS[name]
    assert fn.scalar is not None and fn.vector is not None
    args = values[:n]
    check = close if name in APPROXIMATE else same
    with np.errstate(all="ignore"):
        vector = float(fn.vector(*(np.array([a]) for a in args))[0])
        scalar = fn.scalar(*args)
    assert check(scalar, vector)


@pytest.mark.parametrize(("a", "b"), [(0.0, -0.0), (-0.0, 0.0), (-0.0, -0.0), (0.0, 0.0)])
def test_min_and_max_of_zeros_do_not_depend_on_operand_order(a: float, b: float) -> None:
    # NumPy returns either operand on a tie (it varies with the CPU's instructions): a zero result is +0.
    for fn in (fx.FUNCTIONS["MIN"], fx.FUNCTIONS["MAX"]):
        assert fn.vector is not None and fn.scalar is not None
        with np.errstate(all="ignore"):
            assert same(float(fn.vector(np.array([a]), np.array([b]))[0]), 0.0)
        assert same(fn.scalar(a, b), 0.0)


def test_rounding_keeps_the_sign_of_a_zero_like_ieee() -> None:
    for name, x in [("CEIL", -0.5), ("FLOOR", -0.0), ("ROUND", -0.4), ("ROUND", -0.0)]:
        fn = fx.FUNCTIONS[name]
        assert fn.scalar is not None
        assert same(fn.scalar(x), -0.0), name
