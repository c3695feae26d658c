"""Sensitivity: analytic local elasticities, Morris effects and Sobol indices over NumPy objectives and a model."""

from __future__ import annotations

import numpy as np
import pytest

import flowtime
from flowtime.errors import ExperimentError
from flowtime.experiments.objective import Bounds
from flowtime.experiments.sensitivity import SensitivitySettings, run_sensitivity
from flowtime.experiments.spec import parse_spec

UNIT3 = [Bounds("x1", 0.0, 1.0), Bounds("x2", 0.0, 1.0), Bounds("x3", 0.0, 1.0)]
CALLS: list[int] = []


def additive_and_product(x: np.ndarray) -> np.ndarray:
    """Metric 0: 2 x1 + x2 (x3 has no effect); metric 1: x1 x2."""
    CALLS.append(len(x))
    return np.stack([2 * x[:, 0] + x[:, 1] + 0 * x[:, 2], x[:, 0] * x[:, 1]], axis=1)


def square_times(x: np.ndarray) -> np.ndarray:
    CALLS.append(len(x))
    return (x[:, 0] ** 2 * x[:, 1])[:, None]


def test_local_elasticities_of_x1_squared_x2_are_2_and_1_in_one_call() -> None:
    # y = x1^2 x2 at (2, 3): y = 12, dy/dx1 = 2 x1 x2 = 12, dy/dx2 = x1^2 = 4 (central differences of a quadratic
    # and a linear term are exact); elasticities 12 * 2 / 12 = 2 and 4 * 3 / 12 = 1
    CALLS.clear()
    r = run_sensitivity(square_times, [Bounds("a", 1, 3), Bounds("b", 1, 5)], SensitivitySettings(step=0.01),
                        metric_names=["y"])
    assert CALLS == [5]  # the base and 2p = 4 neighbours
    a, b = r.local
    assert (a.parameter, a.x, a.y) == ("a", 2.0, 12.0)
    assert a.derivative == pytest.approx(12.0, rel=1e-9) and b.derivative == pytest.approx(4.0, rel=1e-9)
    assert a.elasticity == pytest.approx(2.0, rel=1e-9) and b.elasticity == pytest.approx(1.0, rel=1e-9)
    # the tornado: a swings y from (1.98^2) 3 = 11.7612 to (2.02^2) 3 = 12.2412; b from 4 * 2.97 to 4 * 3.03
    assert (a.low, a.high) == pytest.approx((1.98, 2.02))
    assert a.low_effect == pytest.approx(11.7612 - 12) and a.high_effect == pytest.approx(12.2412 - 12)
    assert b.low_effect == pytest.approx(-0.12) and b.high_effect == pytest.approx(0.12)
    assert [e.parameter for e in r.tornado("y")] == ["a", "b"]
    j = r.to_json()
    assert j["tornado"]["y"][0] == {"parameter": "a", "low": pytest.approx(-0.2388), "high": pytest.approx(0.2412)}
    assert j["local"][1]["elasticity"] == pytest.approx(1.0)


def test_an_elasticity_at_x_or_y_zero_is_undefined_not_infinite() -> None:
    # at (0, 3): y = 0, dy/dx2 = x1^2 = 0; x1 = 0 steps by h of its range (0.05 * 2): y(+-0.1) = 0.03 both sides
    r = run_sensitivity(square_times, [Bounds("a", -1, 1), Bounds("b", 1, 5)], SensitivitySettings(base=[0, 3]))
    a, b = r.local
    assert a.elasticity is None and a.undefined == "a is 0 at the base point"
    assert b.elasticity is None and b.undefined == "0 is 0 at the base point"
    assert a.derivative == pytest.approx(0.0, abs=1e-12) and a.y_low == a.y_high == pytest.approx(0.03)
    assert r.to_json()["local"][0]["elasticity"] is None


def test_a_step_past_a_bound_is_clipped_to_it() -> None:
    # base a = 3 at its upper bound, h = 5 % (the default): the up step stays at 3, the secant is over
    # [2.85, 3]: (9 - 8.1225) / 0.15 = 5.85
    r = run_sensitivity(square_times, [Bounds("a", 1, 3), Bounds("b", 1, 5)], SensitivitySettings(base=[3, 1]))
    a = r.local[0]
    assert (a.low, a.high) == pytest.approx((2.85, 3.0))
    assert a.derivative == pytest.approx(5.85)
    assert r.points[:, 0].max() == 3.0


def test_morris_effects_of_a_linear_model_are_its_coefficients() -> None:
    # every elementary effect of 2 x1 + x2 is 2 (x1), 1 (x2), 0 (x3): mu = mu* = coefficient, sigma = 0
    CALLS.clear()
    r = run_sensitivity(additive_and_product, UNIT3, SensitivitySettings(method="morris", trajectories=10), seed=5)
    assert CALLS == [10 * (3 + 1)]  # the whole design in one call
    idx = r.indices
    assert idx is not None
    assert idx["0"]["mu"] == pytest.approx((2.0, 1.0, 0.0))
    assert idx["0"]["muStar"] == pytest.approx((2.0, 1.0, 0.0))
    assert idx["0"]["sigma"] == pytest.approx((0.0, 0.0, 0.0), abs=1e-9)
    # x1 x2 is not additive: effects vary with the other input (sigma > 0), x3's are 0
    assert min(idx["1"]["sigma"][:2]) > 0 and idx["1"]["muStar"][2] == 0.0
    again = run_sensitivity(additive_and_product, UNIT3, SensitivitySettings(method="morris", trajectories=10),
                            seed=5)
    assert np.array_equal(again.points, r.points) and again.indices == r.indices


def test_sobol_indices_of_an_additive_model_and_a_product() -> None:
    # y = 2 x1 + x2 on U(0,1)^3: Var = 4/12 + 1/12, S1 = ST = (4/5, 1/5, 0).
    # y = x1 x2: Var = E[x1^2]E[x2^2] - (1/4)^2 = 1/9 - 1/16 = 7/144; Var E[y|x1] = Var(x1/2) = 1/48,
    # S1 = (1/48)/(7/144) = 3/7 each, ST = 1 - S1(other) = 4/7 each (the interaction 1/7 counted in both).
    CALLS.clear()
    r = run_sensitivity(additive_and_product, UNIT3, SensitivitySettings(method="sobol", samples=1024), seed=3,
                        metric_names=["sum", "product"])
    assert CALLS == [1024 * (3 + 2)]
    idx = r.indices
    assert idx is not None
    s = idx["sum"]
    assert s["S1"] == pytest.approx((0.8, 0.2, 0.0), abs=1e-6)
    assert s["ST"] == pytest.approx((0.8, 0.2, 0.0), abs=1e-6)
    p = idx["product"]
    for i in (0, 1):
        assert abs(p["S1"][i] - 3 / 7) <= max(p["S1Conf"][i], 0.02)
        assert abs(p["ST"][i] - 4 / 7) <= max(p["STConf"][i], 0.02)
        assert 0 < p["S1Conf"][i] < 0.2
    assert r.second_order is None and "secondOrder" not in r.to_json()


def test_sobol_second_order_of_the_product_is_its_interaction() -> None:
    # S2(x1, x2) of x1 x2 = 1 - 3/7 - 3/7 = 1/7; of the additive model 0
    r = run_sensitivity(additive_and_product, UNIT3, SensitivitySettings(method="sobol", samples=1024,
                                                                         second_order=True), seed=3)
    assert r.points.shape == (1024 * (2 * 3 + 2), 3)
    s2 = r.second_order
    assert s2 is not None
    assert s2["1"]["S2"][0][1] == pytest.approx(1 / 7, abs=0.05)
    assert s2["0"]["S2"][0][1] == pytest.approx(0.0, abs=1e-6)
    assert r.to_json()["secondOrder"]["1"]["S2"][0][0] is None  # SALib leaves the diagonal NaN


def test_settings_are_checked_at_their_paths() -> None:
    with pytest.raises(ExperimentError) as e:
        parse_spec({"kind": "sensitivity", "settings": {"method": "sobol", "samples": 1000}})
    assert [p.path for p in e.value.problems] == ["settings"]
    assert "power of 2" in e.value.problems[0].message
    with pytest.raises(ExperimentError) as e:
        parse_spec({"kind": "sensitivity", "settings": {"method": "fast"}})
    assert [p.path for p in e.value.problems] == ["settings.method"]
    with pytest.raises(ExperimentError) as e:
        run_sensitivity(square_times, [Bounds("a", 1, 3)], SensitivitySettings(base=[4]))
    assert [p.path for p in e.value.problems] == ["settings.base[0]"]


ADDITIVE = """\
schemaVersion: 1
grid: {bins: 4, binSize: 1, binUnit: hours}
nodes:
  - {id: x1, kind: const, values: [0, 0, 0, 0]}
  - {id: x2, kind: const, values: [0, 0, 0, 0]}
  - {id: y, kind: expr, expr: "2 * x1 + x2"}
"""


def test_sobol_of_an_additive_model_through_the_engine() -> None:
    # y = 2 x1 + x2 with x1 ~ U(0, 1), x2 ~ U(0, 2): Var = 4/12 + 4/12, S1 = ST = (1/2, 1/2)
    spec = {"kind": "sensitivity", "seed": 11,
            "parameters": [{"target": "x1", "range": {"low": 0, "high": 1}},
                           {"target": "x2", "range": {"low": 0, "high": 2}}],
            "metrics": [{"series": "y", "name": "y"}],
            "settings": {"method": "sobol", "samples": 128}}
    r = flowtime.experiment(spec, model=ADDITIVE)
    assert r.n == 128 * 4
    # every point's metric is the model's y: 2 x1 + x2
    assert np.allclose(r.metrics[:, 0], 2 * r.points[:, 0] + r.points[:, 1])
    answer = r.answer
    assert answer is not None
    y = answer["indices"]["y"]
    for key in ("S1", "ST"):  # 128 base samples: within the bootstrap interval, and that interval is narrow
        for i in (0, 1):
            assert abs(y[key][i] - 0.5) <= y[f"{key}Conf"][i] < 0.2
    assert r.to_json()["answer"] == answer and r.seed == 11


def test_local_sensitivity_of_a_model() -> None:
    # at the middle (x1, x2) = (0.5, 1): y = 2; dy/dx1 = 2, elasticity 2 * 0.5 / 2 = 0.5; dy/dx2 = 1, 1 * 1 / 2 = 0.5
    spec = {"kind": "sensitivity",
            "parameters": [{"target": "x1", "range": {"low": 0, "high": 1}},
                           {"target": "x2", "range": {"low": 0, "high": 2}}],
            "metrics": [{"series": "y", "name": "y"}]}
    r = flowtime.experiment(spec, model=ADDITIVE)
    assert r.n == 5
    local = r.answer["local"] if r.answer else []
    assert [e["elasticity"] for e in local] == pytest.approx([0.5, 0.5])
    assert [e["derivative"] for e in local] == pytest.approx([2.0, 1.0])


def test_a_drawn_seed_is_recorded_and_repeats_the_design() -> None:
    # no seed in the spec or the model: one is drawn for the Morris design and recorded; giving it back repeats it
    spec = {"kind": "sensitivity",
            "parameters": [{"target": "x1", "range": {"low": 0, "high": 1}},
                           {"target": "x2", "range": {"low": 0, "high": 2}}],
            "metrics": [{"series": "y", "name": "y"}], "settings": {"method": "morris", "trajectories": 4}}
    first = flowtime.experiment(spec, model=ADDITIVE)
    assert first.seed is not None and first.n == 4 * 3
    again = flowtime.experiment({**spec, "seed": first.seed}, model=ADDITIVE)
    assert np.array_equal(again.points, first.points) and again.to_json()["answer"] == first.to_json()["answer"]
    # Morris' effects are per range (a step is a fraction of it): mu* of 2 x1 + x2 is coefficient x width,
    # 2 x 1 and 1 x 2, whatever the design
    assert first.answer is not None and first.answer["indices"]["y"]["muStar"] == pytest.approx([2.0, 2.0])
