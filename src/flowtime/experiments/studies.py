"""
The sensitivity and goalseek kinds over an ``Evaluator``: the model-independent algorithms
(``experiments.sensitivity``, ``experiments.goalseek``) given the evaluator's batched
objective and the parameters' ranges, their answers turned into an ``ExperimentResult``.

The result's table holds every point evaluated, in order (sensitivity: the design;
goal seek: the bracket's ends, then each brentq step), ``answer`` the algorithm's
own result (``SensitivityResult.to_json()`` / ``GoalSeekResult.to_json()``). Every
point uses the experiment's one seed (common random numbers: the effects
measured are the parameters', not the draws'), which also draws the Morris and Sobol designs
(drawn and recorded when the spec and the model give none).
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from flowtime.errors import ExperimentError, Problem
from flowtime.experiments.evaluator import Evaluator
from flowtime.experiments.goalseek import BracketError, run_goalseek
from flowtime.experiments.objective import Bounds
from flowtime.experiments.results import ExperimentResult
from flowtime.experiments.sensitivity import run_sensitivity
from flowtime.experiments.spec import GoalSeekExperiment, SensitivityExperiment

Array = npt.NDArray[np.float64]


class Seen:
    """Every batch a search asked for, in order, with what it got: the metrics, or with ``series`` that series."""

    def __init__(self, ev: Evaluator, seed: int | None, series: str | None = None) -> None:
        self.ev = ev
        self.seed = seed
        self.series = series
        self.points: list[Array] = []
        self.rows: list[Array] = []

    def __call__(self, x: Array) -> Array:
        x = np.atleast_2d(np.asarray(x, dtype=np.float64))
        got = self.ev.evaluate(x, [self.seed] * x.shape[0])
        if self.series is not None:
            rows = got.series[self.series]
        elif got.warnings:  # an index, a root or an optimum over NaN means nothing; say where
            raise ExperimentError([Problem(w.path, w.message) for w in got.warnings])
        else:
            rows = got.metrics
        self.points.append(x)
        self.rows.append(np.atleast_2d(rows))
        return rows

    def stacked(self) -> tuple[Array, Array]:
        p = len(self.ev.parameter_names)
        m = self.ev.model.grid.bins if self.series is not None else len(self.ev.metric_names)
        if not self.points:
            return np.zeros((0, p)), np.zeros((0, m))
        return np.concatenate(self.points), np.concatenate(self.rows)


def bounds_of(ev: Evaluator) -> list[Bounds]:
    return [Bounds(name, low, high) for name, low, high in ev.bounds()]


def searched(kind: str, ev: Evaluator, points: npt.NDArray[np.float64], metrics: npt.NDArray[np.float64],
             seed: int | None, answer: dict[str, object], *, columns: tuple[str, ...] | None = None,
             series: dict[str, npt.NDArray[np.float64]] | None = None) -> ExperimentResult:
    """The result of a search kind: every point it evaluated (all with ``seed``) and the algorithm's answer."""
    return ExperimentResult(kind, ev.spec.model_dump(mode="json", by_alias=True, exclude_none=True),
                            tuple(ev.parameter_names), columns or tuple(ev.metric_names), points, metrics,
                            series or {}, (seed,) * points.shape[0], seed, answer=answer)


def run_sensitivity_experiment(ev: Evaluator) -> ExperimentResult:
    spec = ev.spec
    assert isinstance(spec, SensitivityExperiment)
    if not spec.metrics:
        raise ExperimentError([Problem("metrics", "sensitivity needs at least one metric")])
    bounds = bounds_of(ev)
    # one seed: the design's (Morris, Sobol) and every point's engine seed
    seed = ev.base_seed(spec.settings.method != "local" or bool(spec.sample_pmf))
    seen = Seen(ev, seed)
    got = run_sensitivity(seen, bounds, spec.settings, metric_names=ev.metric_names, seed=seed)
    points, metrics = seen.stacked()
    return searched("sensitivity", ev, points, metrics, seed, got.to_json())


def run_goalseek_experiment(ev: Evaluator) -> ExperimentResult:
    spec = ev.spec
    assert isinstance(spec, GoalSeekExperiment)
    if not spec.metrics:
        raise ExperimentError([Problem("metrics", "goal seek needs the metric to bring to the target")])
    bounds = bounds_of(ev)
    seed = ev.base_seed(bool(spec.sample_pmf))
    seen = Seen(ev, seed)
    try:
        got = run_goalseek(seen, bounds, spec.settings, metric_names=ev.metric_names)
    except BracketError as exc:
        where = "settings.bracket" if spec.settings.bracket is not None else "parameters[0].range"
        raise ExperimentError([Problem(where, str(exc))]) from exc
    points, metrics = seen.stacked()
    return searched("goalseek", ev, points, metrics, seed, got.to_json())
