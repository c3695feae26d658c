"""Run comparison arithmetic, checked by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest

from flowtime.artifacts.compare import compare_series, delta_of, json_values
from flowtime.errors import ConflictError


def arr(*v: float) -> np.ndarray:
    return np.array(v, dtype=np.float64)


def test_delta_statistics_by_hand() -> None:
    d = delta_of("x", arr(12, 20, 20, 44), arr(10, 20, 30, 40))
    assert d.delta.tolist() == [2, 0, -10, 4]
    assert d.rel_delta.tolist() == [0.2, 0, -1 / 3, 0.1]
    assert (d.sum_delta, d.mean_delta, d.max_abs_delta) == (-4, -1, 10)


def test_relative_delta_is_zero_where_b_is_zero_and_uses_abs_b() -> None:
    d = delta_of("x", arr(5, 0, -3, 1), arr(0, 0, -6, -2))
    assert d.rel_delta.tolist() == [0, 0, 0.5, 1.5]


def test_non_finite_values_propagate_and_become_null() -> None:
    d = delta_of("x", arr(1, math.nan), arr(1, 2))
    assert json_values(d.delta) == [0, None]
    assert d.to_json()["sumDelta"] is None
    assert d.summary() == {"id": "x", "maxAbsDelta": None, "sumDelta": None, "meanDelta": None}


def test_ranking_is_by_max_abs_delta_then_id_with_nan_last() -> None:
    c = compare_series(
        {"b": arr(0, 5), "a": arr(0, -5), "c": arr(1, 1), "n": arr(math.nan, 0), "only_a": arr(1)},
        {"c": arr(1, 1), "a": arr(0, 0), "b": arr(0, 0), "n": arr(0, 0), "only_b": arr(1)},
    )
    assert [d.id for d in c.series] == ["b", "a", "c", "n"]
    assert [d.id for d in c.ranking] == ["a", "b", "c", "n"]
    assert (c.only_in_a, c.only_in_b) == (["only_a"], ["only_b"])


def test_series_of_different_lengths_conflict() -> None:
    with pytest.raises(ConflictError, match="3 values in A but 2 in B"):
        delta_of("x", arr(1, 2, 3), arr(1, 2))


def test_empty_series_compare_to_zero() -> None:
    d = delta_of("x", arr(), arr())
    assert (d.sum_delta, d.mean_delta, d.max_abs_delta) == (0, 0, 0)

