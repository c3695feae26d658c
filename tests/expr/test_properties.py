"""Properties of the expression language over random trees, series and models."""

from __future__ import annotations

from typing import Any

import numpy as np
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st
from tests.strategies import SERIES_NAMES, expressions, grids, models, pmfs, series

from flowtime.engine import evaluate
from flowtime.expr.parser import parse_expression
from flowtime.expr.syntax import Expr, to_text
from flowtime.model.load import load_model

PROPERTY = settings(max_examples=150, deadline=None)


def _evaluate(bins: int, a: list[float], b: list[float], exprs: dict[str, str]) -> dict[str, np.ndarray]:
    doc = {
        "schemaVersion": 1,
        "grid": {"bins": bins, "binSize": 1, "binUnit": "hours"},
        "nodes": [
            {"id": "a", "kind": "const", "values": a},
            {"id": "b", "kind": "const", "values": b},
            *({"id": k, "kind": "expr", "expr": v} for k, v in exprs.items()),
        ],
    }
    return evaluate(load_model(yaml.safe_dump(doc)).model).series


@st.composite
def _inputs(draw: st.DrawFn) -> tuple[int, list[float], list[float]]:
    bins = draw(st.integers(min_value=1, max_value=8))
    return bins, draw(series(bins)), draw(series(bins))


@PROPERTY
@given(expressions())
def test_printed_expression_parses_back_to_the_same_tree(e: Expr) -> None:
    assert parse_expression(to_text(e)) == e


@PROPERTY
@given(expressions())
def test_printing_a_parsed_expression_is_stable(e: Expr) -> None:
    text = to_text(e)
    assert to_text(parse_expression(text)) == text


@PROPERTY
@given(expressions(valid=True, names=SERIES_NAMES, max_leaves=12), _inputs())
def test_shift_by_zero_is_the_identity(e: Expr, inputs: tuple[int, list[float], list[float]]) -> None:
    bins, a, b = inputs
    text = to_text(e)
    out = _evaluate(bins, a, b, {"x": text, "shifted": f"SHIFT({text}, 0)"})
    assert out["shifted"].tobytes() == out["x"].tobytes()


@PROPERTY
@given(_inputs(), st.integers(min_value=0, max_value=10))
def test_shift_reads_k_bins_back_and_fills_with_zero(inputs: tuple[int, list[float], list[float]], k: int) -> None:
    bins, a, b = inputs
    out = _evaluate(bins, a, b, {"shifted": f"SHIFT(a, {k})"})
    expected = ([0.0] * k + a)[:bins]
    np.testing.assert_array_equal(out["shifted"], expected)


@PROPERTY
@given(_inputs())
def test_min_is_at_most_max_for_finite_series(inputs: tuple[int, list[float], list[float]]) -> None:
    bins, a, b = inputs
    out = _evaluate(bins, a, b, {"lo": "MIN(a, b)", "hi": "MAX(a, b)", "lo_swapped": "MIN(b, a)"})
    assert np.all(out["lo"] <= out["hi"])
    np.testing.assert_array_equal(out["lo"], out["lo_swapped"])
    np.testing.assert_array_equal(np.minimum(out["lo"], out["hi"]), out["lo"])


@PROPERTY
@given(
    expressions(valid=True, names=SERIES_NAMES, max_leaves=8),
    expressions(valid=True, names=SERIES_NAMES, max_leaves=8),
    _inputs(),
)
def test_min_is_at_most_max_for_expressions(e1: Expr, e2: Expr, inputs: tuple[int, list[float], list[float]]) -> None:
    bins, a, b = inputs
    args = f"{to_text(e1)}, {to_text(e2)}"
    out = _evaluate(bins, a, b, {"lo": f"MIN({args})", "hi": f"MAX({args})"})
    finite = np.isfinite(out["lo"]) & np.isfinite(out["hi"])
    assert np.all(out["lo"][finite] <= out["hi"][finite])


@settings(max_examples=100, deadline=None)
@given(models(), st.integers(min_value=0, max_value=2**63 - 1))
def test_same_model_and_seed_give_identical_series(text: str, seed: int) -> None:
    model = load_model(text).model
    first = evaluate(model, seed=seed)
    second = evaluate(load_model(text).model, seed=seed)
    assert first.sampled == second.sampled == ["p"]
    assert list(first.series) == list(second.series)
    for node_id, values in first.series.items():
        assert values.tobytes() == second.series[node_id].tobytes(), node_id
        assert not values.flags.writeable


@PROPERTY
@given(pmfs(sample=False), st.integers(min_value=1, max_value=8))
def test_unsampled_pmf_is_its_expected_value_in_every_bin(pmf: dict[str, Any], bins: int) -> None:
    doc = {
        "schemaVersion": 1,
        "grid": {"bins": bins, "binSize": 1, "binUnit": "hours"},
        "nodes": [{"id": "p", "kind": "pmf", "pmf": pmf}],
    }
    loaded = load_model(yaml.safe_dump(doc))
    assert loaded.warnings == [], "probabilities summing to exactly 1 are not normalised"
    expected = sum(v * q for v, q in zip(pmf["values"], pmf["probabilities"], strict=True))
    assert evaluate(loaded.model).series["p"].tolist() == [expected] * bins


@PROPERTY
@given(grids())
def test_grid_mapping_loads_with_its_bin_length(grid: dict[str, Any]) -> None:
    loaded = load_model(yaml.safe_dump({"schemaVersion": 1, "grid": grid}))
    unit_minutes = {"minutes": 1, "hours": 60, "days": 1440, "weeks": 10080}[str(grid["binUnit"])]
    assert loaded.model.grid.bins == grid["bins"]
    assert loaded.model.grid.bin_minutes == grid["binSize"] * unit_minutes
