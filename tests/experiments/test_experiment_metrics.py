"""Metrics: series and expressions, every aggregate and the window by hand, unknown series and NaN located."""

from __future__ import annotations

import pytest

import flowtime
from flowtime.errors import ExperimentError

MODEL = """\
schemaVersion: 1
grid: {bins: 4, binSize: 1, binUnit: hours}
nodes:
  - {id: x, kind: const, values: [1, 2, 3, 4]}
  - {id: y, kind: const, values: [4, 3, 2, 1]}
  - {id: total, kind: expr, expr: "x + y"}
"""


def one(metric: dict[str, object], factor: float = 1.0) -> float:
    r = flowtime.sweep(MODEL, [{"target": "x", "values": [factor], "mode": "scale"}], metric)
    return float(r.metrics[0, 0])


@pytest.mark.parametrize(("aggregate", "expected"), [
    # x - y = [-3, -1, 1, 3]
    ("mean", 0.0), ("sum", 0.0), ("max", 3.0), ("min", -3.0), ("last", 3.0),
    ("p50", 0.0),  # halfway between -1 and 1
    ("p95", 2.7),  # position 0.95 x 3 = 2.85: 1 + 0.85 x (3 - 1)
    ("p99", 2.94),  # position 2.97: 1 + 0.97 x 2
])
def test_every_aggregate_of_an_expression(aggregate: str, expected: float) -> None:
    assert one({"expr": "x - y", "aggregate": aggregate}) == pytest.approx(expected, abs=1e-12)


def test_a_window_takes_bins_start_to_end_exclusive() -> None:
    assert one({"series": "x", "window": {"start": 1, "end": 3}}) == 2.5  # bins 1, 2: (2 + 3) / 2
    assert one({"series": "x", "window": {"start": 2}, "aggregate": "sum"}) == 7.0  # 3 + 4


def test_expressions_use_the_models_functions_and_division_rule() -> None:
    assert one({"expr": "MAX(x, y) * 2", "aggregate": "sum"}) == 28.0  # [4, 3, 3, 4] x 2
    assert one({"expr": "total / (x - x)", "aggregate": "sum"}) == 0.0  # a zero divisor gives 0, as in models
    assert one({"expr": "x >= 3", "aggregate": "sum"}) == 2.0


def test_unknown_series_and_bin_functions_are_located() -> None:
    with pytest.raises(ExperimentError) as got:
        flowtime.sweep(MODEL, [{"target": "x", "values": [1]}],
                       [{"series": "totl"}, {"expr": "x + SHIFT(y, 1)"}, {"expr": "x +"},
                        {"series": "x", "window": {"start": 3, "end": 9}}])
    problems = {p.path: p.message for p in got.value.problems}
    assert set(problems) == {"metrics[0].series", "metrics[1].expr", "metrics[2].expr", "metrics[3].window"}
    assert "total" in problems["metrics[0].series"]  # did you mean
    assert "SHIFT" in problems["metrics[1].expr"]


def test_a_nan_metric_says_which_points() -> None:
    r = flowtime.sweep(MODEL, [{"target": "x", "values": [1, -1, 2, -2], "mode": "scale"}],
                       {"expr": "SQRT(x)", "name": "root"})
    assert [w.path for w in r.warnings] == ["metrics[0]"]
    assert "points 1, 3" in r.warnings[0].message
    assert r.table["root"].isna().tolist() == [False, True, False, True]
