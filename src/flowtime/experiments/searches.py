"""
The optimize and fit kinds over an ``Evaluator``: the model-independent algorithms
(``experiments.optimize``, ``experiments.fit``) given the evaluator's batched
objective and the parameters' ranges, their answers turned into an
``ExperimentResult``.

The result's table holds every distinct point the search evaluated, in order
(optimize: the spec's metrics; fit: the loss), ``answer`` the algorithm's own
result (``OptimizeResult.to_json()`` / ``FitResult.to_json()``). Every point is
evaluated with the experiment's seed (common random numbers: a search compares
points that differ only in their parameters).
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from flowtime.errors import ExperimentError, Problem
from flowtime.experiments.evaluator import Evaluator
from flowtime.experiments.fit import fitted_bins, loss_of, run_fit
from flowtime.experiments.observed import observed_of
from flowtime.experiments.optimize import run_optimize
from flowtime.experiments.results import ExperimentResult
from flowtime.experiments.spec import FitExperiment, OptimizeExperiment
from flowtime.experiments.studies import bounds_of, searched

Array = npt.NDArray[np.float64]


class _Recorder:
    """Every batch a search evaluates (each point once: the algorithms remember points)."""

    def __init__(self, p: int) -> None:
        self.points: list[Array] = []
        self.rows: list[Array] = []
        self.p = p

    def add(self, x: Array, rows: Array) -> None:
        self.points.append(np.atleast_2d(np.asarray(x, dtype=np.float64)).reshape(-1, self.p))
        self.rows.append(np.atleast_2d(np.asarray(rows, dtype=np.float64)))

    def stacked(self, m: int) -> tuple[Array, Array]:
        if not self.points:
            return np.zeros((0, self.p)), np.zeros((0, m))
        return np.concatenate(self.points), np.concatenate(self.rows)




def _seed(ev: Evaluator) -> int | None:
    """The seed every point uses: the spec's, else the model's (a search must not redraw between points)."""
    return ev.base_seed(bool(ev.spec.sample_pmf))


def run_optimize_experiment(ev: Evaluator) -> ExperimentResult:
    spec = ev.spec
    assert isinstance(spec, OptimizeExperiment)
    if not spec.metrics:
        raise ExperimentError([Problem("metrics", "optimize needs a metric to optimise")])
    bounds = bounds_of(ev)
    seed = _seed(ev)
    seen = _Recorder(len(bounds))

    def objective(x: Array) -> Array:
        got = ev.evaluate(x, [seed] * x.shape[0])
        if got.warnings:  # a search cannot compare NaN
            raise ExperimentError([Problem(w.path, w.message) for w in got.warnings])
        seen.add(x, got.metrics)
        return got.metrics

    got = run_optimize(objective, bounds, spec.settings, metric_names=ev.metric_names, seed=seed)
    points, metrics = seen.stacked(len(ev.metric_names))
    return searched("optimize", ev, points, metrics, seed, got.to_json())


def run_fit_experiment(ev: Evaluator) -> ExperimentResult:
    spec = ev.spec
    assert isinstance(spec, FitExperiment)
    settings = spec.settings
    observed = observed_of(settings, ev.model.grid.bins)
    mask, w = fitted_bins(settings, observed)
    bounds = bounds_of(ev)
    seed = _seed(ev)
    ev.series_objective(settings.series)  # the evaluator now captures the fitted series
    seen = _Recorder(len(bounds))

    def series(x: Array) -> Array:
        rows = ev.evaluate(x, [seed] * x.shape[0]).series[settings.series]
        seen.add(x, rows)
        return rows

    got = run_fit(series, bounds, settings, observed, seed=seed)
    points, rows = seen.stacked(ev.model.grid.bins)
    loss = loss_of(settings.loss, rows[:, mask] - observed[mask], w[mask])[:, None]
    return searched("fit", ev, points, loss, seed, got.to_json(), columns=("loss",), series={settings.series: rows})
