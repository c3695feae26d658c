"""
Sensitivity: how much each parameter moves each metric (issue 14 item 2c, decision 0032).

``run_sensitivity(objective, bounds, settings)`` over the batched ``Objective``, one of

- ``local``: central differences at a base point (the middle of the bounds unless
  ``base`` is given) with a relative step ``step``: x_i -> x_i (1 +- h). The base and
  its 2p neighbours are ONE objective call. Each (metric, parameter) has the
  derivative dy/dx, the elasticity dy/dx * x / y (undefined, with the reason, where
  x or y is 0: never inf) and the effects y(x_i - d) - y, y(x_i + d) - y a tornado
  chart draws. A step that would leave the bounds is clipped to them (the model is
  never asked outside its ranges); the derivative is then the secant over what is left.
- ``morris``: SALib's Morris design (``trajectories`` x (p + 1) points on a
  ``levels`` grid) and its elementary effects: mu, mu*, sigma and mu*'s bootstrap
  confidence half-width. An effect is the change of y per the parameter's whole range
  (each step is a fraction of the range), so effects of parameters in different units compare.
- ``sobol``: SALib's Saltelli/Sobol design (``samples`` x (p + 2) points, or
  x (2p + 2) with ``secondOrder``) and the first-order and total indices S1, ST
  (and S2) with bootstrap confidence half-widths.

Morris and Sobol are seeded (the design and the bootstrap) and evaluate the whole
design in one objective call (the evaluator batches it).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
from pydantic import BaseModel, ConfigDict, Field, model_validator
from pydantic.alias_generators import to_camel

from flowtime.errors import ExperimentError, Problem
from flowtime.experiments.objective import Bounds, Objective
from flowtime.records import record

Array = npt.NDArray[np.float64]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", alias_generator=to_camel, populate_by_name=True, frozen=True)


class SensitivitySettings(_Strict):
    method: Literal["local", "morris", "sobol"] = "local"
    base: list[float] | None = None  # local: the base point (parameter units); the middle of the bounds by default
    step: float = Field(default=0.05, gt=0, lt=1)  # local: the relative step h (the reference's 5 %)
    trajectories: int = Field(default=10, ge=2)  # morris: trajectories (each p + 1 points)
    levels: int = Field(default=4, ge=2)  # morris: grid levels (even)
    samples: int = Field(default=1024, ge=2)  # sobol: base samples N (a power of 2)
    second_order: bool = False  # sobol: also S2 (the design grows to N (2p + 2))
    resamples: int = Field(default=100, ge=10)  # bootstrap resamples of the confidence intervals
    confidence: float = Field(default=0.95, gt=0, lt=1)

    @model_validator(mode="after")
    def _shape(self) -> SensitivitySettings:
        if self.levels % 2:
            raise ValueError(f"levels must be even (Morris' step is levels / (2 (levels - 1))), got {self.levels}")
        if self.samples & (self.samples - 1):
            raise ValueError(f"samples must be a power of 2 (the Sobol sequence's balance), got {self.samples}")
        return self


@record
class LocalEffect:
    """One (metric, parameter) at the base point; ``elasticity`` None with ``undefined`` saying why."""

    metric: str
    parameter: str
    x: float
    y: float
    low: float  # the parameter's value below the base
    high: float  # and above
    y_low: float
    y_high: float
    derivative: float
    elasticity: float | None
    undefined: str | None

    @property
    def low_effect(self) -> float:
        return self.y_low - self.y

    @property
    def high_effect(self) -> float:
        return self.y_high - self.y

    def to_json(self) -> dict[str, Any]:
        return {"metric": self.metric, "parameter": self.parameter, "x": _num(self.x), "y": _num(self.y),
                "low": _num(self.low), "high": _num(self.high), "yLow": _num(self.y_low),
                "yHigh": _num(self.y_high), "lowEffect": _num(self.low_effect),
                "highEffect": _num(self.high_effect), "derivative": _num(self.derivative),
                "elasticity": None if self.elasticity is None else _num(self.elasticity),
                "undefined": self.undefined}


@record
class SensitivityResult:
    method: str
    parameters: tuple[str, ...]
    metrics: tuple[str, ...]
    points: Array  # (n, p): every point evaluated (local: the base, then x_i - d, x_i + d per parameter)
    values: Array  # (n, m)
    local: tuple[LocalEffect, ...] = ()  # local: metric-major, parameters in order
    # morris/sobol: metric -> index name (mu, muStar, sigma, muStarConf; S1, S1Conf, ST, STConf) -> per parameter
    indices: dict[str, dict[str, tuple[float, ...]]] | None = None
    second_order: dict[str, dict[str, tuple[tuple[float, ...], ...]]] | None = None  # sobol: S2, S2Conf (p x p)

    def tornado(self, metric: str | int = 0) -> list[LocalEffect]:
        """Local effects of one metric, the widest swing |y_high - y_low| first (a tornado chart's order)."""
        name = self.metrics[metric] if isinstance(metric, int) else metric
        rows = [e for e in self.local if e.metric == name]
        return sorted(rows, key=lambda e: -abs(e.y_high - e.y_low) if np.isfinite(e.y_high - e.y_low) else 0.0)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"method": self.method, "parameters": list(self.parameters),
                               "metrics": list(self.metrics), "evaluations": int(self.points.shape[0])}
        if self.method == "local":
            out["local"] = [e.to_json() for e in self.local]
            out["tornado"] = {m: [{"parameter": e.parameter, "low": _num(e.low_effect),
                                   "high": _num(e.high_effect)} for e in self.tornado(m)] for m in self.metrics}
        if self.indices is not None:
            out["indices"] = {m: {k: [_num(v) for v in vs] for k, vs in d.items()} for m, d in self.indices.items()}
        if self.second_order is not None:
            out["secondOrder"] = {m: {k: [[_num(v) for v in row] for row in mat] for k, mat in d.items()}
                                  for m, d in self.second_order.items()}
        return out


def _num(v: float) -> float | None:
    return float(v) if np.isfinite(v) else None


def _call(objective: Objective, x: Array) -> Array:
    got = np.asarray(objective(x), dtype=np.float64)
    return got.reshape(x.shape[0], -1)


def _names(metric_names: Sequence[str], m: int) -> tuple[str, ...]:
    return tuple(metric_names) if len(metric_names) == m else tuple(str(j) for j in range(m))


def run_sensitivity(objective: Objective, bounds: Sequence[Bounds], settings: SensitivitySettings, *,
                    metric_names: Sequence[str] = (), seed: int | None = None) -> SensitivityResult:
    if not bounds:
        raise ExperimentError([Problem("parameters", "sensitivity needs at least one parameter with a range")])
    if settings.method == "local":
        return _local(objective, bounds, settings, metric_names)
    return _global(objective, bounds, settings, metric_names, seed)


def _local(objective: Objective, bounds: Sequence[Bounds], settings: SensitivitySettings,
           metric_names: Sequence[str]) -> SensitivityResult:
    p = len(bounds)
    low = np.array([b.low for b in bounds])
    high = np.array([b.high for b in bounds])
    if settings.base is None:
        x0 = (low + high) / 2.0
    else:
        if len(settings.base) != p:
            raise ExperimentError([Problem("settings.base", f"gives {len(settings.base)} values for {p} parameters")])
        x0 = np.array(settings.base, dtype=np.float64)
        outside = [Problem(f"settings.base[{i}]", f"{v:g} is outside {b.name}'s bounds [{b.low:g}, {b.high:g}]")
                   for i, (v, b) in enumerate(zip(x0, bounds, strict=True)) if not b.low <= v <= b.high]
        if outside:
            raise ExperimentError(outside)
    # x = 0 has no relative step: step by h of the range there (its elasticity is undefined anyway)
    d = np.where(x0 != 0.0, settings.step * np.abs(x0), settings.step * (high - low))
    down = np.maximum(x0 - d, low)
    up = np.minimum(x0 + d, high)
    pts = np.repeat(x0[None, :], 2 * p + 1, axis=0)
    for i in range(p):
        pts[1 + 2 * i, i] = down[i]
        pts[2 + 2 * i, i] = up[i]
    rows = _call(objective, pts)  # the base and all 2p neighbours: one call
    names = _names(metric_names, rows.shape[1])
    effects: list[LocalEffect] = []
    for j, metric in enumerate(names):
        y = float(rows[0, j])
        for i, b in enumerate(bounds):
            y_low, y_high = float(rows[1 + 2 * i, j]), float(rows[2 + 2 * i, j])
            width = float(up[i] - down[i])
            deriv = (y_high - y_low) / width if width > 0 else float("nan")
            x = float(x0[i])
            reason = None
            if x == 0.0:
                reason = f"{b.name} is 0 at the base point"
            elif y == 0.0:
                reason = f"{metric} is 0 at the base point"
            elif not (np.isfinite(y) and np.isfinite(deriv)):
                reason = f"{metric} is not finite near the base point"
            elasticity = None if reason else deriv * x / y
            effects.append(LocalEffect(metric, b.name, x, y, float(down[i]), float(up[i]), y_low, y_high, deriv,
                                       elasticity, reason))
    return SensitivityResult("local", tuple(b.name for b in bounds), names, pts, rows, tuple(effects))


def _global(objective: Objective, bounds: Sequence[Bounds], settings: SensitivitySettings,
            metric_names: Sequence[str], seed: int | None) -> SensitivityResult:
    from SALib.analyze import morris as morris_analyze  # type: ignore[import-untyped]
    from SALib.analyze import sobol as sobol_analyze
    from SALib.sample import morris as morris_sample  # type: ignore[import-untyped]
    from SALib.sample import sobol as sobol_sample

    problem = {"num_vars": len(bounds), "names": [b.name for b in bounds],
               "bounds": [[b.low, b.high] for b in bounds]}
    if settings.method == "morris":
        pts = np.asarray(morris_sample.sample(problem, settings.trajectories, num_levels=settings.levels,
                                              seed=seed), dtype=np.float64)
    else:
        pts = np.asarray(sobol_sample.sample(problem, settings.samples, calc_second_order=settings.second_order,
                                             scramble=True, seed=seed), dtype=np.float64)
    rows = _call(objective, pts)  # the whole design: one call
    names = _names(metric_names, rows.shape[1])
    indices: dict[str, dict[str, tuple[float, ...]]] = {}
    second: dict[str, dict[str, tuple[tuple[float, ...], ...]]] = {}
    for j, metric in enumerate(names):
        y = np.ascontiguousarray(rows[:, j])
        if settings.method == "morris":
            got = morris_analyze.analyze(problem, pts, y, num_resamples=settings.resamples,
                                         conf_level=settings.confidence, num_levels=settings.levels, seed=seed)
            keys = {"mu": "mu", "muStar": "mu_star", "sigma": "sigma", "muStarConf": "mu_star_conf"}
        else:
            got = sobol_analyze.analyze(problem, y, calc_second_order=settings.second_order,
                                        num_resamples=settings.resamples, conf_level=settings.confidence,
                                        seed=seed)
            keys = {"S1": "S1", "S1Conf": "S1_conf", "ST": "ST", "STConf": "ST_conf"}
            if settings.second_order:
                second[metric] = {k: tuple(tuple(float(v) for v in row) for row in np.asarray(got[k]))
                                  for k in ("S2", "S2_conf")}
        indices[metric] = {ours: tuple(float(v) for v in np.asarray(got[theirs], dtype=np.float64))
                           for ours, theirs in keys.items()}
    if second:
        second = {m: {"S2": d["S2"], "S2Conf": d["S2_conf"]} for m, d in second.items()}
    return SensitivityResult(settings.method, tuple(b.name for b in bounds), names, pts, rows, (), indices,
                             second or None)
