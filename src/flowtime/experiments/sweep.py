"""
Sweeps: the model over a grid of parameter values, or a Latin hypercube.

``grid`` takes every combination of the parameters' ``values`` (a ``range``
gives ``steps`` evenly spaced values, both ends included), the first parameter
varying slowest. ``lhs`` takes ``settings.points`` points of a Latin hypercube
(``scipy.stats.qmc.LatinHypercube``, seeded by the experiment's seed) over the
ranges; a parameter with ``values`` picks ``values[floor(u * len)]``. Every
point uses the experiment's seed (common random numbers: points differ only in
their parameters): the spec's, else the model's ``rng.seed``, else one drawn
and recorded when something is sampled. The point count is checked against ``limits.maxPoints``
before anything runs.
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

from flowtime.errors import ExperimentError, Problem
from flowtime.experiments.evaluator import Evaluator
from flowtime.experiments.results import ExperimentResult
from flowtime.experiments.spec import Parameter, SweepExperiment

Array = npt.NDArray[np.float64]


def grid_values(p: Parameter, i: int) -> Array:
    """The values parameter ``i`` takes in a grid."""
    if p.values is not None:
        return np.asarray(p.values, dtype=np.float64)
    if p.range is not None and p.range.steps is not None:
        return np.linspace(p.range.low, p.range.high, p.range.steps)
    where = f"parameters[{i}].range.steps" if p.range is not None else f"parameters[{i}]"
    raise ExperimentError([Problem(where, "a grid sweep needs values, or a range with steps")])


def grid_points(params: list[Parameter], cap: int) -> Array:
    """The Cartesian product, first parameter slowest; over ``cap`` points is an error naming the cap."""
    problems: list[Problem] = []
    axes: list[Array] = []
    for i, p in enumerate(params):
        try:
            axes.append(grid_values(p, i))
        except ExperimentError as exc:
            problems.extend(exc.problems)
    if problems:
        raise ExperimentError(problems)
    total = math.prod(a.size for a in axes)
    if total > cap:
        sizes = " x ".join(str(a.size) for a in axes)
        raise ExperimentError([Problem("limits.maxPoints", f"the grid has {sizes} = {total} points; the cap is "
                                                           f"{cap} points per experiment")])
    if not axes:
        return np.zeros((1, 0))
    mesh = np.meshgrid(*axes, indexing="ij")
    return np.stack([m.ravel() for m in mesh], axis=1)


def lhs_points(params: list[Parameter], n: int, seed: int) -> Array:
    """``n`` Latin-hypercube points over the parameters' ranges (or values), from ``seed``."""
    from scipy.stats import qmc  # type: ignore[import-untyped]

    problems = [Problem(f"parameters[{i}]", "a Latin hypercube needs a range or values")
                for i, p in enumerate(params) if p.range is None and p.values is None]
    if problems:
        raise ExperimentError(problems)
    u = qmc.LatinHypercube(d=max(1, len(params)), rng=np.random.default_rng(seed)).random(n)
    out = np.empty((n, len(params)))
    for j, p in enumerate(params):
        if p.range is not None:
            out[:, j] = p.range.low + u[:, j] * (p.range.high - p.range.low)
        else:
            assert p.values is not None
            values = np.asarray(p.values, dtype=np.float64)
            out[:, j] = values[np.minimum((u[:, j] * values.size).astype(np.int64), values.size - 1)]
    return out


def run_sweep(ev: Evaluator) -> ExperimentResult:
    spec = ev.spec
    assert isinstance(spec, SweepExperiment)
    cap = spec.limits.max_points
    samples = bool(spec.sample_pmf) or any(getattr(n, "sample", False) for n in ev.model.nodes if n.kind == "pmf")
    seed = ev.base_seed(samples or spec.settings.method == "lhs")
    if spec.settings.method == "grid":
        points = grid_points(spec.parameters, cap)
    else:
        n = spec.settings.points
        if n is None:
            raise ExperimentError([Problem("settings.points", "a Latin hypercube sweep needs points")])
        if n > cap:
            raise ExperimentError([Problem("settings.points", f"{n} points; the cap is {cap} points per "
                                                              "experiment (limits.maxPoints)")])
        assert seed is not None
        points = lhs_points(spec.parameters, n, seed)
    seeds = [seed] * points.shape[0]
    got = ev.evaluate(points, seeds, sample_pmf=bool(spec.sample_pmf))
    return ExperimentResult("sweep", spec.model_dump(mode="json", by_alias=True, exclude_none=True),
                            tuple(ev.parameter_names), tuple(ev.metric_names), points, got.metrics, got.series,
                            tuple(seeds), seed, got.warnings)
