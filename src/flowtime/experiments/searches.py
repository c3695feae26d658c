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
from flowtime.experiments.studies import Seen, bounds_of, searched

Array = npt.NDArray[np.float64]


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
    seen = Seen(ev, seed)
    got = run_optimize(seen, bounds, spec.settings, metric_names=ev.metric_names, seed=seed)
    points, metrics = seen.stacked()
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
    seen = Seen(ev, seed, settings.series)
    got = run_fit(seen, bounds, settings, observed, seed=seed)
    points, rows = seen.stacked()
    loss = loss_of(settings.loss, rows[:, mask] - observed[mask], w[mask])[:, None]
    return searched("fit", ev, points, loss, seed, got.to_json(), columns=("loss",), series={settings.series: rows})
