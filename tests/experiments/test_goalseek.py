"""Goal seek: roots of monotone functions, the bracket checked first, convergence honestly reported, a model."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import flowtime
from flowtime.errors import ExperimentError
from flowtime.experiments.goalseek import BracketError, GoalSeekSettings, run_goalseek
from flowtime.experiments.objective import Bounds
from flowtime.experiments.spec import parse_spec

CALLS: list[int] = []


def cube_and_double(x: np.ndarray) -> np.ndarray:
    """Metric 0: x^3; metric 1: 2x."""
    CALLS.append(len(x))
    return np.concatenate([x ** 3, 2 * x], axis=1)


def test_the_cube_root_of_8_with_the_ends_probed_in_one_batch() -> None:
    CALLS.clear()
    r = run_goalseek(cube_and_double, [Bounds("x", 0, 3)], GoalSeekSettings(target=8))
    # x^3 = 8 at x = 2
    assert r.x == pytest.approx(2.0, abs=1e-6)
    assert r.value == pytest.approx(8.0, abs=1e-5) and r.residual == pytest.approx(0.0, abs=1e-5)
    assert r.converged and r.solver_converged and r.flag == "converged"
    assert CALLS[0] == 2 and set(CALLS[1:]) == {1}  # both ends, then one point per brentq step
    # the trace: the ends first (0^3 = 0, 3^3 = 27), every distinct evaluation once, in order
    assert (r.trace[0].x, r.trace[0].value) == (0.0, 0.0) and (r.trace[1].x, r.trace[1].value) == (3.0, 27.0)
    assert all(t.value == pytest.approx(t.x ** 3) for t in r.trace)
    assert r.evaluations == len(r.trace) == sum(CALLS)
    assert r.bracket == (0.0, 3.0)
    j = r.to_json()
    assert j["x"] == r.x and j["converged"] is True and len(j["trace"]) == r.evaluations


def test_a_metric_by_name_and_a_bracket_narrower_than_the_range() -> None:
    # 2x = 5 at x = 2.5 (linear: brentq lands on it at once)
    r = run_goalseek(cube_and_double, [Bounds("x", -10, 10)],
                     GoalSeekSettings(target=5, metric="double", bracket=[1, 4]), metric_names=["cube", "double"])
    assert r.metric == "double" and r.bracket == (1.0, 4.0)
    assert r.x == pytest.approx(2.5, abs=1e-9) and r.converged
    assert (r.trace[0].x, r.trace[1].x) == (1.0, 4.0)


def test_no_sign_change_says_both_ends_and_to_widen_the_bracket() -> None:
    # x^3 on [0, 1] runs from 0 to 1: the target 8 is above it at both ends
    with pytest.raises(BracketError) as e:
        run_goalseek(cube_and_double, [Bounds("x", 0, 1)], GoalSeekSettings(target=8))
    assert (e.value.f_low, e.value.f_high) == (0.0, 1.0)
    assert "0 at 0" in str(e.value) and "1 at 1" in str(e.value) and "widen the bracket" in str(e.value)
    assert isinstance(e.value, ValueError)


def test_a_root_at_an_end_is_found() -> None:
    r = run_goalseek(cube_and_double, [Bounds("x", 0, 2)], GoalSeekSettings(target=0))
    assert r.x == 0.0 and r.converged


def test_too_few_iterations_is_not_converged() -> None:
    r = run_goalseek(cube_and_double, [Bounds("x", 0, 3)], GoalSeekSettings(target=8, maxiter=2))
    assert not r.converged and not r.solver_converged
    assert r.flag == "convergence error"


def test_a_jump_is_bracketed_but_the_target_never_reached() -> None:
    # a step from 0 to 10 at x = 1: brentq closes in on the jump and says converged, but |f - 5| = 5 > ftol
    def step(x: np.ndarray) -> np.ndarray:
        return np.where(x >= 1.0, 10.0, 0.0)

    r = run_goalseek(step, [Bounds("x", 0, 3)], GoalSeekSettings(target=5))
    assert r.solver_converged and not r.converged
    assert r.x == pytest.approx(1.0, abs=1e-5) and abs(r.residual) == 5.0


def test_goal_seek_varies_one_parameter_and_checks_its_settings() -> None:
    with pytest.raises(ExperimentError) as e:
        run_goalseek(cube_and_double, [Bounds("x", 0, 3), Bounds("y", 0, 1)], GoalSeekSettings(target=1))
    assert [p.path for p in e.value.problems] == ["parameters"]
    with pytest.raises(ExperimentError) as e:
        parse_spec({"kind": "goalseek", "settings": {"target": 1, "bracket": [3, 1]}})
    assert [p.path for p in e.value.problems] == ["settings"]
    with pytest.raises(ExperimentError) as e:
        parse_spec({"kind": "goalseek", "settings": {}})
    assert [p.path for p in e.value.problems] == ["settings.target"]


QUEUE = (Path(__file__).parent / "queue.yaml").read_text(encoding="utf-8")  # hand-checked queue


def test_the_capacity_that_gives_a_mean_backlog_of_7() -> None:
    # arrivals 10 per bin, capacity c <= 10: served c, the backlog after bin t (1..6) is (10 - c) t, its mean over
    # 6 bins (10 - c)(6 + 1)/2 = 3.5 (10 - c). A mean backlog of 7 needs 10 - c = 2: c = 8.
    spec = {"kind": "goalseek", "parameters": [{"target": "capacity", "range": {"low": 1, "high": 10}}],
            "metrics": [{"series": "backlog", "name": "meanBacklog"}],
            "settings": {"target": 7, "xtol": 1e-9}}
    r = flowtime.experiment(spec, model=QUEUE)
    answer = r.answer
    assert answer is not None
    assert answer["x"] == pytest.approx(8.0, abs=1e-7)
    assert answer["value"] == pytest.approx(7.0, abs=1e-6) and answer["converged"] is True
    # the table: every point evaluated, the range's ends first (3.5 * 9 = 31.5 at c = 1, 0 at c = 10)
    assert r.points[:2, 0].tolist() == [1.0, 10.0]
    assert r.metrics[:2, 0] == pytest.approx([31.5, 0.0])
    assert np.allclose(r.metrics[:, 0], 3.5 * (10 - r.points[:, 0]))
    assert r.n == answer["evaluations"] and r.table.columns.tolist() == ["capacity", "meanBacklog"]


def test_no_sign_change_over_the_range_is_an_experiment_error_at_the_range() -> None:
    # a mean backlog of 50 needs c = 10 - 50/3.5 < 0: outside [1, 10], where the backlog is 31.5 at most
    spec = {"kind": "goalseek", "parameters": [{"target": "capacity", "range": {"low": 1, "high": 10}}],
            "metrics": [{"series": "backlog"}], "settings": {"target": 50}}
    with pytest.raises(ExperimentError) as e:
        flowtime.experiment(spec, model=QUEUE)
    (p,) = e.value.problems
    assert p.path == "parameters[0].range" and "31.5 at 1" in p.message
    spec["settings"] = {"target": 50, "bracket": [2, 9]}
    with pytest.raises(ExperimentError) as e:
        flowtime.experiment(spec, model=QUEUE)
    assert [p.path for p in e.value.problems] == ["settings.bracket"]
