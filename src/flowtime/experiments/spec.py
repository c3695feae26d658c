"""
The experiment spec: one request shape for Python, the CLI and HTTP (issue 14, decision 0031).

An experiment is a ``kind`` with its ``settings``, the ``parameters`` it varies,
the ``metrics`` it reports, a ``seed``, ``limits`` and the series it
``capture``\\s per point. Field names are accepted in camelCase (``samplePmf``)
and snake_case (``sample_pmf``); unknown fields are errors. ``parse_spec``
turns JSON/YAML data into a spec, every pydantic error translated into a
``Problem`` at the spec's path (``parameters[1].range.high``) and raised as
one ``ExperimentError``. ``experiment_schema()`` is the JSON schema
(docs/schemas/experiment.schema.json is written from it).

The settings of sensitivity, goalseek, optimize and fit live with their
algorithms (``experiments.sensitivity`` and the rest) and join the union below:
one ``<Kind>Experiment`` class each.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    TypeAdapter,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic.alias_generators import to_camel

from flowtime.errors import ExperimentError, Problem
from flowtime.experiments.fit import FitSettings
from flowtime.experiments.goalseek import GoalSeekSettings
from flowtime.experiments.optimize import OptimizeSettings
from flowtime.experiments.sensitivity import SensitivitySettings

MAX_POINTS = 100_000  # per experiment unless the spec's limits say less (a server may cap it lower)
HARD_MAX_POINTS = 10_000_000  # what limits.maxPoints may be raised to at most
AGGREGATES = ("mean", "sum", "max", "min", "last", "p50", "p95", "p99")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", alias_generator=to_camel, populate_by_name=True, frozen=True)


# -- parameters ----------------------------------------------------------------------------------

def _above_low(high: float, info: ValidationInfo) -> float:
    """``high`` checked against ``low`` (reported at ``.high``); both finite."""
    low = info.data.get("low")
    if not math.isfinite(high) or (low is not None and not math.isfinite(low)):
        raise ValueError("low and high must be finite numbers")
    if low is not None and high <= low:
        raise ValueError(f"high ({high:g}) must be greater than low ({low:g})")
    return high


class Range(_Strict):
    """``low`` to ``high`` inclusive; a grid takes ``steps`` evenly spaced values (a Latin hypercube ignores it)."""

    low: float
    high: float
    steps: int | None = Field(default=None, ge=2, le=MAX_POINTS)

    @field_validator("high")
    @classmethod
    def _high(cls, v: float, info: ValidationInfo) -> float:
        return _above_low(v, info)


class Uniform(_Strict):
    kind: Literal["uniform"]
    low: float
    high: float

    @field_validator("high")
    @classmethod
    def _high(cls, v: float, info: ValidationInfo) -> float:
        return _above_low(v, info)


class Normal(_Strict):
    kind: Literal["normal"]
    mean: float
    sd: float = Field(gt=0)


class Triangular(_Strict):
    kind: Literal["triangular"]
    low: float
    mode: float
    high: float

    @model_validator(mode="after")
    def _ordered(self) -> Triangular:
        if not (self.low <= self.mode <= self.high and self.low < self.high):
            raise ValueError(f"needs low <= mode <= high and low < high, got {self.low:g}, {self.mode:g}, "
                             f"{self.high:g}")
        return self


class Lognormal(_Strict):
    """The logarithm is normal with mean ``mu`` and standard deviation ``sigma`` (numpy's parameters)."""

    kind: Literal["lognormal"]
    mu: float
    sigma: float = Field(gt=0)


class Discrete(_Strict):
    kind: Literal["discrete"]
    values: list[float] = Field(min_length=1)
    probabilities: list[float] = Field(min_length=1)

    @model_validator(mode="after")
    def _pmf(self) -> Discrete:
        if len(self.values) != len(self.probabilities):
            raise ValueError(f"gives {len(self.values)} values but {len(self.probabilities)} probabilities")
        if any(p < 0 for p in self.probabilities) or not math.isclose(sum(self.probabilities), 1.0, abs_tol=1e-9):
            raise ValueError(f"probabilities must be >= 0 and sum to 1, they sum to {sum(self.probabilities):g}")
        return self


DISTRIBUTIONS = ("uniform", "normal", "triangular", "lognormal", "discrete")
Distribution = Annotated[Uniform | Normal | Triangular | Lognormal | Discrete, Field(discriminator="kind")]


class Parameter(_Strict):
    """
    What one parameter varies: ``target`` (a const node id, ``topology.<Node>.capacity|parallelism|wipLimit|
    initialDepth``, ``router.<Router>.<target>`` or, with a ``template``, ``template.<parameter>``) over
    ``values``, a ``range`` or a ``distribution``.
    ``mode: value`` sets the target to the number in every bin; ``scale`` multiplies its whole profile.
    """

    target: str = Field(min_length=1)
    name: str | None = None  # the result column; the target by default
    values: list[float] | None = Field(default=None, min_length=1)
    range: Range | None = None
    distribution: Distribution | None = None
    mode: Literal["value", "scale"] = "value"

    @model_validator(mode="after")
    def _one_source(self) -> Parameter:
        given = [k for k in ("values", "range", "distribution") if getattr(self, k) is not None]
        if len(given) > 1:
            raise ValueError(f"give one of values, range or distribution, not {' and '.join(given)}")
        if self.values is not None and not all(math.isfinite(v) for v in self.values):
            raise ValueError("values must be finite numbers")
        return self

    @property
    def column(self) -> str:
        return self.name or self.target


# -- metrics -------------------------------------------------------------------------------------

class Window(_Strict):
    """Bins ``start`` (inclusive) to ``end`` (exclusive; the grid's end when left out)."""

    start: int = Field(default=0, ge=0)
    end: int | None = Field(default=None, ge=1)

    @model_validator(mode="after")
    def _ordered(self) -> Window:
        if self.end is not None and self.end <= self.start:
            raise ValueError(f"end ({self.end}) must be greater than start ({self.start})")
        return self


class Metric(_Strict):
    """A series (``series``: a node id or a derived metric's series id) or an ``expr`` over series, aggregated."""

    name: str | None = None
    series: str | None = None
    expr: str | None = None
    aggregate: Literal["mean", "sum", "max", "min", "last", "p50", "p95", "p99"] = "mean"
    window: Window | None = None

    @model_validator(mode="after")
    def _one_source(self) -> Metric:
        if (self.series is None) == (self.expr is None):
            raise ValueError("give exactly one of series or expr")
        return self

    @property
    def label(self) -> str:
        """The metric's column: its name, else ``aggregate(series or expr)``."""
        return self.name or f"{self.aggregate}({self.series if self.series is not None else self.expr})"


class Limits(_Strict):
    max_points: int = Field(default=MAX_POINTS, ge=1, le=HARD_MAX_POINTS)


# -- kinds ---------------------------------------------------------------------------------------

class SweepSettings(_Strict):
    """``grid``: every combination of the parameters' values (a range gives ``steps``); ``lhs``: ``points``
    points of a Latin hypercube over the ranges, from the seed."""

    method: Literal["grid", "lhs"] = "grid"
    points: int | None = Field(default=None, ge=1)


class MonteCarloSettings(_Strict):
    replications: int = Field(default=1000, ge=1)
    percentiles: list[float] = Field(default_factory=lambda: [5.0, 25.0, 50.0, 75.0, 95.0], min_length=1)
    bins: int = Field(default=20, ge=1, le=10_000)  # histogram bins of each scalar metric

    @model_validator(mode="after")
    def _percentiles(self) -> MonteCarloSettings:
        if not all(0.0 <= q <= 100.0 for q in self.percentiles):
            raise ValueError("percentiles must be between 0 and 100")
        return self


class TemplateSource(_Strict):
    """
    The experiment's model is a Sim template (``id``: a catalog id or a template file), rendered with
    ``parameters`` (the base values; a ``template.<name>`` parameter varies one of them). Only the CLI and
    the Python API render templates: the Engine's HTTP API takes models (decision 0038).
    """

    id: str = Field(min_length=1)
    parameters: dict[str, Any] = Field(default_factory=dict)


class _Common(_Strict):
    template: TemplateSource | None = None
    parameters: list[Parameter] = Field(default_factory=list)
    metrics: list[Metric] = Field(default_factory=list)
    seed: int | None = None
    sample_pmf: bool | None = None  # PMF nodes drawn per bin; None: the kind's default (on for montecarlo only)
    limits: Limits = Field(default_factory=Limits)
    capture: list[str] = Field(default_factory=list)

    @model_validator(mode="before")
    @classmethod
    def _one_metric(cls, data: Any) -> Any:
        """``metric: {...}`` is ``metrics: [{...}]``."""
        if isinstance(data, Mapping) and "metric" in data:
            data = dict(data)
            if "metrics" in data:
                raise ValueError("give metric or metrics, not both")
            data["metrics"] = [data.pop("metric")]
        return data


class SweepExperiment(_Common):
    kind: Literal["sweep"]
    settings: SweepSettings = Field(default_factory=SweepSettings)


class MonteCarloExperiment(_Common):
    kind: Literal["montecarlo"]
    settings: MonteCarloSettings = Field(default_factory=MonteCarloSettings)


class SensitivityExperiment(_Common):
    kind: Literal["sensitivity"]
    settings: SensitivitySettings = Field(default_factory=SensitivitySettings)


class GoalSeekExperiment(_Common):
    kind: Literal["goalseek"]
    settings: GoalSeekSettings


class OptimizeExperiment(_Common):
    kind: Literal["optimize"]
    settings: OptimizeSettings = Field(default_factory=OptimizeSettings)


class FitExperiment(_Common):
    kind: Literal["fit"]
    settings: FitSettings


KINDS = ("sweep", "montecarlo", "sensitivity", "goalseek", "optimize", "fit")
AnySpec = (SweepExperiment | MonteCarloExperiment | SensitivityExperiment | GoalSeekExperiment | OptimizeExperiment
           | FitExperiment)
ExperimentSpec = Annotated[AnySpec, Field(discriminator="kind")]
_ADAPTER: TypeAdapter[AnySpec] = TypeAdapter(ExperimentSpec)


def spec_path(loc: tuple[int | str, ...]) -> str:
    """A pydantic location as the spec path: ``parameters[1].range.high``."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


def parse_spec(data: Any) -> AnySpec:
    """A spec from JSON/YAML data (or a spec, returned as it is); every problem at once as ``ExperimentError``."""
    if isinstance(data, BaseModel):
        return data  # type: ignore[return-value]
    if isinstance(data, Mapping) and data.get("kind") not in KINDS:
        got = data.get("kind")
        raise ExperimentError([Problem("kind", f"kind must be one of {', '.join(KINDS)}, got {got!r}")])
    try:
        return _ADAPTER.validate_python(data)
    except ValidationError as exc:
        problems = []
        for err in exc.errors(include_url=False):
            loc = tuple(err["loc"])
            if loc and loc[0] in KINDS:  # the union's tag, not part of the spec's path
                loc = loc[1:]
            loc = tuple(p for i, p in enumerate(loc) if not (isinstance(p, str) and p.startswith("function-"))
                        and not (i and loc[i - 1] == "distribution" and p in DISTRIBUTIONS))
            message = str(err["msg"]).removeprefix("Value error, ")
            problems.append(Problem(spec_path(loc), message))
        raise ExperimentError(problems) from None


def experiment_schema() -> dict[str, Any]:
    """The JSON schema of the spec (camelCase names, as written in YAML/JSON)."""
    schema: dict[str, Any] = _ADAPTER.json_schema(by_alias=True)
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "FlowTime experiment"
    return schema


if __name__ == "__main__":  # python -m flowtime.experiments.spec > docs/schemas/experiment.schema.json
    import json
    import sys

    sys.stdout.write(json.dumps(experiment_schema(), indent=2) + "\n")
