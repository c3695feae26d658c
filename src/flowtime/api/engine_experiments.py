"""
Experiments over HTTP: /v1/experiments (decision 0036).

``POST /v1/experiments`` takes ``{"spec": {...}, "model": "<yaml>"}`` (or the spec
itself with ``model`` inline), checks the spec against the model at once (a bad
spec is a 400 located at its path), and answers 202 with ``Location``; the
experiment runs in a background thread (``experiment_workers`` at a time, the rest
queued) with a cancel event and a progress count. Finished experiments are stored
(``artifacts.experiments``) and outlive the server; queued, running, failed and
cancelled ones live in memory only. ``DELETE`` cancels a queued or running
experiment (nothing is written) and deletes a stored one.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Depends, FastAPI, Request, Response
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException

from flowtime.api.bodies import UnusableJson, load_json
from flowtime.api.engine_deps import get_registry, get_settings
from flowtime.api.problems import problem_responses
from flowtime.artifacts import layout
from flowtime.artifacts.experiments import ExperimentStore, check_experiment_id, materialise, new_experiment_id
from flowtime.artifacts.registry import Registry
from flowtime.artifacts.writer import title_of
from flowtime.errors import ExperimentCancelled, ExperimentError, ExperimentNotFound, FlowTimeError, Problem
from flowtime.experiments.evaluator import Evaluator
from flowtime.experiments.runner import RUNS, run_experiment
from flowtime.experiments.spec import AnySpec, Limits, experiment_schema, parse_spec
from flowtime.model.hashing import model_hash
from flowtime.model.load import load_model
from flowtime.settings import EngineSettings

log = logging.getLogger("flowtime.engine.experiments")
SOURCE = "experiment model"
KEPT_ENDED = 100  # failed and cancelled experiments remembered (in memory) for GET, the oldest forgotten first
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


def checked(spec_data: Any, model_text: str, settings: EngineSettings) -> tuple[AnySpec, str, str]:
    """Spec parsed, model loaded under the server's limits, the spec checked against it; (spec, title, hash)."""
    spec = available(capped(parse_spec(spec_data), spec_data, settings.max_experiment_points))
    loaded = load_model(model_text, SOURCE, limits=settings.limits())
    ev = Evaluator(model_text, spec)  # every parameter, metric and captured series resolved now: a 400
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
    return spec, title_of(loaded.model, model_text), model_hash(loaded.model)


def planned_points(spec: AnySpec) -> int | None:
    """How many points the experiment evaluates, when its kind fixes that in advance."""
    settings: Any = spec.settings
    if spec.kind == "montecarlo":
        return int(settings.replications)
    if spec.kind == "sweep":
        if settings.method == "lhs":
            return int(settings.points) if settings.points is not None else None
        total = 1
        for p in spec.parameters:
            size = len(p.values) if p.values is not None else (p.range.steps if p.range is not None else None)
            if size is None:
                return None
            total *= size
        return total
    return None


class Job:
    def __init__(self, exp_id: str, spec: AnySpec, text: str, title: str, m_hash: str) -> None:
        self.id, self.spec, self.text, self.title, self.model_hash = exp_id, spec, text, title, m_hash
        self.status = "queued"
        self.done = 0
        self.total = planned_points(spec)
        self.created = datetime.now(UTC)
        self.cancel = threading.Event()
        self.error: dict[str, Any] | None = None
        self.future: Future[None] | None = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"id": self.id, "kind": self.spec.kind, "title": self.title, "status": self.status,
                               "points": self.done, "createdUtc": layout.utc_iso(self.created),
                               "progress": {"done": self.done, "total": self.total}}
        if self.error is not None:
            out["error"] = self.error
        return out


class Experiments:
    """The jobs of one Engine app and the store they end in."""

    def __init__(self, settings: EngineSettings) -> None:
        self.settings = settings
        self.store = ExperimentStore(settings.data_dir)
        self.jobs: dict[str, Job] = {}
        self.lock = threading.Lock()
        self.pool = ThreadPoolExecutor(max_workers=settings.experiment_workers, thread_name_prefix="experiment")

    def submit(self, job: Job) -> None:
        with self.lock:
            ended = [j.id for j in self.jobs.values() if j.status in ("failed", "cancelled")]
            for old in ended[:max(0, len(ended) - KEPT_ENDED)]:  # oldest first (insertion order)
                del self.jobs[old]
            self.jobs[job.id] = job
            job.future = self.pool.submit(self._run, job)

    def _run(self, job: Job) -> None:
        if job.cancel.is_set():
            job.status = "cancelled"
            return
        job.status = "running"

        def progress(n: int) -> None:
            job.done = n

        try:
            result = run_experiment(job.spec, job.text, self.settings.experiment_backend, cancel=job.cancel,
                                    on_progress=progress)
            if job.cancel.is_set():
                raise ExperimentCancelled(job.done, job.total or job.done)
            self.store.write(job.id, result=result, model_text=job.text, title=job.title,
                             model_hash=job.model_hash, created=job.created,
                             backend=self.settings.experiment_backend or "inprocess")
            job.done = result.n
            job.status = "done"
            with self.lock:
                self.jobs.pop(job.id, None)  # stored: read from disk from now on
        except ExperimentCancelled:
            job.status = "cancelled"
        except FlowTimeError as exc:
            job.status = "failed"
            job.error = {"title": getattr(exc, "title", type(exc).__name__), "detail": str(exc),
                         "errors": [p.to_dict() for p in exc.problems]}
        except Exception as exc:  # a bug must not leave the job "running" for ever
            log.exception("experiment %s failed", job.id)
            job.status = "failed"
            job.error = {"title": "Internal error", "detail": f"{type(exc).__name__}: {exc}", "errors": []}

    def job(self, exp_id: str) -> Job | None:
        with self.lock:
            return self.jobs.get(check_experiment_id(exp_id))

    def close(self) -> None:
        with self.lock:
            for job in self.jobs.values():
                job.cancel.set()
        self.pool.shutdown(wait=True, cancel_futures=True)


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
    spec, title, m_hash = await run_in_threadpool(checked, spec_data, text, settings)
    job = Job(new_experiment_id(), spec, text, title, m_hash)
    experiments.submit(job)
    return JSONResponse(job.to_json(), status_code=202, headers={"Location": f"/v1/experiments/{job.id}"})


@router.get("/v1/experiments", summary="Experiments, newest first: running and queued ones, then stored ones")
def list_experiments(experiments: Experiments = Depends(get_experiments)) -> dict[str, Any]:
    with experiments.lock:
        live = [j.to_json() for j in experiments.jobs.values()]
    stored = [s.to_json() for s in experiments.store.listed()]
    known = {e["id"] for e in live}
    every = live + [s for s in stored if s["id"] not in known]
    every.sort(key=lambda e: (e["createdUtc"], e["id"]), reverse=True)
    return {"experiments": every, "total": len(every)}


@router.get("/v1/experiments/{exp_id}", summary="One experiment: status, progress, and its result when done")
def get_experiment(exp_id: str, experiments: Experiments = Depends(get_experiments)) -> dict[str, Any]:
    job = experiments.job(exp_id)
    if job is not None:
        return job.to_json()
    summary = experiments.store.summary(exp_id)
    out = summary.to_json()
    out["progress"] = {"done": summary.points, "total": summary.points}
    out["files"] = experiments.store.files(exp_id)
    out["result"] = experiments.store.result(exp_id)
    return out


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
        job.cancel.set()
        if job.future is not None and job.future.cancel():  # still queued: it never starts
            job.status = "cancelled"
        elif job.future is not None:
            try:
                job.future.result(timeout=CANCEL_WAIT_SECONDS)
            except TimeoutError:
                return JSONResponse({**job.to_json(), "status": "cancelling"}, status_code=202)
            except Exception:  # the job records its own failure
                pass
        if job.status == "queued":
            job.status = "cancelled"
        # "done": it finished before the cancel was seen; it is stored (DELETE again deletes it)
        return JSONResponse(job.to_json(), status_code=200)
    with experiments.lock:  # failed or cancelled: forget it
        experiments.jobs.pop(job.id, None)
    if job.status == "done":
        raise ExperimentNotFound(f"experiment {exp_id} not found")
    return Response(status_code=204)


@router.post("/v1/experiments/{exp_id}/points/{point}/run", status_code=201,
             summary="Write point k of a stored experiment as an ordinary run (run.json names the experiment)")
def materialise_point(exp_id: str, point: int, registry: Registry = Depends(get_registry),
                      experiments: Experiments = Depends(get_experiments)) -> JSONResponse:
    made = materialise(experiments.store, exp_id, point, registry.root)
    registry.register(made)
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
