"""
Routes that take model text: POST /v1/run, /v1/graph and /v1/validate (tiered: ``engine.validation``).

The body is model YAML (``application/x-yaml``, ``text/yaml``, ``text/plain``,
or no content type) or JSON ``{"yaml": ..., "seed": ..., "samplePmf": ..., "set": {...}}``
(plus ``"strict"`` for a run and the reference's ``"tier"`` for validate; 0028).
What-if overrides of const nodes come as the JSON ``set`` object or as repeated
``?set=name=value`` query parameters (values in JSON: ``20``, ``[1,2,3]``).
Provenance comes from the ``X-Model-Provenance`` header (a JSON object) or an
embedded top-level ``provenance:`` block; when both are present the header
wins wholesale - no field merging - and a warning says so. The embedded block
never reaches the stored spec. CPU work runs in the threadpool.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, replace
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.background import BackgroundTask
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException

from flowtime.analysis.findings import Finding
from flowtime.analysis.metrics import NodeMetrics, derive
from flowtime.api.bodies import UnusableJson, load_json
from flowtime.api.engine_deps import get_registry, get_settings
from flowtime.api.problems import problem_responses
from flowtime.artifacts.compare import json_values
from flowtime.artifacts.registry import Registry
from flowtime.artifacts.state import StateCache
from flowtime.artifacts.writer import write_run
from flowtime.engine import plan
from flowtime.engine.validation import TIERS, Validation, analyse_run, strict_gate, tier_named, validate_model
from flowtime.errors import (
    FlowTimeError,
    LimitExceeded,
    ModelSyntaxError,
    ModelValidationError,
    Problem,
)
from flowtime.model.files import SeriesFiles
from flowtime.model.load import load_model
from flowtime.model.provenance import HEADER, Provenance, provenance_from_header
from flowtime.model.schema import Model
from flowtime.series_files import within
from flowtime.settings import EngineSettings

SOURCE = "request body"
YAML_TYPES = frozenset({"application/x-yaml", "application/yaml", "text/yaml", "text/x-yaml",
                        "text/plain"})
JSON_TYPES = frozenset({"application/json"})

HELLO = """schemaVersion: 1
grid: {bins: 4, binSize: 1, binUnit: hours}
nodes:
  - {id: demand, kind: const, values: [10, 20, 30, 40]}
  - {id: served, kind: expr, expr: "MIN(demand, 25)"}
"""


class ModelEnvelope(BaseModel):
    """The JSON form of a model body."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    yaml: str = Field(description="The model YAML text.")
    seed: int | None = Field(default=None, ge=-(2**63), lt=2**64, strict=True,
                             description="RNG seed; overrides rng.seed.")
    sample_pmf: bool = Field(default=False, alias="samplePmf", strict=True,
                             description="Draw PMF nodes per bin instead of their expected value.")
    set_: dict[str, Any] | None = Field(default=None, alias="set",
                                        description="New values for const nodes: {\"capacity\": 20, "
                                                    "\"arrivals\": [1, 2, 3]} (a number means every bin).")


class RunEnvelope(ModelEnvelope):
    """The JSON form of a run body."""

    strict: bool = Field(default=False, strict=True, description="Refuse (422, nothing stored) a run the analyser "
                                                                 "finds a warning in; as ?strict=true.")


class ValidateEnvelope(ModelEnvelope):
    """The JSON form of a validate body: the reference's ``{"yaml", "tier"}`` plus the run options."""

    tier: str | None = Field(default=None, description="schema, compile or analyse (the default); any case. "
                                                       "?tier= wins over this field.")


def _body_doc(with_options: bool, envelope: type[ModelEnvelope] = ModelEnvelope) -> dict[str, Any]:
    schema = envelope.model_json_schema(by_alias=True)
    if not with_options:
        schema = {"type": "object", "required": ["yaml"],
                  "properties": {"yaml": {"type": "string"}}}
    text = {"schema": {"type": "string"}, "example": HELLO}
    return {"requestBody": {"required": True, "content": {
        "application/x-yaml": text, "text/yaml": text, "text/plain": text,
        "application/json": {"schema": schema, "example": {"yaml": HELLO, "seed": 42}},
    }}}


@dataclass(frozen=True)
class ModelRequest:
    text: str
    seed: int | None = None
    sample_pmf: bool = False
    overrides: dict[str, Any] | None = None
    tier: str | None = None  # /v1/validate's
    strict: bool = False  # /v1/run's


def parse_model_body(content_type: str | None, body: bytes,
                     envelope: type[ModelEnvelope] = ModelEnvelope) -> ModelRequest:
    """The model text and run options of a request body (JSON read as ``envelope``); 415 for other media types."""
    media = (content_type or "").split(";", 1)[0].strip().lower()
    is_json = media in JSON_TYPES or media.endswith("+json")
    if media and not is_json and media not in YAML_TYPES and not media.endswith("+yaml"):
        raise HTTPException(415, f"unsupported media type '{media}'; send model YAML as "
                            "application/x-yaml, text/yaml or text/plain, or JSON "
                            "{\"yaml\": ...} as application/json (curl: -H 'Content-Type: "
                            "application/x-yaml' --data-binary @model.yaml)")
    try:
        text = body.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ModelSyntaxError([Problem("", f"body is not UTF-8 text (byte {exc.start})")],
                               SOURCE) from None
    if not is_json:
        if not text.strip():
            raise ModelSyntaxError([Problem("", "request body is empty; send the model YAML")],
                                   SOURCE)
        return ModelRequest(text)
    try:
        data = load_json(text)
    except json.JSONDecodeError as exc:
        raise ModelSyntaxError([Problem("", f"body is not valid JSON: {exc.msg} at line "
                                            f"{exc.lineno}, column {exc.colno}")], SOURCE) from None
    except UnusableJson as exc:
        raise ModelSyntaxError([Problem("", f"body is not usable JSON: {exc}")], SOURCE) from None
    try:
        got = envelope.model_validate(data)
    except ValidationError as exc:
        raise ModelValidationError(
            [Problem(".".join(str(p) for p in e["loc"]) or "body",
                     _envelope_message(e, envelope)) for e in exc.errors()], SOURCE) from None
    return ModelRequest(got.yaml, got.seed, got.sample_pmf, got.set_, getattr(got, "tier", None),
                        getattr(got, "strict", False))


def _envelope_message(err: Any, envelope: type[ModelEnvelope]) -> str:
    if err["type"] == "extra_forbidden":
        names = [f.alias or n for n, f in envelope.model_fields.items()]
        return f"unknown field; the JSON body takes {', '.join(names[:-1])} and {names[-1]}"
    if err["type"] == "model_type":
        return 'the JSON body must be an object such as {"yaml": "schemaVersion: 1 ..."}'
    return str(err["msg"])


def header_provenance(request: Request) -> Provenance | None:
    """The ``X-Model-Provenance`` header, parsed; 400 naming the problem when it is malformed."""
    values = request.headers.getlist(HEADER)
    if not values:
        return None
    if len(values) > 1:
        raise ModelValidationError([Problem(HEADER, f"sent {len(values)} times; send it once")])
    value = values[0].strip()
    if not value:
        raise ModelValidationError([Problem(HEADER, "header is empty; omit it or send a JSON "
                                                    "object with at least modelId")])
    return provenance_from_header(value)


log = logging.getLogger("flowtime.engine")
router = APIRouter(tags=["models"], responses=problem_responses(400, 401, 413, 415, 422, 507))
ProvenanceHeader = Annotated[str | None, Header(
    alias=HEADER, description="Provenance as a JSON object (camelCase or snake_case keys, "
                              "modelId required); replaces an embedded provenance block.")]


LenientQuery = Annotated[bool, Query(
    alias="lenientOutputs", description="Skip outputs naming unknown nodes, with a warning, as the reference does "
                                        "(default: a 400 naming them).")]
SetQuery = Annotated[list[str] | None, Query(
    alias="set", description="name=value (JSON value), repeatable: new values for const nodes, e.g. "
                             "set=capacity=20&set=arrivals=[1,2,3]. Merged with a JSON body's set (query wins).")]


def query_overrides(items: list[str] | None) -> dict[str, Any]:
    """``?set=name=value`` items; a malformed item is a 400 naming it."""
    out: dict[str, Any] = {}
    problems: list[Problem] = []
    for item in items or ():
        name, sep, raw = item.partition("=")
        if not sep or not name.strip():
            problems.append(Problem("set", f"expected name=value, got {item[:60]!r}"))
            continue
        try:
            out[name.strip()] = load_json(raw)
        except (json.JSONDecodeError, UnusableJson):
            problems.append(Problem(f"set.{name.strip()}", f"value {raw[:60]!r} is not JSON (a number such as 20, "
                                                           "or a list such as [1,2,3])"))
    if problems:
        raise ModelValidationError(problems, "the query")
    return out


@router.post("/v1/run", status_code=200, openapi_extra=_body_doc(True, RunEnvelope),
             summary="Evaluate a model and store the run (200, as the reference; Location names the run)")
async def post_run(
    request: Request,
    provenance_header: ProvenanceHeader = None,
    series: Annotated[bool, Query(description="Include the series values.")] = True,
    set_: SetQuery = None,
    lenient: LenientQuery = False,
    strict: Annotated[bool, Query(description="Refuse the run with a 422 listing the analyser's findings when "
                                              "any is a warning or worse; nothing is stored.")] = False,
    settings: EngineSettings = Depends(get_settings),
    registry: Registry = Depends(get_registry),
) -> JSONResponse:
    del provenance_header  # documented above; read (with repeats) from the raw headers
    header = header_provenance(request)
    req = parse_model_body(request.headers.get("content-type"), await request.body(), RunEnvelope)
    if set_:
        req = replace(req, overrides={**(req.overrides or {}), **query_overrides(set_)})
    if strict:
        req = replace(req, strict=True)
    body, computed = await run_in_threadpool(_run, req, header, settings, registry, series, lenient)
    # After the answer is sent: the run's state opened from the model in hand, for its first view.
    seed = BackgroundTask(_seed_state, request.app.state.state_cache, registry, str(body["runId"]), computed)
    return JSONResponse(body, status_code=200, headers={"Location": f"/v1/runs/{body['runId']}"}, background=seed)


def _seed_state(cache: StateCache, registry: Registry, run_id: str, model: Model) -> None:
    try:
        cache.seed(registry, run_id, model)
    except (FlowTimeError, OSError) as exc:  # deleted meanwhile, say: the first view reads the folder
        log.info("the state of run %s was not opened after writing it: %s", run_id, exc)
    except Exception:  # a cache warm-up must never fail a run
        log.exception("could not open the state of run %s after writing it", run_id)


def telemetry(settings: EngineSettings) -> SeriesFiles | None:
    """`file:` series over HTTP: read inside the telemetry root only, and not at all without one."""
    return within(settings.telemetry_root) if settings.telemetry_root is not None else None


def _run(req: ModelRequest, header: Provenance | None, settings: EngineSettings,
         registry: Registry, with_series: bool, lenient: bool = False) -> tuple[dict[str, Any], Model]:
    """The run's answer, and the model it computed (overrides applied)."""
    t0 = time.perf_counter()
    loaded = load_model(req.text, SOURCE, limits=settings.limits(), series_files=telemetry(settings),
                        lenient_outputs=lenient)
    model = loaded.model
    values = model.grid.bins * len(model.nodes)
    if with_series and values > settings.max_response_values:
        raise LimitExceeded(f"the run would answer with {values} values ({len(model.nodes)} nodes x "
                            f"{model.grid.bins} bins); the limit is {settings.max_response_values} "
                            "(FLOWTIME_MAX_RESPONSE_VALUES): ask with ?series=false and read the stored series",
                            limit_name="max_response_values")
    planned = plan(model)
    t1 = time.perf_counter()
    results = planned.evaluate(req.seed, sample_pmf=req.sample_pmf, set=req.overrides)
    given = results.overrides
    t2 = time.perf_counter()
    metrics: dict[str, NodeMetrics] | None = None
    findings: list[Finding] | None = None
    if req.strict:  # before anything is written: a run that fails the gate is not stored
        run_model = results.model or model
        metrics = derive(run_model, results.series, run_model.analysis)
        findings = analyse_run(run_model, results.series, metrics)
        strict_gate(findings)
    extra: list[dict[str, Any]] = []
    provenance = loaded.provenance
    if header is not None:
        if provenance is not None:
            extra.append(Problem("provenance", f"the {HEADER} header replaces the embedded "
                                 "provenance block (no fields are merged)",
                                 severity="warning").to_dict())
        provenance = header
    record = write_run(loaded, results, settings.data_dir, provenance=provenance, timings={
        "compileMs": round((t1 - t0) * 1000, 3), "evaluateMs": round((t2 - t1) * 1000, 3)}, metrics=metrics,
        findings=findings)
    registry.register(record)
    out: dict[str, Any] = {
        "runId": record.run_id,
        "grid": model.grid.to_json(),
        "order": results.shown,
        "outputs": results.output_ids,
    }
    if with_series:
        out["series"] = {n: json_values(results.series[n]) for n in results.shown}
        classes = results.classes
        if classes:  # per flow class, for the nodes classes reach (0021)
            out["classSeries"] = {n: {c: json_values(v) for c, v in classes[n].items()}
                                  for n in results.shown if n in classes}
    out["classCoverage"] = record.run.get("classCoverage", "none")
    out.update({
        "artifactsPath": str(record.path.resolve()),
        "provenance": ({**provenance.with_overrides(given).to_json(), "receivedAt": record.manifest["createdUtc"]}
                       if provenance is not None else None),
        "modelHash": record.manifest["modelHash"],
        "scenarioHash": record.manifest["scenarioHash"],
        "seed": results.seed,
        "overrides": given,
        "warnings": [*extra, *record.run.get("warnings", [])],
    })
    return out, results.model or model


@router.post("/v1/graph", openapi_extra=_body_doc(False),
             summary="Nodes, edges and evaluation order of a model, without running it")
async def post_graph(request: Request, lenient: LenientQuery = False,
                     settings: EngineSettings = Depends(get_settings)) -> dict[str, Any]:
    req = parse_model_body(request.headers.get("content-type"), await request.body())
    return await run_in_threadpool(_graph, req.text, settings, lenient)


def _graph(text: str, settings: EngineSettings, lenient: bool) -> dict[str, Any]:
    return load_model(text, SOURCE, limits=settings.limits(), series_files=telemetry(settings),
                      lenient_outputs=lenient).graph.describe()


TierQuery = Annotated[str | None, Query(description="schema, compile or analyse (the default; any case): how far "
                                                   "to go. Wins over a JSON body's tier.")]


@router.post("/v1/validate", openapi_extra=_body_doc(True, ValidateEnvelope),
             summary="Every problem of a model, located, at a tier: schema, compile or analyse (the default)")
async def post_validate(request: Request, lenient: LenientQuery = False, tier: TierQuery = None,
                        set_: SetQuery = None,
                        settings: EngineSettings = Depends(get_settings)) -> dict[str, Any]:
    media = request.headers.get("content-type")
    body = await request.body()
    if not body.strip():
        chosen = _tier(tier, None)
        return Validation(chosen, (Problem("", "request body is empty; send the model YAML"),)).to_json()
    req = parse_model_body(media, body, ValidateEnvelope)
    chosen = _tier(tier, req.tier)
    if set_:
        req = replace(req, overrides={**(req.overrides or {}), **query_overrides(set_)})
    return await run_in_threadpool(_validate, req, chosen, settings, lenient)


def _tier(query: str | None, body: str | None) -> str:
    given = query if query is not None else body
    if given is None:
        return "analyse"
    name = tier_named(given)
    if name is None:
        raise HTTPException(400, f"unknown tier {given[:40]!r}; expected one of {', '.join(TIERS)}")
    return name


def _validate(req: ModelRequest, tier: str, settings: EngineSettings, lenient: bool) -> dict[str, Any]:
    # Reporting problems is this endpoint's answer (validate_model never raises them);
    # input over a limit is refused with a problem (400) as on every other route.
    return validate_model(req.text, SOURCE, tier=tier, limits=settings.limits(), series_files=telemetry(settings),
                          lenient_outputs=lenient, seed=req.seed, sample_pmf=req.sample_pmf,
                          overrides=req.overrides).to_json()
