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

from flowtime.engine.codegen import conv_s, pulse_s
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


# CONV and PULSE take literals and read the bin: their paths are compared below.
CASES = [(name, n) for name, fn in fx.FUNCTIONS.items() if fn.scalar is not None and name not in fx.TIMED
         for n in arities(fn)]


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


KERNELS = st.lists(st.one_of(st.sampled_from([0.0, 0.6, 0.3, 0.1, -0.5, 1e300, 1e-300]),
                             st.floats(-1e6, 1e6)), max_size=6).map(tuple)


def test_conv_of_a_constant_echo_is_the_reference_fixture() -> None:
    """topology-retry-echo: errors = 10 in every bin, kernel [0, 0.6, 0.3, 0.1]."""
    x = np.full(5, 10.0)
    assert fx.v_conv(x, (0.0, 0.6, 0.3, 0.1), 5).tolist() == [0.0, 6.0, 9.0, 10.0, 10.0]
    assert [fx.s_conv(x.tolist(), t, (0.0, 0.6, 0.3, 0.1)) for t in range(5)] == [0.0, 6.0, 9.0, 10.0, 10.0]


def test_conv_skips_non_finite_samples_and_an_empty_kernel_gives_zeros() -> None:
    x = np.array([1.0, math.nan, 2.0, math.inf, -math.inf, 4.0])
    assert fx.v_conv(x, (1.0, 10.0), 6).tolist() == [1.0, 10.0, 2.0, 20.0, 0.0, 4.0]
    assert fx.v_conv(x, (), 6).tolist() == [0.0] * 6
    assert fx.v_conv(3.0, (1.0, 1.0, 1.0), 4).tolist() == [3.0, 6.0, 9.0, 9.0]  # a number holds in every bin
    assert fx.v_conv(x[:2], (1.0,) * 10, 2).tolist() == [1.0, 1.0]  # a kernel longer than the grid


@given(st.lists(NUMBERS, min_size=1, max_size=12), KERNELS)
def test_conv_gives_the_same_bits_on_every_path(xs: list[float], kernel: tuple[float, ...]) -> None:
    """Whole series (time last, time first, K lanes), per bin on floats and per bin on vectors."""
    bins = len(xs)
    x = np.array(xs)
    with np.errstate(all="ignore"):
        whole = fx.v_conv(x, kernel, bins)
        lanes = fx.v_conv(np.stack([x, x]), kernel, bins)
        first = conv_s(np.stack([x, x], axis=1), kernel, (bins, 2))
        floats = [fx.s_conv(xs, t, kernel) for t in range(bins)]
        hist = np.stack([x, x, x], axis=1)
        vectors = [fx.s_conv_v(hist, t, kernel, np.zeros(3)) for t in range(bins)]
    for t in range(bins):
        w = float(whole[t])
        assert same(w, floats[t]), (t, w, floats[t])
        assert all(same(w, float(v)) for v in (lanes[0, t], lanes[1, t], first[t, 0], first[t, 1], *vectors[t]))
        assert not (w == 0.0 and math.copysign(1.0, w) < 0), "CONV never gives -0"


@given(st.integers(1, 6), st.integers(0, 9), st.lists(NUMBERS, min_size=1, max_size=12))
def test_pulse_gives_amp_on_pulse_bins_and_zero_elsewhere_on_every_path(period: int, phase: int,
                                                                         amps: list[float]) -> None:
    bins = len(amps)
    amp = np.array(amps)
    whole = fx.v_pulse(period, phase, amp, bins)
    first = pulse_s(period, phase, amp, (bins,))
    for t in range(bins):
        expected = amps[t] if t >= phase and (t - phase) % period == 0 else 0.0
        assert same(float(whole[t]), expected) and same(float(first[t]), expected)
        assert same(fx.s_pulse(t, period, phase, amps[t]), expected)
    assert fx.v_pulse(period, phase, 1.0, bins).tolist() == [
        1.0 if t >= phase and (t - phase) % period == 0 else 0.0 for t in range(bins)]


def test_pulse_phase_is_not_reduced_modulo_the_period() -> None:
    assert fx.v_pulse(2, 5, 1.0, 10).tolist() == [0, 0, 0, 0, 0, 1, 0, 1, 0, 1]
    assert fx.v_pulse(3, 0, 2.0, 7).tolist() == [2, 0, 0, 2, 0, 0, 2]


def test_step_is_one_at_or_above_the_threshold_and_zero_for_nan() -> None:
    x = np.array([1.0, 2.0, 3.0, math.nan, -math.inf])
    assert fx.v_step(x, 2.0).tolist() == [0.0, 1.0, 1.0, 0.0, 0.0]
    assert [fx.s_step(v, 2.0) for v in x.tolist()] == [0.0, 1.0, 1.0, 0.0, 0.0]
