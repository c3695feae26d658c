"""
Experiments over HTTP: /v1/experiments (decision 0036).

``POST /v1/experiments`` takes ``{"spec": {...}, "model": "<yaml>"}`` (or the spec
itself with ``model`` inline), checks the spec against the model at once (a bad
spec is a 400 located at its path), and answers 202 with ``Location``; the
experiment runs in a background thread (``experiment_workers`` at a time, the rest
queued; ``api.experiment_jobs``) with a cancel event and a progress count. Finished
experiments are stored (``artifacts.experiments``) and listed from their index;
accepted requests are kept on disk until they end, so a restart runs them again
(decision 0037). ``GET .../events`` streams progress (``api.experiment_events``).
``DELETE`` cancels a queued or running experiment (nothing is written) and
deletes a stored one.
"""

from __future__ import annotations

import json
import logging
import secrets
from collections.abc import Callable, Mapping
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, FastAPI, Header, Query, Request, Response
from fastapi.responses import JSONResponse, StreamingResponse
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException

from flowtime.api.bodies import UnusableJson, load_json
from flowtime.api.engine_deps import get_registry, get_settings
from flowtime.api.engine_runs import IsoTime
from flowtime.api.experiment_events import HEADERS, MEDIA_TYPE, STREAM_SECONDS, finished, job_events, last_event_id
from flowtime.api.experiment_jobs import Experiments, Job, planned_points, submitted
from flowtime.api.problems import problem_responses
from flowtime.artifacts.experiment_index import STATUSES, ExperimentQuery
from flowtime.artifacts.experiment_queue import QueuedRequest
from flowtime.artifacts.experiments import materialise, new_experiment_id
from flowtime.artifacts.query import MAX_LIMIT
from flowtime.artifacts.registry import Registry
from flowtime.artifacts.state import grid_json
from flowtime.artifacts.writer import title_of
from flowtime.errors import ExperimentError, ExperimentNotFound, FlowTimeError, Problem
from flowtime.experiments.evaluator import Evaluator
from flowtime.experiments.observed import observed_of
from flowtime.experiments.runner import RUNS
from flowtime.experiments.sources import ENGINE_TAKES_MODELS
from flowtime.experiments.spec import KINDS, AnySpec, FitExperiment, Limits, experiment_schema, parse_spec
from flowtime.model.hashing import model_hash
from flowtime.model.load import load_model
from flowtime.settings import EngineSettings

log = logging.getLogger("flowtime.engine.experiments")
SOURCE = "experiment model"
CANCEL_WAIT_SECONDS = 10.0  # DELETE of a running experiment waits this long for the next batch boundary


def read_json_body(raw: bytes) -> Any:
    """A JSON request body; malformed JSON is a 400 problem at ``body``."""
    try:
        return load_json(raw.decode("utf-8-sig"))
    except (json.JSONDecodeError, UnicodeDecodeError, UnusableJson) as exc:
        raise ExperimentError([Problem("body", f"the body is not usable JSON: {exc}")]) from None


def capped(spec: AnySpec, given: Any, cap: int) -> AnySpec:
    """
    The spec under this server's point cap: a ``limits.maxPoints`` over it is refused
    (a 400 naming both); left out, the spec's default is lowered to the cap.
    """
    asked = isinstance(given, Mapping) and isinstance(given.get("limits"), Mapping) and any(
        k in given["limits"] for k in ("maxPoints", "max_points"))
    if spec.limits.max_points <= cap:
        return spec
    if asked:
        raise ExperimentError([Problem("limits.maxPoints", f"{spec.limits.max_points} points is over this "
                                       f"server's cap of {cap} points per experiment "
                                       "(FLOWTIME_MAX_EXPERIMENT_POINTS)")])
    return spec.model_copy(update={"limits": Limits(max_points=cap)})


def available(spec: AnySpec) -> AnySpec:
    """The spec, when this build runs its kind; else 501 naming the kind."""
    if spec.kind not in RUNS:
        raise HTTPException(501, f"experiments of kind {spec.kind} are not available in this build")
    return spec


def checked(spec_data: Any, model_text: str, settings: EngineSettings
            ) -> tuple[AnySpec, str, str, dict[str, Any]]:
    """Spec parsed, model loaded under the server's limits, the spec checked against it; (spec, title, hash, grid)."""
    spec = available(capped(parse_spec(spec_data), spec_data, settings.max_experiment_points))
    loaded = load_model(model_text, SOURCE, limits=settings.limits())
    ev = Evaluator(model_text, spec)  # every parameter, metric and captured series resolved now: a 400
    if isinstance(spec, FitExperiment):
        observed_of(spec.settings, loaded.model.grid.bins)  # an observed CSV with a bad cell: a 400 now, located
    n = planned_points(spec)
    cap = spec.limits.max_points
    if n is not None and n > cap:
        raise ExperimentError([Problem("limits.maxPoints", f"the experiment has {n} points; the cap is {cap} "
                                       f"points per experiment (this server's: {settings.max_experiment_points}, "
                                       "FLOWTIME_MAX_EXPERIMENT_POINTS)")])
    values = (n or 1) * len(ev.capture) * loaded.model.grid.bins
    if values > settings.max_response_values:  # the captured series are held, stored and answered whole
        count = n if n is not None else "at least 1"
        raise ExperimentError([Problem("capture", f"{count} points x {len(ev.capture)} captured series x "
                                       f"{loaded.model.grid.bins} bins = {values} values; the limit is "
                                       f"{settings.max_response_values} (FLOWTIME_MAX_RESPONSE_VALUES): capture "
                                       "fewer series or use metrics")])
    if spec.seed is None and (loaded.model.rng is None or loaded.model.rng.seed is None):
        # drawn now, not while running: a request run again after a restart gives the same result
        spec = spec.model_copy(update={"seed": secrets.randbits(31)})
    return spec, title_of(loaded.model, model_text), model_hash(loaded.model), grid_json(loaded.model.grid, model_text)


def get_experiments(request: Request) -> Experiments:
    got: Experiments = request.app.state.experiments
    return got


router = APIRouter(tags=["experiments"], responses=problem_responses(400, 401, 404, 413, 422, 501, 507))

BODY_DOC: dict[str, Any] = {"requestBody": {"required": True, "content": {"application/json": {
    "schema": {"type": "object", "description": "{spec, model} or the spec with model inline",
               "properties": {"spec": {"$ref": "#/components/schemas/ExperimentSpec"},
                              "model": {"type": "string", "description": "the model YAML text"}},
               "required": ["model"]},
    "example": {"model": "schemaVersion: 1\n...", "spec": {
        "kind": "sweep", "parameters": [{"target": "topology.Packing.wipLimit", "values": [10, 20, 30]}],
        "metrics": [{"series": "packing_queue", "aggregate": "max"}]}}}}}}


def split_body(data: Any) -> tuple[Any, str]:
    """(spec data, model text) of ``{spec, model}`` or of a spec with ``model`` inline."""
    if not isinstance(data, Mapping):
        raise ExperimentError([Problem("body", 'expected a JSON object {"spec": {...}, "model": "<yaml>"}')])
    spec = data.get("spec", data)
    if isinstance(spec, Mapping) and spec.get("template") is not None:  # said before "no model": it is the point
        raise ExperimentError([Problem("template", ENGINE_TAKES_MODELS)])
    model = data.get("model")
    if not isinstance(model, str) or not model.strip():
        raise ExperimentError([Problem("model", "give the model YAML text as a string")])
    if "spec" in data:
        extra = sorted(set(data) - {"spec", "model"})
        if extra:
            raise ExperimentError([Problem(k, "unknown field; the body takes spec and model") for k in extra])
        return data["spec"], model
    return {k: v for k, v in data.items() if k != "model"}, model


@router.post("/v1/experiments", status_code=202, openapi_extra=BODY_DOC,
             summary="Start an experiment (202; Location names it; runs in the background)")
async def post_experiment(request: Request, settings: EngineSettings = Depends(get_settings),
                          experiments: Experiments = Depends(get_experiments)) -> JSONResponse:
    spec_data, text = split_body(read_json_body(await request.body()))
    spec, title, m_hash, grid = await run_in_threadpool(checked, spec_data, text, settings)
    job = Job(new_experiment_id(), spec, text, title, m_hash, grid=grid)
    given = {**spec_data, "seed": spec.seed}  # a dict: the spec parsed
    await run_in_threadpool(experiments.accept, job, given)  # on disk before the 202: a restart runs it again
    return JSONResponse(job.to_json(), status_code=202, headers={"Location": f"/v1/experiments/{job.id}"})


def resume(settings: EngineSettings) -> Callable[[QueuedRequest], Job]:
    """How a request kept from before a restart becomes a job again: checked as a new one is."""
    def job_of(request: QueuedRequest) -> Job:
        spec, title, m_hash, grid = checked(request.spec, request.model, settings)
        return Job(request.id, spec, request.model, title, m_hash, created=submitted(request), grid=grid)
    return job_of


def _listed(values: str | None, known: tuple[str, ...], name: str) -> tuple[str, ...]:
    got = tuple(dict.fromkeys(v.strip() for v in (values or "").split(",") if v.strip()))
    wrong = [v for v in got if v not in known]
    if wrong:
        raise ExperimentError([Problem(name, f"unknown {name} {', '.join(map(repr, wrong))}; "
                                             f"expected any of {', '.join(known)} (comma-separated)")])
    return got


def experiment_query(
    search: Annotated[str | None, Query(description="Case-insensitive substring of id, title, kind, a parameter's "
                                                    "target or the model hash.")] = None,
    q: Annotated[str | None, Query(description="The same as search.")] = None,
    kind: Annotated[str | None, Query(description=f"Comma-separated; any of {', '.join(KINDS)}.")] = None,
    status: Annotated[str | None, Query(description=f"Comma-separated; any of {', '.join(STATUSES)}.")] = None,
    model_hash: Annotated[str | None, Query(alias="modelHash", description="Exact.")] = None,
    created_after: Annotated[IsoTime, Query(alias="createdAfter", description="Inclusive, ISO 8601.")] = None,
    created_before: Annotated[IsoTime, Query(alias="createdBefore", description="Inclusive, ISO 8601.")] = None,
    sort_by: Annotated[Literal["created", "id", "title", "points"], Query(alias="sortBy")] = "created",
    sort_order: Annotated[Literal["asc", "desc"], Query(alias="sortOrder")] = "desc",
    limit: Annotated[int, Query(ge=0, description=f"Page size (at most {MAX_LIMIT}).")] = 50,
    skip: Annotated[int, Query(ge=0)] = 0,
    offset: Annotated[int | None, Query(ge=0, description="The same as skip.")] = None,
) -> ExperimentQuery:
    """The listing's query: the runs listing's parameters, plus kind and status."""
    return ExperimentQuery(search=search or q or None, kinds=_listed(kind, KINDS, "kind"),
                           statuses=_listed(status, STATUSES, "status"), model_hash=model_hash,
                           created_after=created_after, created_before=created_before, sort_by=sort_by,
                           sort_order=sort_order, limit=min(limit, MAX_LIMIT),
                           skip=offset if offset is not None else skip)


@router.get("/v1/experiments", summary="Experiments (stored, and queued/running/failed/cancelled ones), newest "
                                       "first, filtered and paged like /v1/runs")
def list_experiments(query: ExperimentQuery = Depends(experiment_query),
                     experiments: Experiments = Depends(get_experiments)) -> dict[str, Any]:
    live = {j.id: j for j in experiments.live()}
    page = experiments.store.query(query, [j.summary() for j in live.values()])
    rows = [live[e.id].to_json() if e.id in live else e.to_json() for e in page.experiments]
    return {"experiments": rows, "total": page.total, "count": page.count, "limit": query.limit,
            "skip": query.skip}


@router.get("/v1/experiments/{exp_id}", summary="One experiment: status, progress, and its result when done")
def get_experiment(exp_id: str, experiments: Experiments = Depends(get_experiments),
                   registry: Registry = Depends(get_registry)) -> dict[str, Any]:
    job = experiments.job(exp_id)
    if job is not None:
        return job.to_json()
    out = stored_json(experiments, exp_id)
    out["files"] = experiments.store.files(exp_id)
    out["runs"] = experiments.store.runs(exp_id, registry.has)
    out["result"] = experiments.store.result(exp_id)
    out["grid"] = experiments.store.grid(exp_id) or _grid_of_stored(experiments, exp_id)
    return out


def _grid_of_stored(experiments: Experiments, exp_id: str) -> dict[str, Any] | None:
    """The grid of an experiment stored before grids were recorded: from its model.yaml."""
    text = experiments.store.model_text(exp_id)
    try:
        return grid_json(load_model(text, SOURCE).model.grid, text)
    except FlowTimeError:
        return None


def stored_json(experiments: Experiments, exp_id: str) -> dict[str, Any]:
    summary = experiments.store.summary(exp_id)
    return {**summary.to_json(), "progress": {"done": summary.points, "total": summary.points}}


EVENTS_DOC: dict[int | str, dict[str, Any]] = {200: {"description": (
    "Server-sent events until the experiment ends: `status` ({id, status}) and `progress` ({done, total, rate, "
    "etaSeconds}) with the change number as `id`, then one final `done`, `failed` or `cancelled` event (the "
    "experiment, as GET answers it without the result; `id: end`) and the stream closes. A finished experiment "
    "answers its final event at once. Send `Last-Event-ID` when reconnecting: nothing already seen is repeated. "
    f"A stream without a final event ends after {STREAM_SECONDS:g} s; reconnect (EventSource does)."),
    "content": {MEDIA_TYPE: {"schema": {"type": "string"}, "example": (
        'event: progress\nid: 12\ndata: {"done":400,"total":1000,"rate":950.2,"etaSeconds":0.63}\n\n'
        'event: done\nid: end\ndata: {"id":"exp_20250101T000000Z_ab12cd34","status":"done","points":1000}\n\n')}}}}


@router.get("/v1/experiments/{exp_id}/events", summary="Progress of an experiment as server-sent events",
            response_class=StreamingResponse, responses=EVENTS_DOC)
def experiment_events(exp_id: str, last_event: Annotated[str | None, Header(alias="Last-Event-ID")] = None,
                      experiments: Experiments = Depends(get_experiments)) -> StreamingResponse:
    job = experiments.job(exp_id)
    if job is None:
        body = finished(stored_json(experiments, exp_id))  # a 404 now, before the stream starts
    else:
        body = job_events(job, last_event_id(last_event), lambda j: j.to_json())
    return StreamingResponse(body, media_type=MEDIA_TYPE, headers=HEADERS)


@router.delete("/v1/experiments/{exp_id}", summary="Cancel a queued or running experiment; delete a stored one",
               responses={200: {"description": "cancelled (the experiment's status)"},
                          202: {"description": "cancelling: the running batch has not finished yet"},
                          204: {"description": "deleted"}})
def delete_experiment(exp_id: str, experiments: Experiments = Depends(get_experiments)) -> Response:
    job = experiments.job(exp_id)
    if job is None:
        experiments.store.delete(exp_id)
        return Response(status_code=204)
    if job.status in ("queued", "running"):
        experiments.forget(job)  # its request is gone: a restart does not run it again
        job.cancel.set()
        if job.future is not None and job.future.cancel():  # still queued: it never starts
            job.changed(status="cancelled")
        elif job.future is not None:
            try:
                job.future.result(timeout=CANCEL_WAIT_SECONDS)
            except TimeoutError:
                return JSONResponse({**job.to_json(), "status": "cancelling"}, status_code=202)
            except Exception:  # the job records its own failure
                pass
        if job.status == "queued":
            job.changed(status="cancelled")
        # "done": it finished before the cancel was seen; it is stored (DELETE again deletes it)
        return JSONResponse(job.to_json(), status_code=200)
    experiments.forget(job)  # failed or cancelled: forget it
    if job.status == "done":
        raise ExperimentNotFound(f"experiment {exp_id} not found")
    return Response(status_code=204)


@router.post("/v1/experiments/{exp_id}/points/{point}/run", status_code=201,
             summary="Write point k of a stored experiment as an ordinary run (run.json names the experiment)")
def materialise_point(exp_id: str, point: int, registry: Registry = Depends(get_registry),
                      experiments: Experiments = Depends(get_experiments)) -> JSONResponse:
    made = materialise(experiments.store, exp_id, point, registry.root)
    registry.register(made)
    experiments.store.link_run(exp_id, made.run_id)
    body = {"runId": made.run_id, "experiment": made.run["experiment"], "seed": made.run["seed"],
            "overrides": made.run["overrides"]}
    return JSONResponse(body, status_code=201, headers={"Location": f"/v1/runs/{made.run_id}"})


def _refs(node: Any) -> Any:
    """The spec schema's ``#/$defs/X`` references as OpenAPI component references."""
    if isinstance(node, dict):
        return {k: (v.replace("#/$defs/", "#/components/schemas/") if k == "$ref" and isinstance(v, str)
                    else _refs(v)) for k, v in node.items()}
    if isinstance(node, list):
        return [_refs(v) for v in node]
    return node


def document_spec(app: FastAPI) -> None:
    """Put the experiment spec's JSON schema into the app's OpenAPI components (``ExperimentSpec``)."""
    base = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            doc = base()
            spec = experiment_schema()
            spec.pop("$schema", None)
            schemas = doc.setdefault("components", {}).setdefault("schemas", {})
            for name, sub in spec.pop("$defs", {}).items():
                schemas.setdefault(name, _refs(sub))
            schemas["ExperimentSpec"] = _refs(spec)
            app.openapi_schema = doc
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
