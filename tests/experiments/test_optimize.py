"""Optimisation: known optima over plain NumPy objectives, constraints, the memo, and a model-level optimum."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import flowtime
from flowtime.errors import ExperimentError
from flowtime.experiments.memo import Memo, jacobian
from flowtime.experiments.objective import Bounds
from flowtime.experiments.optimize import OptimizeSettings, run_optimize

BOX = [Bounds("x", 0.1, 10.0), Bounds("y", 0.1, 10.0)]
ROWS: list[int] = []


def sum_and_product(x: np.ndarray) -> np.ndarray:
    """Metric 0: x + y; metric 1: x * y."""
    ROWS.append(len(x))
    return np.stack([x[:, 0] + x[:, 1], x[:, 0] * x[:, 1]], axis=1)


def bowl(x: np.ndarray) -> np.ndarray:
    """(x - 3)^2 + (y + 1)^2: on [-5, 5] x [0, 5] the minimum is at (3, 0) (y = -1 is outside), value 1."""
    return (((x - np.array([3.0, -1.0])) ** 2).sum(axis=1))[:, None]


@pytest.mark.parametrize(("method", "tol"), [("slsqp", 1e-5), ("cobyla", 1e-3), ("differential-evolution", 1e-4)])
def test_min_x_plus_y_subject_to_xy_at_least_4_is_2_2(method: str, tol: float) -> None:
    # x + y with x*y >= 4: on the boundary y = 4/x, x + 4/x is least at x = 2 (derivative 1 - 4/x^2 = 0): 2 + 2 = 4
    s = OptimizeSettings(method=method, constraints=[{"metric": 1, "op": ">=", "value": 4.0}])
    r = run_optimize(sum_and_product, BOX, s, seed=1)
    assert r.x == pytest.approx((2.0, 2.0), abs=tol)
    assert r.objective == pytest.approx(4.0, abs=tol)
    assert r.converged and r.success
    (c,) = r.constraints
    assert (c.op, c.value) == (">=", 4.0)
    assert c.actual == pytest.approx(4.0, abs=tol) and c.slack == pytest.approx(c.actual - 4.0)
    assert r.trace and r.trace[-1].iteration == len(r.trace)
    assert r.to_json()["parameters"] == {"x": r.x[0], "y": r.x[1]}


def test_cobyla_is_the_default_with_constraints_and_nelder_mead_without() -> None:
    assert OptimizeSettings(constraints=[{"metric": 0, "op": "<=", "value": 1}]).chosen == "cobyla"
    assert OptimizeSettings().chosen == "nelder-mead"


@pytest.mark.parametrize("method", ["nelder-mead", "powell"])
def test_bounded_methods_stop_at_the_bound(method: str) -> None:
    r = run_optimize(bowl, [Bounds("a", -5, 5), Bounds("b", 0, 5)], OptimizeSettings(method=method))
    assert r.x == pytest.approx((3.0, 0.0), abs=1e-5)
    assert r.objective == pytest.approx(1.0, abs=1e-8)
    assert r.converged


def test_maximising_reports_the_metric_not_its_negation() -> None:
    # -(x - 2)^2 + 5 on [0, 4]: the maximum is 5 at x = 2
    r = run_optimize(lambda x: 5.0 - (x - 2.0) ** 2, [Bounds("x", 0, 4)], OptimizeSettings(goal="maximize"))
    assert r.x[0] == pytest.approx(2.0, abs=1e-5)
    assert r.objective == pytest.approx(5.0, abs=1e-9)


def test_metrics_and_constraints_by_name() -> None:
    s = OptimizeSettings(metric="sum", method="slsqp", constraints=[{"metric": "product", "op": ">=", "value": 9}])
    r = run_optimize(sum_and_product, BOX, s, metric_names=("sum", "product"))
    # the same argument as above with x*y >= 9: x = y = 3
    assert r.x == pytest.approx((3.0, 3.0), abs=1e-5)
    assert r.metric == "sum" and r.constraints[0].metric == "product"


def test_an_unmet_constraint_is_not_converged() -> None:
    # x + y <= 0.1 cannot hold on [0.1, 10]^2 (the least sum is 0.2)
    s = OptimizeSettings(method="slsqp", constraints=[{"metric": 0, "op": "<=", "value": 0.1}])
    r = run_optimize(sum_and_product, BOX, s)
    assert not r.converged
    assert r.violation == pytest.approx(0.1, abs=1e-6)


def test_constraints_need_a_method_that_takes_them() -> None:
    s = OptimizeSettings(method="powell", constraints=[{"metric": 1, "op": ">=", "value": 4}])
    with pytest.raises(ExperimentError) as e:
        run_optimize(sum_and_product, BOX, s)
    assert e.value.problems[0].path == "settings.constraints"


def test_unknown_metric_names_and_a_start_outside_the_bounds_are_errors() -> None:
    with pytest.raises(ExperimentError) as e:
        run_optimize(sum_and_product, BOX, OptimizeSettings(metric="latency"), metric_names=("sum", "product"))
    assert e.value.problems[0].path == "settings.metric"
    with pytest.raises(ExperimentError) as e:
        run_optimize(sum_and_product, BOX, OptimizeSettings(x0=[1.0, 20.0]))
    assert e.value.problems[0].path == "settings.x0[1]"


def test_the_memo_evaluates_each_point_once_in_one_batch() -> None:
    seen: list[int] = []

    def f(x: np.ndarray) -> np.ndarray:
        seen.append(len(x))
        return x * 2

    m = Memo(f, 2)
    out = m(np.array([[1.0, 2.0], [3.0, 4.0], [1.0, 2.0]]))
    assert out.tolist() == [[2, 4], [6, 8], [2, 4]]
    assert m(np.array([3.0, 4.0])).tolist() == [6, 8]
    assert seen == [2] and m.evaluations == 2
    # f(u) = 2u: J = 2 I, taken backwards at the upper bound (u = 1) and in one batch of p + 1 points
    base, jac = jacobian(m, np.array([0.5, 1.0]), 1e-3)
    assert base.tolist() == [1.0, 2.0]
    assert jac == pytest.approx(2 * np.eye(2))
    assert seen == [2, 3]


def test_differential_evolution_batches_a_generation_and_is_seeded() -> None:
    ROWS.clear()
    s = OptimizeSettings(method="differential-evolution", popsize=5, maxiter=20, polish=False,
                         constraints=[{"metric": 1, "op": ">=", "value": 4}])
    a = run_optimize(sum_and_product, BOX, s, seed=7)
    # popsize 5 x 2 parameters = 10 members per generation, one call each
    assert max(ROWS) == 10
    b = run_optimize(sum_and_product, BOX, s, seed=7)
    assert a.x == b.x and a.trace == b.trace


def test_differential_evolution_with_no_feasible_point_says_so_without_a_warning() -> None:
    # x + y >= 25 cannot hold on [0.1, 10]^2 (at most 20): the least infeasible point is (10, 10), slack -5.
    # Warnings are errors in this suite, so scipy's "no feasible solution" warning would fail the test.
    s = OptimizeSettings(method="differential-evolution", popsize=5, maxiter=30,
                         constraints=[{"metric": 0, "op": ">=", "value": 25.0}])
    r = run_optimize(sum_and_product, BOX, s, seed=3)
    assert not r.converged and not r.success
    assert "constraints" in r.message
    (c,) = r.constraints
    assert c.slack < 0 and c.actual == pytest.approx(20.0, abs=0.5)


def test_differential_evolution_polishes_a_feasible_constrained_result() -> None:
    # Few generations leave DE short of (2, 2); the SLSQP polish from its feasible best reaches it.
    s = OptimizeSettings(method="differential-evolution", popsize=5, maxiter=3,
                         constraints=[{"metric": 1, "op": ">=", "value": 4.0}])
    rough = run_optimize(sum_and_product, BOX, s.model_copy(update={"polish": False}), seed=5)
    polished = run_optimize(sum_and_product, BOX, s, seed=5)
    assert polished.objective == pytest.approx(4.0, abs=1e-5) and polished.x == pytest.approx((2.0, 2.0), abs=1e-3)
    assert rough.objective > polished.objective + 1e-3
    assert polished.constraints[0].slack >= -1e-6


QUEUE = (Path(__file__).parent / "queue.yaml").read_text(encoding="utf-8")  # hand-checked queue


@pytest.mark.parametrize("method", ["cobyla", "slsqp"])
def test_the_least_capacity_that_keeps_the_mean_backlog_under_a_bound(method: str) -> None:
    # arrivals 10 per bin, capacity c < 10: the backlog after bin t (1..6) is (10 - c) t, its mean over 6 bins
    # is (10 - c)(6 + 1)/2 = 3.5 (10 - c). Mean backlog <= 7 means c >= 8: the least capacity is 8.
    spec = {"kind": "optimize", "parameters": [{"target": "capacity", "range": {"low": 1, "high": 10}}],
            "metrics": [{"series": "capacity", "name": "c"}, {"series": "backlog", "name": "b"}],
            "settings": {"metric": "c", "method": method, "constraints": [{"metric": "b", "op": "<=", "value": 7}]}}
    r = flowtime.experiment(spec, model=QUEUE)
    answer = r.answer
    assert answer is not None
    assert answer["parameters"]["capacity"] == pytest.approx(8.0, abs=1e-4)
    assert answer["constraints"][0]["actual"] == pytest.approx(7.0, abs=1e-3)
    assert answer["converged"] is True
    # the table is every point evaluated, each once
    assert r.table.columns.tolist() == ["capacity", "c", "b"]
    assert len(set(r.points[:, 0].tolist())) == r.n == answer["evaluations"]
    assert np.allclose(r.metrics[:, 1], 3.5 * np.maximum(0.0, 10.0 - r.points[:, 0]))
    assert r.to_json()["answer"] == answer


def test_an_optimize_spec_without_ranges_is_an_error() -> None:
    spec = {"kind": "optimize", "parameters": [{"target": "capacity", "values": [1, 2]}],
            "metrics": [{"series": "backlog"}]}
    with pytest.raises(ExperimentError) as e:
        flowtime.experiment(spec, model=QUEUE)
    assert e.value.problems[0].path == "parameters[0].range"


def test_spec_problems_in_the_settings_are_located() -> None:
    from flowtime.experiments.spec import parse_spec

    with pytest.raises(ExperimentError) as e:
        parse_spec({"kind": "optimize", "settings": {"constraints": [{"metric": 0, "op": "<", "value": 1}]}})
    assert [p.path for p in e.value.problems] == ["settings.constraints[0].op"]
    with pytest.raises(ExperimentError) as e:
        parse_spec({"kind": "fit", "settings": {"series": "backlog", "observed": {"values": [1]}, "loss": "l1"}})
    assert [p.path for p in e.value.problems] == ["settings.loss"]
