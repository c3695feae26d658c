"""
Goal seek: the value of one parameter at which a metric reaches a target (issue 14 item 2d, decision 0032).

``run_goalseek(objective, bounds, settings)`` solves metric(x) = target with
``scipy.optimize.root_scalar(method="brentq")`` over the bracket (the parameter's
range, or ``settings.bracket``). The two ends are probed first, in one batched
call; without a sign change of metric - target between them there is no
bracketed root and ``BracketError`` says f(low), f(high) and to widen the bracket
(the runner turns it into an ``ExperimentError`` at the bracket's path). Every
evaluation is in the trace (x, metric); a point asked for twice is evaluated once.
``converged`` is true only when brentq says so AND |metric(x) - target| <= ftol.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
from pydantic import BaseModel, ConfigDict, Field, model_validator
from pydantic.alias_generators import to_camel

from flowtime.errors import ExperimentError, Problem
from flowtime.experiments.memo import Memo
from flowtime.experiments.objective import Bounds, Objective
from flowtime.experiments.optimize import metric_index
from flowtime.records import record

Array = npt.NDArray[np.float64]
EPS_RTOL = 4 * float(np.finfo(np.float64).eps)  # brentq's least relative tolerance


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", alias_generator=to_camel, populate_by_name=True, frozen=True)


class GoalSeekSettings(_Strict):
    target: float
    metric: int | str = 0  # an index into the metrics or a metric's column name
    bracket: list[float] | None = Field(default=None, min_length=2, max_length=2)  # [low, high]; the range if left out
    xtol: float = Field(default=1e-6, gt=0)
    rtol: float = Field(default=1e-10, ge=EPS_RTOL)
    ftol: float = Field(default=1e-6, ge=0)
    maxiter: int = Field(default=100, ge=1)

    @model_validator(mode="after")
    def _ordered(self) -> GoalSeekSettings:
        if self.bracket is not None and not (np.isfinite(self.bracket).all() and self.bracket[0] < self.bracket[1]):
            raise ValueError(f"bracket must be two finite numbers, low < high, got {self.bracket}")
        return self


class BracketError(ValueError):
    """metric - target has the same sign (or is NaN) at both ends of the bracket: no root is bracketed."""

    def __init__(self, low: float, high: float, f_low: float, f_high: float, target: float) -> None:
        self.low, self.high, self.f_low, self.f_high, self.target = low, high, f_low, f_high, target
        if np.isnan(f_low) or np.isnan(f_high):
            why = "the metric is NaN at an end"
        else:
            side = "above" if f_low > target else "below"
            why = f"the metric is {side} the target {target:g} at both ends"
        super().__init__(f"no sign change over [{low:g}, {high:g}]: the metric is {f_low:g} at {low:g} and "
                         f"{f_high:g} at {high:g} ({why}); widen the bracket so that the target lies between")


@record
class Probe:
    x: float
    value: float  # the metric at x

    def to_json(self) -> dict[str, Any]:
        return {"x": self.x, "value": _num(self.value)}


@record
class GoalSeekResult:
    parameter: str
    metric: str
    target: float
    x: float
    value: float  # the metric at x
    converged: bool
    solver_converged: bool  # what brentq said
    flag: str
    iterations: int
    bracket: tuple[float, float]
    trace: tuple[Probe, ...]  # every distinct evaluation, in order (the bracket's ends first)

    @property
    def residual(self) -> float:
        return self.value - self.target

    @property
    def evaluations(self) -> int:
        return len(self.trace)

    def to_json(self) -> dict[str, Any]:
        return {"parameter": self.parameter, "metric": self.metric, "target": self.target, "x": self.x,
                "value": _num(self.value), "residual": _num(self.residual), "converged": self.converged,
                "solverConverged": self.solver_converged, "flag": self.flag, "iterations": self.iterations,
                "evaluations": self.evaluations, "bracket": list(self.bracket),
                "trace": [t.to_json() for t in self.trace]}


def _num(v: float) -> float | None:
    return float(v) if np.isfinite(v) else None


def run_goalseek(objective: Objective, bounds: Sequence[Bounds], settings: GoalSeekSettings, *,
                 metric_names: Sequence[str] = ()) -> GoalSeekResult:
    """x in the bracket with metric(x) = target; ``BracketError`` when the ends do not bracket it."""
    from scipy import optimize  # type: ignore[import-untyped]

    if len(bounds) != 1:
        raise ExperimentError([Problem("parameters", f"goal seek varies exactly one parameter, got {len(bounds)}")])
    (b,) = bounds
    k = metric_index(settings.metric, metric_names, "settings.metric")
    low, high = (settings.bracket[0], settings.bracket[1]) if settings.bracket is not None else (b.low, b.high)

    def rows(x: Array) -> Array:
        return np.asarray(objective(x), dtype=np.float64).reshape(x.shape[0], -1)

    memo = Memo(rows, 1)
    ends = memo(np.array([[low], [high]]))  # both ends: one batch
    if ends.shape[1] <= k:
        raise ExperimentError([Problem("settings.metric", f"metric index {k} is outside the {ends.shape[1]} metrics")])
    f_low, f_high = float(ends[0, k]), float(ends[1, k])
    t = settings.target
    if not (np.isfinite(f_low) and np.isfinite(f_high)) or (f_low - t) * (f_high - t) > 0:
        raise BracketError(low, high, f_low, f_high, t)

    def g(x: float) -> float:
        return float(memo(np.array([x]))[k]) - t

    res = optimize.root_scalar(g, bracket=(low, high), method="brentq", xtol=settings.xtol, rtol=settings.rtol,
                               maxiter=settings.maxiter)
    x = float(res.root)
    value = g(x) + t
    names = list(metric_names) or [str(j) for j in range(ends.shape[1])]
    points, values = memo.table()
    trace = tuple(Probe(float(p[0]), float(v[k])) for p, v in zip(points, values, strict=True))
    solver = bool(res.converged)
    return GoalSeekResult(b.name, names[k], t, x, value, solver and abs(value - t) <= settings.ftol, solver,
                          str(res.flag), int(res.iterations), (float(low), float(high)), trace)
