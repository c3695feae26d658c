"""
Fitting: the parameters that make a model series match an observed one (issue 14 item 2f,
decision 0034).

``run_fit(series_objective, bounds, settings, observed)`` compares the model's
series (a ``SeriesObjective``: points -> one series per point) with the observed
array over the fitted bins: the window ``[start, end)`` less the bins whose
observation is NaN (missing). The loss is

- ``rmse``: sqrt(mean(r^2)),
- ``mae``: mean(|r|),
- ``weighted``: sqrt(sum(w r^2) / sum(w)) with one weight per bin,

with r = model - observed. ``least-squares`` (the default for rmse and weighted: the
loss is a sum of squares) is ``scipy.optimize.least_squares`` in the unit cube
with a Jacobian from one batch of p + 1 points; every other method is
``run_optimize`` over the loss (mae defaults to nelder-mead: it is not a sum of
squares). The result has the parameters, the loss, R^2 over the fitted bins
(weighted for ``weighted``; undefined when the observations are constant), the
fitted series, the residuals (NaN at bins not fitted) and the trace.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
from pydantic import BaseModel, ConfigDict, Field, model_validator
from pydantic.alias_generators import to_camel

from flowtime.errors import ExperimentError, Problem
from flowtime.experiments.memo import jacobian
from flowtime.experiments.objective import Bounds, SeriesObjective
from flowtime.experiments.optimize import OptimizeSettings, Scaled, Step, run_optimize, start
from flowtime.records import record

Array = npt.NDArray[np.float64]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", alias_generator=to_camel, populate_by_name=True, frozen=True)


class Observed(_Strict):
    """
    The observed series: ``values`` inline (null = missing), a ``file`` (CSV) the caller reads, or ``csv``:
    that CSV's text inline (how it comes over HTTP, where the Engine reads no file; ``experiments.observed``).
    """

    values: list[float | None] | None = None
    file: str | None = None
    csv: str | None = None

    @model_validator(mode="after")
    def _one(self) -> Observed:
        if sum(v is not None for v in (self.values, self.file, self.csv)) != 1:
            raise ValueError("give exactly one of values, file or csv")
        return self

    def array(self) -> Array:
        assert self.values is not None, "a file must be read by the caller into values"
        return np.array([np.nan if v is None else v for v in self.values], dtype=np.float64)


class FitWindow(_Strict):
    start: int = Field(default=0, ge=0)
    end: int | None = Field(default=None, ge=1)  # exclusive; the grid's end when left out

    @model_validator(mode="after")
    def _ordered(self) -> FitWindow:
        if self.end is not None and self.end <= self.start:
            raise ValueError(f"end ({self.end}) must be greater than start ({self.start})")
        return self


class FitSettings(_Strict):
    series: str = Field(min_length=1)  # the model series fitted (a node id or a derived metric's series id)
    observed: Observed
    loss: Literal["rmse", "mae", "weighted"] = "rmse"
    weights: list[float] | None = None  # one per bin, >= 0 (loss weighted)
    window: FitWindow | None = None
    method: Literal["least-squares", "nelder-mead", "powell", "slsqp", "cobyla",
                    "differential-evolution"] | None = None
    x0: list[float] | None = None
    maxiter: int = Field(default=200, ge=1)
    xtol: float = Field(default=1e-8, gt=0)  # relative to each parameter's range
    ftol: float = Field(default=1e-10, gt=0)
    diff_step: float = Field(default=1e-6, gt=0, lt=0.5)

    @model_validator(mode="after")
    def _weights(self) -> FitSettings:
        if self.loss == "weighted" and self.weights is None:
            raise ValueError("loss weighted needs weights (one per bin)")
        if self.weights is not None and (self.loss != "weighted"):
            raise ValueError(f"weights are for loss weighted, not {self.loss}")
        if self.weights is not None and any(not np.isfinite(w) or w < 0 for w in self.weights):
            raise ValueError("weights must be finite and >= 0")
        if self.loss == "mae" and self.method == "least-squares":
            raise ValueError("mae is not a sum of squares: use nelder-mead, powell, cobyla or "
                             "differential-evolution")
        return self

    @property
    def chosen(self) -> str:
        return self.method or ("nelder-mead" if self.loss == "mae" else "least-squares")


@record
class FitResult:
    method: str
    loss: str
    parameters: tuple[str, ...]
    x: tuple[float, ...]
    value: float  # the loss at x
    r2: float  # NaN when the fitted observations are constant
    bins: int  # bins fitted (window, less missing observations)
    fitted: Array  # the model series at x
    residuals: Array  # model - observed, NaN at bins not fitted
    converged: bool
    message: str
    iterations: int
    evaluations: int
    trace: tuple[Step, ...]  # objective = the loss

    def to_json(self) -> dict[str, Any]:
        def clean(a: Array) -> list[float | None]:
            return [float(v) if np.isfinite(v) else None for v in a]

        return {"method": self.method, "loss": self.loss, "parameters": dict(zip(self.parameters, self.x, strict=True)),
                "value": float(self.value), "r2": float(self.r2) if np.isfinite(self.r2) else None,
                "bins": self.bins, "fitted": clean(self.fitted), "residuals": clean(self.residuals),
                "converged": self.converged, "message": self.message, "iterations": self.iterations,
                "evaluations": self.evaluations, "trace": [s.to_json() for s in self.trace]}


def fitted_bins(settings: FitSettings, observed: Array) -> tuple[Array, Array]:
    """(mask of the bins fitted, weight per bin); ``ExperimentError`` when no bin is left or sizes differ."""
    n = observed.size
    w = np.ones(n) if settings.weights is None else np.asarray(settings.weights, dtype=np.float64)
    if w.size != n:
        raise ExperimentError([Problem("settings.weights", f"gives {w.size} weights for {n} observed bins")])
    mask = ~np.isnan(observed)
    if settings.window is not None:
        end = n if settings.window.end is None else settings.window.end
        if end > n:
            raise ExperimentError([Problem("settings.window.end", f"{end} is past the {n} observed bins")])
        inside = np.zeros(n, dtype=bool)
        inside[settings.window.start:end] = True
        mask &= inside
    mask &= w > 0
    if not mask.any():
        raise ExperimentError([Problem("settings.observed", "no bin to fit: every observation in the window is "
                                                            "missing or has weight 0")])
    return mask, w


def loss_of(kind: str, r: Array, w: Array) -> Array:
    """The loss of each row of residuals ``r`` ``(n, bins used)``."""
    if kind == "mae":
        return np.asarray(np.mean(np.abs(r), axis=-1), dtype=np.float64)
    return np.asarray(np.sqrt(np.sum(w * r * r, axis=-1) / np.sum(w)), dtype=np.float64)


def run_fit(series: SeriesObjective, bounds: Sequence[Bounds], settings: FitSettings,
            observed: Array | None = None, *, seed: int | None = None) -> FitResult:
    """The parameters within ``bounds`` whose series best matches ``observed`` (else ``settings.observed``)."""
    from scipy import optimize  # type: ignore[import-untyped]

    if not bounds:
        raise ExperimentError([Problem("parameters", "fitting needs at least one parameter with a range")])
    obs = settings.observed.array() if observed is None else np.asarray(observed, dtype=np.float64).ravel()
    mask, w = fitted_bins(settings, obs)
    wm, om = w[mask], obs[mask]

    def checked(rows: Array) -> Array:
        rows = np.atleast_2d(rows)
        if rows.shape[1] != obs.size:
            raise ExperimentError([Problem("settings.observed", f"gives {obs.size} bins; the series "
                                                                f"{settings.series} has {rows.shape[1]}")])
        if np.isnan(rows[:, mask]).any():
            raise ExperimentError([Problem("settings.series", f"{settings.series} is NaN at a fitted bin")])
        return rows

    method = settings.chosen
    if method != "least-squares":
        # the series of each point, so the answer's series is not evaluated twice
        kept: dict[bytes, Array] = {}

        def keeping(x: Array) -> Array:
            rows = checked(np.asarray(series(x), dtype=np.float64))
            for xi, row in zip(np.atleast_2d(x), rows, strict=True):
                kept[np.ascontiguousarray(xi).tobytes()] = row
            return loss_of(settings.loss, rows[:, mask] - om, wm)[:, None]

        opt = run_optimize(keeping, bounds, OptimizeSettings(
            method=method, x0=settings.x0, maxiter=settings.maxiter, xtol=settings.xtol, ftol=settings.ftol,
            diff_step=settings.diff_step), metric_names=("loss",), seed=seed)
        x = np.array(opt.x)
        fitted = kept.get(x.tobytes())
        if fitted is None:
            fitted = checked(np.asarray(series(x[None, :]), dtype=np.float64))[0]
        return _result(method, settings, bounds, x, fitted, obs, mask, w, opt.success, opt.message,
                       opt.iterations, opt.evaluations, opt.trace)

    f = Scaled(lambda x: checked(np.asarray(series(x), dtype=np.float64)), bounds)
    scale = np.sqrt(wm / wm.sum())  # 0.5 * sum(residual^2) = 0.5 * loss^2

    def residual(u: Array) -> Array:
        return np.asarray((f(u)[mask] - om) * scale, dtype=np.float64)

    def jac(u: Array) -> Array:
        return np.asarray(jacobian(f.memo, np.clip(u, 0.0, 1.0), settings.diff_step)[1][mask] * scale[:, None],
                          dtype=np.float64)

    trace: list[Step] = []

    def step(intermediate_result: Any) -> None:
        u = np.clip(np.asarray(intermediate_result.x, dtype=np.float64), 0.0, 1.0)
        r = residual(u)
        trace.append(Step(len(trace) + 1, tuple(float(v) for v in f.x(u)), float(np.sqrt(np.sum(r * r))), 0.0))

    res = optimize.least_squares(residual, start(bounds, settings.x0), jac=jac, bounds=(0.0, 1.0), method="trf",
                                 xtol=settings.xtol, ftol=settings.ftol, gtol=settings.ftol,
                                 max_nfev=settings.maxiter, callback=step)
    u = np.clip(np.asarray(res.x, dtype=np.float64), 0.0, 1.0)
    return _result(method, settings, bounds, f.x(u), f(u), obs, mask, w, bool(res.success), str(res.message),
                   int(res.nfev), f.memo.evaluations, tuple(trace))


def _result(method: str, settings: FitSettings, bounds: Sequence[Bounds], x: Array, fitted: Array, obs: Array,
            mask: Array, w: Array, success: bool, message: str, iterations: int, evaluations: int,
            trace: tuple[Step, ...]) -> FitResult:
    r = fitted - obs
    wm, rm, om = w[mask], r[mask], obs[mask]
    mean = np.sum(wm * om) / np.sum(wm)
    total = float(np.sum(wm * (om - mean) ** 2))
    r2 = 1.0 - float(np.sum(wm * rm * rm)) / total if total > 0 else float("nan")
    residuals = np.where(mask, r, np.nan)
    return FitResult(method, settings.loss, tuple(b.name for b in bounds), tuple(float(v) for v in x),
                     float(loss_of(settings.loss, rm, wm)), r2, int(mask.sum()), np.asarray(fitted, dtype=np.float64),
                     residuals, success, message, iterations, evaluations, trace)
