"""
The reference's synchronous analysis endpoints, with ITS field names (decision 0036):
``POST /v1/sweep``, ``/v1/sensitivity``, ``/v1/goal-seek``, ``/v1/optimize``.

Each request is mapped onto an experiment spec and run by ``run_experiment``
like every other surface; the answer has the reference's shape plus ``result``
(our full answer). What we fix on the way (analysis-head §1.0–§1.5): unknown
or non-const parameters and unknown metric series are 400s naming the field
(never silently skipped or read as 0), goal seek needs its ``target``, every
range error is a 400 (never a 500), and this server's point cap applies
(the reference has none). Problems are located at the request's own field
names (``paramIds[1]``, ``searchHi``), not the spec's.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal, TypeVar

import numpy as np
from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from starlette.concurrency import run_in_threadpool

from flowtime.api.engine_deps import get_settings
from flowtime.api.engine_experiments import checked, read_json_body
from flowtime.api.problems import problem_responses
from flowtime.errors import ExperimentError, Problem
from flowtime.experiments.results import ExperimentResult
from flowtime.experiments.runner import run_experiment
from flowtime.model.kinds import is_internal
from flowtime.model.load import load_model
from flowtime.model.schema import ConstNode, Model
from flowtime.settings import EngineSettings

SOURCE = "request yaml"


class _Request(BaseModel):
    model_config = ConfigDict(extra="forbid")

    yaml: str = Field(min_length=1)


class SweepRequest(_Request):
    paramId: str = Field(min_length=1)  # the reference's field names (camelCase)
    values: list[float] = Field(min_length=1)
    captureSeriesIds: list[str] | None = None


class SensitivityRequest(_Request):
    paramIds: list[str] = Field(min_length=1)
    metricSeriesId: str = Field(min_length=1)
    perturbation: float = Field(default=0.05, gt=0, lt=1)


class GoalSeekRequest(_Request):
    paramId: str = Field(min_length=1)
    metricSeriesId: str = Field(min_length=1)
    target: float  # required: the reference silently seeks 0 without it
    searchLo: float
    searchHi: float
    tolerance: float = Field(default=1e-6, gt=0)
    maxIterations: int = Field(default=50, ge=1)


class SearchRange(BaseModel):
    model_config = ConfigDict(extra="forbid")

    lo: float
    hi: float


class OptimizeRequest(_Request):
    paramIds: list[str] = Field(min_length=1)
    metricSeriesId: str = Field(min_length=1)
    objective: Literal["minimize", "maximize"] = "minimize"
    searchRanges: dict[str, SearchRange]
    tolerance: float = Field(default=1e-4, gt=0)
    maxIterations: int = Field(default=200, ge=1)

    @field_validator("objective", mode="before")
    @classmethod
    def _any_case(cls, v: Any) -> Any:
        return v.lower() if isinstance(v, str) else v


R = TypeVar("R", bound=_Request)


def parse_request(cls: type[R], raw: bytes) -> R:
    try:
        return cls.model_validate(read_json_body(raw))
    except ValidationError as exc:
        raise ExperimentError([Problem(".".join(str(p) for p in e["loc"]) or "body", str(e["msg"]))
                               for e in exc.errors(include_url=False)]) from None


Renames = list[tuple[str, str]]


def _renamed(path: str, renames: Renames) -> str:
    for old, new in renames:  # most specific first
        if path == old or path.startswith((old + ".", old + "[")):
            return new + path[len(old):]
    return path


def run_mapped(spec: dict[str, Any], text: str, settings: EngineSettings, renames: Renames) -> ExperimentResult:
    """Run ``spec`` under the server's cap; every problem renamed to the request's field."""
    try:
        parsed = checked(spec, text, settings)[0]
        return run_experiment(parsed, text, settings.experiment_backend)
    except ExperimentError as exc:
        raise ExperimentError([Problem(_renamed(p.path, renames), p.message, severity=p.severity)
                               for p in exc.problems]) from None


def _model(text: str, settings: EngineSettings) -> Model:
    return load_model(text, SOURCE, limits=settings.limits()).model


def _base_value(model: Model, node_id: str, where: str) -> float:
    """The reference's base value: a const node's first bin (anything else is a 400, not skipped)."""
    node = next((n for n in model.nodes if n.id == node_id), None)
    if not isinstance(node, ConstNode):
        what = "no node" if node is None else f"a {node.kind} node"
        raise ExperimentError([Problem(where, f"'{node_id}' is {what}; these endpoints vary const nodes")])
    return float(np.asarray(node.values, dtype=np.float64).ravel()[0])


def _sweep(req: SweepRequest, settings: EngineSettings) -> dict[str, Any]:
    model = _model(req.yaml, settings)
    capture = req.captureSeriesIds or [n.id for n in model.nodes if not is_internal(n.id)]
    spec = {"kind": "sweep", "parameters": [{"target": req.paramId, "values": req.values}], "capture": capture}
    result = run_mapped(spec, req.yaml, settings, [("parameters[0].target", "paramId"),
                                                   ("parameters[0].values", "values"),
                                                   ("parameters[0]", "paramId"),
                                                   ("capture", "captureSeriesIds")])
    got = result.to_json()
    points = [{"paramValue": float(result.points[k, 0]),
               "series": {name: got["series"][name][k] for name in result.series}} for k in range(result.n)]
    got.pop("series")
    return {"paramId": req.paramId, "points": points, "result": got}


def _sensitivity(req: SensitivityRequest, settings: EngineSettings) -> dict[str, Any]:
    model = _model(req.yaml, settings)
    bases = [_base_value(model, pid, f"paramIds[{i}]") for i, pid in enumerate(req.paramIds)]
    p = req.perturbation
    # the step is p of the base (the reference's b(1 +- p)); a zero base steps over [-1, 1] instead
    ranges = [{"low": b - abs(b) * p, "high": b + abs(b) * p} if b != 0 else {"low": -1.0, "high": 1.0}
              for b in bases]
    spec = {"kind": "sensitivity", "parameters": [{"target": pid, "range": r} for pid, r in
                                                  zip(req.paramIds, ranges, strict=True)],
            "metrics": [{"series": req.metricSeriesId, "aggregate": "mean"}],
            "settings": {"method": "local", "base": bases, "step": p}}
    renames = [("metrics[0]", "metricSeriesId"), ("settings.step", "perturbation"),
               *((f"parameters[{i}]", f"paramIds[{i}]") for i in range(len(req.paramIds)))]
    result = run_mapped(spec, req.yaml, settings, renames)
    answer = result.answer or {}
    points = [{"paramId": e["parameter"], "baseValue": e["x"], "gradient": e["derivative"],
               "elasticity": e["elasticity"]} for e in answer.get("local", [])]
    points.sort(key=lambda q: -abs(q["gradient"]) if q["gradient"] is not None else 0.0)
    return {"metricSeriesId": req.metricSeriesId, "points": points, "result": result.to_json()}


def _goalseek(req: GoalSeekRequest, settings: EngineSettings) -> dict[str, Any]:
    spec = {"kind": "goalseek", "parameters": [{"target": req.paramId,
                                                "range": {"low": req.searchLo, "high": req.searchHi}}],
            "metrics": [{"series": req.metricSeriesId, "aggregate": "mean"}],
            "settings": {"target": req.target, "ftol": req.tolerance, "maxiter": req.maxIterations}}
    renames = [("parameters[0].range.low", "searchLo"), ("parameters[0].range.high", "searchHi"),
               ("parameters[0].range", "searchLo"), ("parameters[0]", "paramId"), ("metrics[0]", "metricSeriesId"),
               ("settings.target", "target"), ("settings.ftol", "tolerance"), ("settings.maxiter", "maxIterations")]
    result = run_mapped(spec, req.yaml, settings, renames)
    a = result.answer or {}
    trace = [{"iteration": i, "paramValue": t["x"], "metricMean": t["value"]} for i, t in enumerate(a.get("trace", []))]
    return {"paramValue": a.get("x"), "achievedMetricMean": a.get("value"), "converged": a.get("converged"),
            "iterations": a.get("iterations"), "trace": trace, "result": result.to_json()}


def _optimize(req: OptimizeRequest, settings: EngineSettings) -> dict[str, Any]:
    missing = [Problem(f"searchRanges.{pid}", f"no search range for '{pid}'; give {{lo, hi}}")
               for pid in req.paramIds if pid not in req.searchRanges]
    if missing:
        raise ExperimentError(missing)
    spec = {"kind": "optimize",
            "parameters": [{"target": pid, "range": {"low": req.searchRanges[pid].lo,
                                                     "high": req.searchRanges[pid].hi}} for pid in req.paramIds],
            "metrics": [{"series": req.metricSeriesId, "aggregate": "mean"}],
            "settings": {"goal": req.objective, "method": "nelder-mead", "ftol": req.tolerance,
                         "maxiter": req.maxIterations}}
    renames = [("metrics[0]", "metricSeriesId"), ("settings.goal", "objective"), ("settings.ftol", "tolerance"),
               ("settings.maxiter", "maxIterations"),
               *((f"parameters[{i}].range", f"searchRanges.{pid}") for i, pid in enumerate(req.paramIds)),
               *((f"parameters[{i}]", f"paramIds[{i}]") for i in range(len(req.paramIds)))]
    result = run_mapped(spec, req.yaml, settings, renames)
    a = result.answer or {}
    trace = [{"iteration": s["iteration"], "paramValues": dict(zip(req.paramIds, s["x"], strict=True)),
              "metricMean": s["objective"]} for s in a.get("trace", [])]
    return {"paramValues": a.get("parameters"), "achievedMetricMean": a.get("objective"),
            "converged": a.get("converged"), "iterations": a.get("iterations"), "trace": trace,
            "result": result.to_json()}


router = APIRouter(tags=["experiments"], responses=problem_responses(400, 401, 413, 422, 501))


def _doc(cls: type[BaseModel]) -> dict[str, Any]:
    return {"requestBody": {"required": True, "content": {"application/json": {
        "schema": cls.model_json_schema()}}}}


async def _answer(request: Request, cls: type[R], settings: EngineSettings,
                  run: Callable[[R, EngineSettings], dict[str, Any]]) -> dict[str, Any]:
    req = parse_request(cls, await request.body())
    return await run_in_threadpool(run, req, settings)


@router.post("/v1/sweep", openapi_extra=_doc(SweepRequest),
             summary="The reference's one-parameter sweep: {yaml, paramId, values, captureSeriesIds}")
async def post_sweep(request: Request, settings: EngineSettings = Depends(get_settings)) -> dict[str, Any]:
    return await _answer(request, SweepRequest, settings, _sweep)


@router.post("/v1/sensitivity", openapi_extra=_doc(SensitivityRequest),
             summary="The reference's local sensitivity: {yaml, paramIds, metricSeriesId, perturbation}")
async def post_sensitivity(request: Request, settings: EngineSettings = Depends(get_settings)) -> dict[str, Any]:
    return await _answer(request, SensitivityRequest, settings, _sensitivity)


@router.post("/v1/goal-seek", openapi_extra=_doc(GoalSeekRequest),
             summary="The reference's goal seek: {yaml, paramId, metricSeriesId, target, searchLo, searchHi}")
async def post_goal_seek(request: Request, settings: EngineSettings = Depends(get_settings)) -> dict[str, Any]:
    return await _answer(request, GoalSeekRequest, settings, _goalseek)


@router.post("/v1/optimize", openapi_extra=_doc(OptimizeRequest),
             summary="The reference's optimisation: {yaml, paramIds, metricSeriesId, objective, searchRanges}")
async def post_optimize(request: Request, settings: EngineSettings = Depends(get_settings)) -> dict[str, Any]:
    return await _answer(request, OptimizeRequest, settings, _optimize)
