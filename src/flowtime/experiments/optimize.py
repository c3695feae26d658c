"""
Optimisation: the parameters, within their bounds, that minimise or maximise one metric, with
constraints on others (issue 14 item 2e, decision 0034).

``run_optimize(objective, bounds, settings)`` searches over the batched
``Objective`` with one of ``scipy.optimize``'s methods:

- ``nelder-mead`` and ``powell``: bounded, derivative-free, no constraints (asking for
  constraints with them is an error, not a silent drop);
- ``slsqp``: constraints, gradients by forward differences (the p + 1 points in one batch);
- ``cobyla``: constraints, derivative-free (the default when there are constraints);
- ``differential-evolution``: global, seeded, the whole population one batch per generation
  (``vectorized=True``), constraints as a ``NonlinearConstraint``.

Every method works in the unit cube (each parameter scaled by its range), so one ``xtol`` means
the same on a capacity of 10..100 as on a ratio of 0..1, and the model is never asked outside the
bounds. The same point twice costs nothing (``experiments.memo``). ``converged`` is true only when
the solver reports success AND every constraint holds within ``constraintTol``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

from flowtime.errors import ExperimentError, Problem
from flowtime.experiments.memo import Memo, jacobian
from flowtime.experiments.objective import Bounds, Objective
from flowtime.records import record

Array = npt.NDArray[np.float64]
METHODS = ("nelder-mead", "powell", "slsqp", "cobyla", "differential-evolution")
CONSTRAINED = ("slsqp", "cobyla", "differential-evolution")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", alias_generator=to_camel, populate_by_name=True, frozen=True)


class Constraint(_Strict):
    """``metric`` (an index into the spec's metrics or a metric's column name) ``op`` ``value``."""

    metric: int | str
    op: Literal["<=", ">="]
    value: float


class OptimizeSettings(_Strict):
    metric: int | str = 0  # what is optimised: an index into the metrics or a metric's column name
    goal: Literal["minimize", "maximize"] = "minimize"
    method: Literal["nelder-mead", "powell", "slsqp", "cobyla", "differential-evolution"] | None = None
    constraints: list[Constraint] = Field(default_factory=list)
    x0: list[float] | None = None  # the start (in parameter units); the middle of the bounds by default
    maxiter: int = Field(default=200, ge=1)
    xtol: float = Field(default=1e-6, gt=0)  # relative to each parameter's range
    ftol: float = Field(default=1e-8, gt=0)
    constraint_tol: float = Field(default=1e-6, ge=0)
    diff_step: float = Field(default=1e-6, gt=0, lt=0.5)  # SLSQP's gradient step, relative to the range
    popsize: int = Field(default=15, ge=1)  # differential evolution: population = popsize x parameters
    polish: bool = True  # differential evolution: finish with a local search from the best member

    @property
    def chosen(self) -> str:
        """The method: the one asked for, else cobyla with constraints and nelder-mead without."""
        return self.method or ("cobyla" if self.constraints else "nelder-mead")


@record
class Step:
    iteration: int
    x: tuple[float, ...]
    objective: float
    violation: float  # the largest amount by which a constraint is broken (0: all hold)

    def to_json(self) -> dict[str, Any]:
        return {"iteration": self.iteration, "x": list(self.x), "objective": _num(self.objective),
                "violation": _num(self.violation)}


@record
class Residual:
    metric: str
    op: str
    value: float
    actual: float
    slack: float  # >= 0 when the constraint holds: value - actual for <=, actual - value for >=

    def to_json(self) -> dict[str, Any]:
        return {"metric": self.metric, "op": self.op, "value": self.value, "actual": _num(self.actual),
                "slack": _num(self.slack)}


@record
class OptimizeResult:
    method: str
    goal: str
    metric: str
    parameters: tuple[str, ...]
    x: tuple[float, ...]
    objective: float  # the metric at x (not negated when maximising)
    metrics: tuple[float, ...]  # every metric at x
    constraints: tuple[Residual, ...]
    converged: bool
    success: bool  # what the solver said
    message: str
    iterations: int
    evaluations: int  # distinct points evaluated
    trace: tuple[Step, ...]

    @property
    def violation(self) -> float:
        return max((max(0.0, -r.slack) for r in self.constraints), default=0.0)

    def to_json(self) -> dict[str, Any]:
        return {"method": self.method, "goal": self.goal, "metric": self.metric,
                "parameters": dict(zip(self.parameters, self.x, strict=True)), "objective": _num(self.objective),
                "metrics": [_num(v) for v in self.metrics], "constraints": [c.to_json() for c in self.constraints],
                "converged": self.converged, "success": self.success, "message": self.message,
                "iterations": self.iterations, "evaluations": self.evaluations,
                "trace": [s.to_json() for s in self.trace]}


def _num(v: float) -> float | None:
    return float(v) if np.isfinite(v) else None


def metric_index(ref: int | str, names: Sequence[str], where: str) -> int:
    """The column of metric ``ref`` (an index, or a name among ``names``); ``ExperimentError`` at ``where``."""
    if isinstance(ref, int):
        if names and not 0 <= ref < len(names):
            raise ExperimentError([Problem(where, f"metric index {ref} is outside the {len(names)} metrics")])
        return ref
    if ref not in names:
        known = ", ".join(names) or "none"
        raise ExperimentError([Problem(where, f"unknown metric '{ref}' (the metrics are {known})")])
    return names.index(ref)


def start(bounds: Sequence[Bounds], x0: Sequence[float] | None, where: str = "settings.x0") -> Array:
    """The start in the unit cube: ``x0`` scaled, else the middle; ``x0`` outside the bounds is an error."""
    if x0 is None:
        return np.full(len(bounds), 0.5)
    if len(x0) != len(bounds):
        raise ExperimentError([Problem(where, f"gives {len(x0)} values for {len(bounds)} parameters")])
    problems = [Problem(f"{where}[{i}]", f"{v:g} is outside {b.name}'s bounds [{b.low:g}, {b.high:g}]")
                for i, (v, b) in enumerate(zip(x0, bounds, strict=True)) if not b.low <= v <= b.high]
    if problems:
        raise ExperimentError(problems)
    return np.array([(v - b.low) / (b.high - b.low) for v, b in zip(x0, bounds, strict=True)])


class Scaled:
    """The objective over the unit cube, remembered: ``u`` in [0, 1]^p -> the metrics at ``low + u (high - low)``."""

    def __init__(self, objective: Objective, bounds: Sequence[Bounds]) -> None:
        self.low = np.array([b.low for b in bounds], dtype=np.float64)
        self.span = np.array([b.high - b.low for b in bounds], dtype=np.float64)
        self.memo = Memo(self._call, len(bounds))
        self._objective = objective

    def x(self, u: Array) -> Array:
        return self.low + np.clip(u, 0.0, 1.0) * self.span

    def _call(self, u: Array) -> Array:
        got = np.asarray(self._objective(self.x(u)), dtype=np.float64)
        return got.reshape(u.shape[0], -1)

    def __call__(self, u: Array) -> Array:
        # clipped first: a solver's step just past a bound is the bound (the memo sees that point)
        return self.memo(np.clip(np.asarray(u, dtype=np.float64), 0.0, 1.0))


def run_optimize(objective: Objective, bounds: Sequence[Bounds], settings: OptimizeSettings, *,
                 metric_names: Sequence[str] = (), seed: int | None = None) -> OptimizeResult:
    """The optimum of ``settings.metric`` over ``bounds`` subject to ``settings.constraints``."""
    from scipy import optimize  # type: ignore[import-untyped]

    if not bounds:
        raise ExperimentError([Problem("parameters", "optimisation needs at least one parameter with a range")])
    k = metric_index(settings.metric, metric_names, "settings.metric")
    cons = [(metric_index(c.metric, metric_names, f"settings.constraints[{i}].metric"),
             1.0 if c.op == ">=" else -1.0, c.value) for i, c in enumerate(settings.constraints)]
    method = settings.chosen
    if cons and method not in CONSTRAINED:
        raise ExperimentError([Problem("settings.constraints", f"method {method} takes no constraints; use "
                                                               "slsqp, cobyla or differential-evolution")])
    sign = -1.0 if settings.goal == "maximize" else 1.0
    f = Scaled(objective, bounds)
    u0 = start(bounds, settings.x0)
    p = len(bounds)

    def column(rows: Array, j: int, where: str) -> Array:
        if rows.shape[-1] <= j:
            raise ExperimentError([Problem(where, f"metric index {j} is outside the {rows.shape[-1]} metrics")])
        return rows[..., j]

    def value(u: Array) -> float:
        got = float(column(f(u), k, "settings.metric")) * sign
        if not np.isfinite(got):  # a solver cannot compare NaN; say where it happened
            x = ", ".join(f"{b.name} = {v:g}" for b, v in zip(bounds, f.x(u), strict=True))
            raise ExperimentError([Problem("settings.metric", f"the metric is {got} at {x}")])
        return got

    def slack(rows: Array) -> Array:
        """>= 0 where a constraint holds, one column per constraint."""
        return np.stack([s * (column(rows, j, "settings.constraints") - v) for j, s, v in cons], axis=-1)

    def violation(u: Array) -> float:
        return float(max(0.0, -float(slack(f(u)).min()))) if cons else 0.0

    trace: list[Step] = []

    def record_step(u: Array) -> None:
        uc = np.clip(np.asarray(u, dtype=np.float64), 0.0, 1.0)
        trace.append(Step(len(trace) + 1, tuple(float(v) for v in f.x(uc)), value(uc) * sign, violation(uc)))

    def objective_jac(u: Array) -> Array:
        return np.asarray(jacobian(f.memo, np.clip(u, 0, 1), settings.diff_step)[1][k] * sign, dtype=np.float64)

    def local_constraints(kind: str) -> list[dict[str, Any]]:
        """The constraints as scipy.optimize.minimize takes them (gradients from one batch for SLSQP)."""
        return [{"type": "ineq", "fun": (lambda u, i=i: float(slack(f(u))[i]))}
                | ({"jac": (lambda u, j=j, s=s: s * jacobian(f.memo, np.clip(u, 0, 1), settings.diff_step)[1][j])}
                   if kind == "slsqp" else {})
                for i, (j, s, _) in enumerate(cons)]

    unit = [(0.0, 1.0)] * p
    res: Any
    if method == "differential-evolution":
        def population(u: Array) -> Array:  # (p, S) -> (S,)
            if u.shape[-1] == 0:  # scipy evaluates only the feasible members: with none, an empty population
                return np.empty(0)
            return column(f(u.T), k, "settings.metric") * sign

        constraints: Any = ()
        if cons:
            lb = np.array([v if s > 0 else -np.inf for _, s, v in cons])
            ub = np.array([np.inf if s > 0 else v for _, s, v in cons])
            cols = [j for j, _, _ in cons]

            def con(u: Array) -> Array:
                rows = f(u.T if u.ndim == 2 else u.reshape(1, -1))
                out = rows[:, cols].T  # (M, S)
                return out if u.ndim == 2 else out[:, 0]

            constraints = optimize.NonlinearConstraint(con, lb, ub)

        def generation(intermediate_result: Any) -> None:
            record_step(intermediate_result.x)

        # scipy polishes a constrained result with trust-constr, and warns when the population holds no
        # feasible member; we polish constrained results ourselves with SLSQP, from a feasible best only.
        res = optimize.differential_evolution(
            population, unit, maxiter=settings.maxiter, popsize=settings.popsize, tol=settings.ftol, atol=0.0,
            rng=np.random.default_rng(seed), polish=settings.polish and not cons, vectorized=True,
            updating="deferred", constraints=constraints, x0=u0 if settings.x0 is not None else None,
            callback=generation)
        if settings.polish and cons and violation(res.x) <= settings.constraint_tol:
            polished = optimize.minimize(value, np.clip(res.x, 0, 1), method="SLSQP", bounds=unit,
                                         options={"ftol": settings.ftol},
                                         jac=objective_jac, constraints=local_constraints("slsqp"))
            better = value(np.clip(polished.x, 0, 1)) < value(np.clip(res.x, 0, 1))
            if better and violation(polished.x) <= settings.constraint_tol:
                record_step(polished.x)
                res.x = polished.x
        elif cons and violation(res.x) > settings.constraint_tol:
            res.success = False
            res.message = "no member of the population satisfies the constraints; the least infeasible is returned"
    else:
        def step(xk: Any) -> None:
            record_step(np.asarray(xk, dtype=np.float64))

        options: dict[str, Any] = {"maxiter": settings.maxiter}
        extra: dict[str, Any] = {}
        if method == "nelder-mead":
            options |= {"xatol": settings.xtol, "fatol": settings.ftol}
        elif method == "powell":
            options |= {"xtol": settings.xtol, "ftol": settings.ftol}
        elif method == "cobyla":
            options |= {"tol": settings.xtol, "catol": settings.constraint_tol, "rhobeg": 0.25}
        else:  # slsqp: gradients of the objective and the constraints from one batch at each point
            options |= {"ftol": settings.ftol}
            extra["jac"] = objective_jac
        if cons:
            extra["constraints"] = local_constraints(method)
        res = optimize.minimize(value, u0, method=method.replace("-", "_") if method != "nelder-mead"
                                else "Nelder-Mead", bounds=unit, options=options, callback=step, **extra)
    u = np.clip(np.asarray(res.x, dtype=np.float64), 0.0, 1.0)
    rows = f(u)
    names = list(metric_names) or [str(j) for j in range(rows.size)]
    residuals = tuple(Residual(names[j], ">=" if s > 0 else "<=", v, float(rows[j]), float(s * (rows[j] - v)))
                      for j, s, v in cons)
    worst = max((max(0.0, -r.slack) for r in residuals), default=0.0)
    success = bool(res.success)
    return OptimizeResult(
        method, settings.goal, names[k], tuple(b.name for b in bounds), tuple(float(v) for v in f.x(u)),
        float(rows[k]), tuple(float(v) for v in rows), residuals,
        success and worst <= settings.constraint_tol, success, str(res.message), int(getattr(res, "nit", len(trace))),
        f.memo.evaluations, tuple(trace))
