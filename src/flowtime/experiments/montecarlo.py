"""
Monte Carlo: N replications, each with its own engine seed and parameter draws.

The streams, so that any replication can be re-run from the spec alone
(decision 0031), from ``seed`` (the spec's, else the model's ``rng.seed``,
else drawn and recorded):

* replication ``k``'s engine seed is word ``k`` of
  ``numpy.random.SeedSequence([seed, 0]).generate_state(N, uint32)``, masked
  to 31 bits (a word does not depend on N: the first k words of a longer
  state are the same);
* the parameter draws come from ``Generator(PCG64(SeedSequence([seed, 1])))``,
  parameter by parameter in spec order, N draws each: ``distribution`` as
  given (numpy's uniform, normal, triangular, lognormal(mu, sigma), choice),
  ``values`` one of them with equal probability, a ``range`` uniform over it.

PMF nodes are sampled (``samplePmf``, on unless the spec says false). Per
captured series the per-bin percentiles across replications are the bands
(``settings.percentiles``, linear interpolation); per metric a histogram
(``numpy.histogram`` over the finite values, ``settings.bins`` bins).
``result.replicate(k)`` evaluates replication k alone.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from flowtime.errors import ExperimentError, Problem
from flowtime.experiments.evaluator import Evaluator
from flowtime.experiments.results import ExperimentResult, Histogram
from flowtime.experiments.spec import Discrete, Lognormal, MonteCarloExperiment, Normal, Parameter, Triangular, Uniform

Array = npt.NDArray[np.float64]


def replication_seeds(seed: int, n: int) -> list[int]:
    words = np.random.SeedSequence([seed, 0]).generate_state(n, np.uint32) & np.uint32(0x7FFFFFFF)
    return [int(w) for w in words]


def _draw(p: Parameter, rng: np.random.Generator, n: int) -> Array:
    d = p.distribution
    if isinstance(d, Uniform):
        return rng.uniform(d.low, d.high, n)
    if isinstance(d, Normal):
        return rng.normal(d.mean, d.sd, n)
    if isinstance(d, Triangular):
        return rng.triangular(d.low, d.mode, d.high, n)
    if isinstance(d, Lognormal):
        return rng.lognormal(d.mu, d.sigma, n)
    if isinstance(d, Discrete):
        return rng.choice(np.asarray(d.values, dtype=np.float64), size=n, p=np.asarray(d.probabilities))
    if p.values is not None:
        return rng.choice(np.asarray(p.values, dtype=np.float64), size=n)
    assert p.range is not None
    return rng.uniform(p.range.low, p.range.high, n)


def draws(params: list[Parameter], seed: int, n: int) -> Array:
    """The ``(n, p)`` parameter values of the replications (the stream of the module docstring)."""
    problems = [Problem(f"parameters[{i}]", "a Monte Carlo parameter needs a distribution, values or a range")
                for i, p in enumerate(params) if p.distribution is None and p.values is None and p.range is None]
    if problems:
        raise ExperimentError(problems)
    rng = np.random.Generator(np.random.PCG64(np.random.SeedSequence([seed, 1])))
    out = np.empty((n, len(params)))
    for j, p in enumerate(params):
        out[:, j] = _draw(p, rng, n)
    return out


def _histogram(values: Array, bins: int) -> Histogram:
    finite = values[np.isfinite(values)]
    if finite.size == 0:
        return Histogram((), (), int(values.size))
    counts, edges = np.histogram(finite, bins=bins)
    return Histogram(tuple(int(c) for c in counts), tuple(float(e) for e in edges), int(values.size - finite.size))


def run_montecarlo(ev: Evaluator) -> ExperimentResult:
    spec = ev.spec
    assert isinstance(spec, MonteCarloExperiment)
    n = spec.settings.replications
    if n > spec.limits.max_points:
        raise ExperimentError([Problem("settings.replications", f"{n} replications; the cap is "
                                       f"{spec.limits.max_points} points per experiment (limits.maxPoints)")])
    seed = ev.base_seed(True)
    assert seed is not None
    seeds = replication_seeds(seed, n)
    points = draws(spec.parameters, seed, n)
    sample = True if spec.sample_pmf is None else spec.sample_pmf
    got = ev.evaluate(points, seeds, sample_pmf=sample)
    qs = tuple(spec.settings.percentiles)
    bands = {name: np.percentile(a, qs, axis=0) for name, a in got.series.items()}
    hist = {name: _histogram(got.metrics[:, j], spec.settings.bins) for j, name in enumerate(ev.metric_names)}
    return ExperimentResult("montecarlo", spec.model_dump(mode="json", by_alias=True, exclude_none=True),
                            tuple(ev.parameter_names), tuple(ev.metric_names), points, got.metrics, got.series,
                            tuple(seeds), seed, got.warnings, qs, bands, hist)

