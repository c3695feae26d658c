"""
What an experiment answers: one record for every kind.

``ExperimentResult`` holds the points (parameter values per point), the metric
matrix, the captured series per point, the seed of every point, and what the
kind adds (Monte Carlo: ``bands`` and ``histograms``; optimize and fit: ``answer``). ``table`` is a pandas
DataFrame (one column per parameter, then per metric; pandas is imported only
when asked), ``to_json()`` plain JSON data (NaN as null).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import numpy.typing as npt

from flowtime.errors import Problem
from flowtime.records import derived, record

Array = npt.NDArray[np.float64]


def _clean(values: Any) -> Any:
    """Lists of floats with NaN and infinities as None (JSON has neither)."""
    if isinstance(values, np.ndarray):
        values = values.tolist()
    if isinstance(values, list):
        return [_clean(v) for v in values]
    if isinstance(values, float) and not math.isfinite(values):
        return None
    return values


@record
class Histogram:
    counts: tuple[int, ...]
    edges: tuple[float, ...]
    nan: int  # points whose metric is NaN (not counted in any bin)

    def to_json(self) -> dict[str, Any]:
        return {"counts": list(self.counts), "edges": _clean(list(self.edges)), "nan": self.nan}


@record
class ExperimentResult:
    kind: str
    spec: dict[str, Any]  # the spec as given, normalised (camelCase JSON)
    parameters: tuple[str, ...]
    metric_names: tuple[str, ...]
    points: Array  # (n, p)
    metrics: Array  # (n, m)
    series: dict[str, Array]  # captured series, (n, bins) each
    seeds: tuple[int | None, ...]  # the engine seed of each point
    seed: int | None  # the experiment's seed (drawn and recorded when the spec gave none)
    warnings: tuple[Problem, ...] = ()
    percentiles: tuple[float, ...] = ()
    bands: dict[str, Array] | None = None  # Monte Carlo: series -> (len(percentiles), bins)
    histograms: dict[str, Histogram] | None = None  # Monte Carlo: metric -> histogram
    answer: dict[str, Any] | None = None  # the numerical kinds' own answer (optimize: the optimum; fit: the fit)
    source: dict[str, Any] | None = None  # a template's experiment: {template: {id, version, title, parameters}}

    @property
    def n(self) -> int:
        return int(self.points.shape[0])

    @property
    def table(self) -> Any:
        """A DataFrame: one row per point, a column per parameter then per metric."""
        import pandas as pd  # type: ignore[import-untyped,unused-ignore]

        columns: dict[str, Any] = {name: self.points[:, j] for j, name in enumerate(self.parameters)}
        for j, name in enumerate(self.metric_names):
            columns[name] = self.metrics[:, j]
        frame = pd.DataFrame(columns, index=pd.RangeIndex(self.n, name="point"))
        return frame

    def bind(self, evaluator: Any) -> None:
        """Keep the evaluator that made this result (for ``replicate``); not part of the record's value."""
        derived(self)["evaluator"] = evaluator

    def replicate(self, k: int) -> Any:
        """Point ``k`` evaluated again alone (its parameters, its seed): an ``Evaluated``, bit-identical."""
        ev = derived(self).get("evaluator")
        if ev is None:
            raise RuntimeError("this result is not bound to its evaluator (run it through run_experiment)")
        if not 0 <= k < self.n:
            raise IndexError(f"point {k} of {self.n}")
        sample = ev.spec.sample_pmf if ev.spec.sample_pmf is not None else self.kind == "montecarlo"
        return ev.evaluate(self.points[k:k + 1], [self.seeds[k]], sample_pmf=sample, counted=False)

    def band(self, series: str, percentile: float) -> Array:
        """The per-bin percentile ``percentile`` of captured ``series`` (Monte Carlo)."""
        assert self.bands is not None, "bands are computed by montecarlo experiments"
        return np.asarray(self.bands[series][self.percentiles.index(percentile)], dtype=np.float64)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "kind": self.kind, "spec": self.spec, "seed": self.seed, "points": self.n,
            "parameters": list(self.parameters), "metrics": list(self.metric_names),
            "table": {"columns": [*self.parameters, *self.metric_names],
                      "rows": _clean(np.concatenate([self.points, self.metrics], axis=1))},
            "seeds": list(self.seeds),
            "series": {name: _clean(a) for name, a in self.series.items()},
            "warnings": [w.to_dict() for w in self.warnings],
        }
        if self.bands is not None:
            out["percentiles"] = list(self.percentiles)
            out["bands"] = {name: {f"p{q:g}": _clean(a[i]) for i, q in enumerate(self.percentiles)}
                            for name, a in self.bands.items()}
        if self.histograms is not None:
            out["histograms"] = {name: h.to_json() for name, h in self.histograms.items()}
        if self.answer is not None:
            out["answer"] = self.answer
        if self.source is not None:
            out["source"] = self.source
        return out
