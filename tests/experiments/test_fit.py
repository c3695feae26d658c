"""Fitting: recovering the parameters of known series, the losses, the window, missing bins, the model level."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import flowtime
from flowtime.errors import ExperimentError
from flowtime.experiments.fit import FitSettings, run_fit
from flowtime.experiments.objective import Bounds

T = np.arange(10.0)
AB = [Bounds("a", 0.0, 10.0), Bounds("b", -5.0, 5.0)]


def line(x: np.ndarray) -> np.ndarray:
    """Each point (a, b) -> the series a t + b over 10 bins."""
    return x[:, 0:1] * T + x[:, 1:2]


def settings(observed: np.ndarray, **kw: object) -> FitSettings:
    values = [None if np.isnan(v) else float(v) for v in observed]
    return FitSettings.model_validate({"series": "y", "observed": {"values": values}, **kw})


@pytest.mark.parametrize("method", [None, "nelder-mead", "powell", "differential-evolution"])
def test_a_noiseless_line_is_recovered_exactly(method: str | None) -> None:
    obs = 2.5 * T + 1.0
    r = run_fit(line, AB, settings(obs, method=method), seed=3)
    assert r.x == pytest.approx((2.5, 1.0), abs=1e-6)
    assert r.value == pytest.approx(0.0, abs=1e-6)
    assert r.r2 == pytest.approx(1.0)
    assert r.converged and r.bins == 10


def test_a_noisy_line_gives_the_least_squares_line() -> None:
    rng = np.random.default_rng(0)
    obs = 2.5 * T + 1.0 + rng.normal(0.0, 0.5, T.size)
    r = run_fit(line, AB, settings(obs))
    # the closed-form least-squares line through the same points (normal equations)
    a, b = np.polyfit(T, obs, 1)
    assert r.x == pytest.approx((a, b), abs=1e-6)
    res = (a * T + b) - obs
    assert r.value == pytest.approx(np.sqrt(np.mean(res**2)), rel=1e-6)
    assert r.r2 == pytest.approx(1 - np.sum(res**2) / np.sum((obs - obs.mean()) ** 2), rel=1e-6)
    assert r.residuals == pytest.approx(r.fitted - obs)
    assert r.trace and r.trace[-1].iteration == len(r.trace)


def test_missing_observations_and_the_window_are_left_out() -> None:
    obs = 2.0 * T + 3.0
    obs[[1, 2]] = np.nan
    obs[8:] = 100.0  # outliers outside the window [0, 8)
    r = run_fit(line, AB, settings(obs, window={"start": 0, "end": 8}))
    assert r.x == pytest.approx((2.0, 3.0), abs=1e-6)
    assert r.bins == 6  # bins 0, 3, 4, 5, 6, 7
    assert np.isnan(r.residuals[[1, 2, 8, 9]]).all()
    assert r.residuals[[0, 3, 4, 5, 6, 7]] == pytest.approx(0.0, abs=1e-6)


def test_weights_pull_the_fit_to_the_bins_that_count() -> None:
    # the observed series is 1 in bins 0-4 and 3 in bins 5-9; fitting a constant b (a pinned near 0):
    # weighted least squares gives the weighted mean: weights 1 on the first half and 3 on the second:
    # b = (5 * 1 * 1 + 5 * 3 * 3) / (5 * 1 + 5 * 3) = 50 / 20 = 2.5
    obs = np.where(T < 5, 1.0, 3.0)
    w = np.where(T < 5, 1.0, 3.0).tolist()
    r = run_fit(line, [Bounds("a", 0.0, 1e-9), Bounds("b", -5.0, 5.0)], settings(obs, loss="weighted", weights=w))
    assert r.x[1] == pytest.approx(2.5, abs=1e-5)
    # weighted RMSE at b = 2.5: sqrt((5 * 1.5^2 + 3 * 5 * 0.5^2) / 20) = sqrt((11.25 + 3.75) / 20) = sqrt(0.75)
    assert r.value == pytest.approx(np.sqrt(0.75), abs=1e-5)


def test_mae_is_fitted_by_a_derivative_free_method_and_gives_the_median() -> None:
    # a constant b minimising mean |b - obs| is the median of obs: the values 0..8 and one outlier 1000 -> 5
    obs = np.array([0, 1, 2, 3, 4, 5, 6, 7, 8, 1000.0])
    r = run_fit(line, [Bounds("a", 0.0, 1e-9), Bounds("b", -10.0, 10.0)], settings(obs, loss="mae", method="powell"))
    assert settings(obs, loss="mae").chosen == "nelder-mead"
    assert 4.0 - 1e-6 <= r.x[1] <= 5.0 + 1e-6  # any b in [4, 5] is a median of ten values
    # mae at b = 4: (4+3+2+1+0+1+2+3+4 + 996) / 10 = 101.6; at b = 5: (5+4+3+2+1+0+1+2+3 + 995) / 10 = 101.6
    assert r.value == pytest.approx(101.6, abs=1e-5)


def test_bad_fit_settings_are_errors() -> None:
    with pytest.raises(ValueError, match="weights"):
        FitSettings.model_validate({"series": "y", "observed": {"values": [1]}, "loss": "weighted"})
    with pytest.raises(ValueError, match="sum of squares"):
        FitSettings.model_validate({"series": "y", "observed": {"values": [1]}, "loss": "mae",
                                    "method": "least-squares"})
    with pytest.raises(ValueError, match="exactly one"):
        FitSettings.model_validate({"series": "y", "observed": {}})
    with pytest.raises(ExperimentError) as e:
        run_fit(line, AB, settings(np.full(10, np.nan)))
    assert e.value.problems[0].path == "settings.observed"
    with pytest.raises(ExperimentError) as e:
        run_fit(line, AB, settings(np.ones(4)))
    assert e.value.problems[0].path == "settings.observed"


QUEUE = (Path(__file__).parent / "queue.yaml").read_text(encoding="utf-8")  # hand-checked queue


def test_a_fit_recovers_the_capacity_that_made_a_backlog() -> None:
    # arrivals 10, capacity c: the backlog after bin t (1..6) is (10 - c) t. Observed 3, 6, ..., 18 is c = 7.
    spec = {"kind": "fit", "parameters": [{"target": "capacity", "range": {"low": 1, "high": 10}}],
            "settings": {"series": "backlog", "observed": {"values": [3, 6, 9, 12, 15, 18]}}}
    r = flowtime.experiment(spec, model=QUEUE)
    answer = r.answer
    assert answer is not None
    assert answer["parameters"]["capacity"] == pytest.approx(7.0, abs=1e-6)
    assert answer["fitted"] == pytest.approx([3, 6, 9, 12, 15, 18], abs=1e-5)
    assert answer["r2"] == pytest.approx(1.0)
    # the table: every point evaluated and its loss; the series: the backlog of each point
    assert r.table.columns.tolist() == ["capacity", "loss"]
    assert r.series["backlog"].shape == (r.n, 6)
    k = int(np.argmin(r.metrics[:, 0]))
    assert r.points[k, 0] == pytest.approx(7.0, abs=1e-6)


def test_the_observed_file_is_read_beside_the_spec(tmp_path: Path) -> None:
    # the series-file CSV: bins 0..5, bin 2 missing (empty), the rest the backlog of capacity 7.5: 2.5 t
    (tmp_path / "seen.csv").write_text("bin_index,value\n0,2.5\n1,5\n2,\n3,10\n4,12.5\n5,15\n", encoding="utf-8")
    (tmp_path / "fit.yaml").write_text(
        "kind: fit\nparameters: [{target: capacity, range: {low: 1, high: 10}}]\n"
        "settings: {series: backlog, observed: {file: seen.csv}}\n", encoding="utf-8")
    r = flowtime.experiment(tmp_path / "fit.yaml", model=QUEUE)
    assert r.answer is not None
    assert r.answer["parameters"]["capacity"] == pytest.approx(7.5, abs=1e-6)
    assert r.answer["bins"] == 5
    assert r.answer["residuals"][2] is None


def test_an_unreadable_observed_file_is_an_error_at_its_path(tmp_path: Path) -> None:
    spec = {"kind": "fit", "parameters": [{"target": "capacity", "range": {"low": 1, "high": 10}}],
            "settings": {"series": "backlog", "observed": {"file": str(tmp_path / "absent.csv")}}}
    with pytest.raises(ExperimentError) as e:
        flowtime.experiment(spec, model=QUEUE)
    assert e.value.problems[0].path == "settings.observed.file"
