"""
The Sim service: ``create_sim_app(settings)`` builds the FastAPI app (port 8090).

Sim turns templates into models and keeps them in a temporary store; it never
executes a model and never calls the Engine (the UI carries a model from here
to there). Routes:

    /healthz, /api/v1/healthz, /api/v1/templates[/{id}[/generate]]
    /api/v1/models[/{templateId}[/{hash}[/preview.svg]]], /api/v1/models/validate
    /sim/models/export, /sim/models/validate, /sim/models/{model_id}   (SIM-M2.6 shapes)

Everything - catalog, store, background sweep - is built inside
``create_sim_app``; two apps never share state. An id in a path that is not
shaped like one (template id, hash prefix, model id, model name) is a 400;
a well-formed id nothing answers to is a 404.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, HTTPException, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.concurrency import run_in_threadpool

from flowtime._version import __version__
from flowtime.api.bodies import UnusableJson, load_json
from flowtime.api.guard import RequestGuard
from flowtime.api.problems import install_problem_handlers, problem_responses
from flowtime.gcpause import settled
from flowtime.settings import SimSettings
from flowtime.sim.catalog import Catalog
from flowtime.sim.quality import ValidationReport
from flowtime.sim.store import HASH_PREFIX, NAME, VERSION_DIR, StoredModel
from flowtime.sim.template import TEMPLATE_ID
from flowtime.sim.workspace import MODEL_ID, Workspace

log = logging.getLogger("flowtime.sim")
SVG = "image/svg+xml"


def create_sim_app(settings: SimSettings) -> FastAPI:
    """A new Sim app over ``settings.data_dir`` and the template library."""
    catalog = Catalog.load(settings.templates_dir, max_array_length=settings.max_array_length)
    for key, error in catalog.broken.items():
        log.warning("template %s is not usable: %s", key, error)
    workspace = Workspace(catalog, settings.data_dir, max_array_length=settings.max_array_length,
                          ttl_days=settings.ttl_days)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        sweeper = asyncio.create_task(_sweep(workspace, settings.gc_interval_seconds))
        try:
            with settled():  # start-up done: later full collections skip what lives as long as the process
                yield
        finally:
            sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await sweeper

    app = FastAPI(
        title="FlowTime Sim",
        version=__version__,
        summary="Templates -> engine-ready models with provenance; a temporary model store.",
        lifespan=lifespan,
        docs_url="/docs",
        redoc_url=None,
    )
    app.state.settings = settings
    app.state.workspace = workspace
    install_problem_handlers(app)
    app.include_router(root)
    app.include_router(api)
    app.include_router(m26)
    app.add_middleware(RequestGuard, realm="flowtime-sim", limit_setting="FLOWTIME_SIM_MAX_BODY_BYTES",
                       max_body_bytes=settings.max_body_bytes,
                       api_token=settings.api_token, host=settings.host,
                       allowed_hosts=settings.allowed_hosts, cors_origin=settings.cors_origin,
                       cors_setting="FLOWTIME_SIM_CORS_ORIGIN")
    if settings.cors_origin:
        app.add_middleware(CORSMiddleware, allow_origins=[settings.cors_origin],
                           allow_methods=["GET", "POST", "OPTIONS"],
                           allow_headers=["Authorization", "Content-Type", "Accept"])
    return app


async def _sweep(workspace: Workspace, interval: float) -> None:
    """Remove expired models now and every ``interval`` seconds."""
    while True:
        try:
            removed = await run_in_threadpool(workspace.gc)
            if removed:
                log.info("removed %d expired model folder(s)", len(removed))
        except Exception:  # a failed sweep must not stop the next one
            log.exception("model clean-up failed")
        await asyncio.sleep(max(interval, 0.01))


# -- dependencies and request bodies ------------------------------------------------------


def get_workspace(request: Request) -> Workspace:
    ws: Workspace = request.app.state.workspace
    return ws


def get_settings(request: Request) -> SimSettings:
    settings: SimSettings = request.app.state.settings
    return settings


WorkspaceDep = Annotated[Workspace, Depends(get_workspace)]
SettingsDep = Annotated[SimSettings, Depends(get_settings)]


async def json_body(request: Request) -> Any:
    """The request body as JSON (``{}`` when empty); 400 when it is not JSON."""
    raw = await request.body()
    if not raw.strip():
        return {}
    try:
        return load_json(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise HTTPException(400, f"request body is not valid JSON: {exc}") from None
    except UnusableJson as exc:
        raise HTTPException(400, f"request body is not usable JSON: {exc}") from None


def _flag(value: str | None) -> bool:
    """Query flags read the reference's way: present and not false/0/no means on."""
    return value is not None and value.strip().lower() not in ("false", "0", "no", "off")


class ExportMetadata(BaseModel):
    model_config = ConfigDict(extra="forbid")
    title: str | None = None
    description: str | None = None


class ExportRequest(BaseModel):
    """Body of ``POST /sim/models/export``."""

    model_config = ConfigDict(extra="forbid")
    template: str
    name: str = Field(pattern=NAME.pattern, description="letters, digits, '-', '_', '.'; at most 64")
    parameters: dict[str, Any] = Field(default_factory=dict)
    tags: list[str] = Field(default_factory=list)
    metadata: ExportMetadata | None = None


def _parsed(cls: type[ExportRequest], data: Any) -> ExportRequest:
    try:
        return cls.model_validate(data)
    except ValidationError as exc:
        raise RequestValidationError(exc.errors()) from None


async def _model_text(request: Request) -> tuple[str, str]:
    """
    The model text of a validate request: raw YAML, or JSON with the model
    under ``model`` / ``model_schema`` (as text or as an object).
    """
    raw = await request.body()
    if not raw.strip():
        raise HTTPException(400, "request body is empty; send model YAML, or JSON "
                            '{"model": "<yaml>"} / {"model_schema": {...}}')
    text = raw.decode("utf-8-sig", errors="replace")
    if "json" in request.headers.get("content-type", ""):
        try:
            data = load_json(text)
        except json.JSONDecodeError as exc:
            raise HTTPException(400, f"request body is not valid JSON: {exc}") from None
        except UnusableJson as exc:
            raise HTTPException(400, f"request body is not usable JSON: {exc}") from None
        if isinstance(data, dict):
            inner = data.get("model", data.get("model_schema", data.get("modelSchema")))
            if isinstance(inner, str):
                return inner, "request.model"
            if isinstance(inner, dict):
                return json.dumps(inner), "request.model"
        return json.dumps(data), "request"
    return text, "request"


# -- OpenAPI documentation of the bodies read by hand above ------------------------------------

READ_ERRORS = problem_responses(400, 404, 422)
WRITE_ERRORS = problem_responses(400, 401, 404, 413, 422)


def _inline_refs(schema: Any, defs: dict[str, Any]) -> Any:
    """A pydantic JSON schema with its ``$defs`` references written in place (they are not nested)."""
    if isinstance(schema, dict):
        ref = schema.get("$ref")
        if isinstance(ref, str) and ref.startswith("#/$defs/"):
            return _inline_refs(defs[ref.removeprefix("#/$defs/")], defs)
        return {k: _inline_refs(v, defs) for k, v in schema.items() if k != "$defs"}
    if isinstance(schema, list):
        return [_inline_refs(v, defs) for v in schema]
    return schema


def _json_body(schema: dict[str, Any], example: Any) -> dict[str, Any]:
    return {"requestBody": {"required": False, "content": {
        "application/json": {"schema": schema, "example": example}}}}


_GENERATE_BODY = _json_body(
    {"type": "object", "description": 'Parameter overrides: {"parameters": {...}}, or a flat object '
                                      "of overrides (the reference implementation's body)."},
    {"parameters": {"bins": 12}})
_EXPORT_SCHEMA = ExportRequest.model_json_schema()
_EXPORT_BODY = _json_body(_inline_refs(_EXPORT_SCHEMA, _EXPORT_SCHEMA.get("$defs", {})),
                          {"template": "support-backlog", "name": "backlog-baseline"})
_MODEL_TEXT = {"schema": {"type": "string"},
               "example": "schemaVersion: 1\ngrid: {bins: 2, binSize: 1, binUnit: hours}\n"
                          "nodes:\n  - {id: demand, kind: const, values: [1, 2]}\n"}
_VALIDATE_BODY = {"requestBody": {"required": True, "content": {
    "application/x-yaml": _MODEL_TEXT, "text/plain": _MODEL_TEXT,
    "application/json": {"schema": {
        "type": "object", "description": "The model under `model` (YAML text or an object) or "
                                         "`model_schema` (an object)."}},
}}}


# -- ids in paths ------------------------------------------------------------------------------


def _well_formed(value: str, pattern: re.Pattern[str], what: str, shape: str) -> str:
    """``value`` when it matches ``pattern`` (ASCII, whole string); a 400 otherwise."""
    if pattern.fullmatch(value) is None:
        raise HTTPException(400, f"{what} {value[:80]!r} is malformed: expected {shape}")
    return value


def _template_id(value: str) -> str:
    return _well_formed(value, TEMPLATE_ID, "template id",
                        "ASCII letters, digits, '-', '_' and '.' (at most 128, starting with a letter or digit)")


def _hash_prefix(value: str) -> str:
    return _well_formed(value, HASH_PREFIX, "model hash", "12 lowercase hex digits")


def _artifact_ref(value: str) -> str:
    """A model id (``model_<yyyyMMddTHHmmssZ>_<8 hex>``) or a model name, optionally ``@v<n>``."""
    if MODEL_ID.fullmatch(value):
        return value
    head, at, tail = value.partition("@")
    if NAME.fullmatch(head) and (not at or VERSION_DIR.fullmatch(tail)):
        return value
    raise HTTPException(400, f"model id {value[:80]!r} is malformed: expected model_<yyyyMMddTHHmmssZ>_<8 hex> "
                        "or a model name (ASCII letters, digits, '-', '_', '.'), optionally with @v<n>")


# -- /healthz and /api/v1 --------------------------------------------------------------------

root = APIRouter()
api = APIRouter(prefix="/api/v1")


@root.get("/healthz", tags=["health"], summary="Liveness and service facts (the reference's path)")
@api.get("/healthz", tags=["health"], summary="Liveness and service facts")
def healthz(workspace: WorkspaceDep, settings: SettingsDep) -> dict[str, Any]:
    return {
        "status": "ok",
        "service": "sim",
        "version": __version__,
        "dataDir": str(settings.data_dir.resolve()),
        "templatesDir": str(settings.templates_dir.resolve()) if settings.templates_dir else None,
        "templateCount": len(workspace.catalog),
        "modelCount": workspace.store.count(),
        "brokenTemplates": sorted(workspace.catalog.broken),
        "auth": bool(settings.api_token),
    }


@api.get("/templates", tags=["templates"], summary="List templates", responses=READ_ERRORS)
def list_templates(workspace: WorkspaceDep, search: str | None = None,
                   tag: str | None = None) -> list[dict[str, Any]]:
    return [t.summary() for t in workspace.catalog.select(search=search, tag=tag)]


@api.get("/templates/{template_id}", tags=["templates"], summary="A template and its parameters",
         responses=READ_ERRORS)
def get_template(template_id: str, workspace: WorkspaceDep) -> dict[str, Any]:
    return workspace.catalog.get(_template_id(template_id)).describe()


@api.post("/templates/{template_id}/generate", tags=["templates"], responses=WRITE_ERRORS,
          openapi_extra=_GENERATE_BODY,
          summary="Generate a model (and store it temporarily)")
async def generate(template_id: str, request: Request, workspace: WorkspaceDep,
                   embed_provenance: Annotated[str | None, Query()] = None,
                   mode: Annotated[str | None, Query(description="simulation or telemetry; overrides the "
                                                     "template's mode")] = None) -> JSONResponse:
    _template_id(template_id)
    body = await json_body(request)
    params = _generate_parameters(body)
    generation = await run_in_threadpool(functools.partial(workspace.generate, template_id, params, mode=mode))
    # The body is plain JSON data already: skip FastAPI's re-encoding pass.
    return JSONResponse(generation.response(_flag(embed_provenance)))


def _generate_parameters(body: Any) -> dict[str, Any]:
    """
    ``{"parameters": {...}}``; a flat object of overrides (the reference
    implementation's body) is accepted too.
    """
    if not isinstance(body, dict):
        raise HTTPException(400, 'request body must be a JSON object: {"parameters": {...}}')
    if "parameters" in body:
        params = body["parameters"]
        extra = sorted(k for k in body if k != "parameters")
        if not isinstance(params, dict) or extra:
            raise HTTPException(400, '"parameters" must be an object of overrides and the only key '
                                f"of the body{f' (also got: {extra})' if extra else ''}")
        return params
    return body


@api.get("/models", tags=["models"], summary="Models in the temporary store", responses=READ_ERRORS)
def list_models(workspace: WorkspaceDep, template: str | None = None) -> dict[str, Any]:
    if template is not None:
        _template_id(template)
    return {"models": [m.summary() for m in workspace.store.models(template)]}


@api.post("/models/validate", tags=["models"], summary="Validate a model (no execution)",
          responses=WRITE_ERRORS, openapi_extra=_VALIDATE_BODY)
async def validate_model(request: Request, workspace: WorkspaceDep) -> dict[str, Any]:
    text, source = await _model_text(request)
    report = await run_in_threadpool(workspace.validate, text, source)
    return report.to_json()


@api.get("/models/{template_id}", tags=["models"], summary="The latest model of a template",
         responses=READ_ERRORS)
def latest_model(template_id: str, workspace: WorkspaceDep) -> dict[str, Any]:
    return _stored_body(workspace.store.latest(_template_id(template_id)))


@api.get("/models/{template_id}/{hash_prefix}", tags=["models"], summary="One stored model",
         responses=READ_ERRORS)
def get_model(template_id: str, hash_prefix: str, workspace: WorkspaceDep) -> dict[str, Any]:
    return _stored_body(workspace.store.get(_template_id(template_id), _hash_prefix(hash_prefix)))


@api.get("/models/{template_id}/{hash_prefix}/preview.svg", tags=["models"], responses=READ_ERRORS,
         summary="The model's DAG as SVG", response_class=Response)
def model_preview(template_id: str, hash_prefix: str, workspace: WorkspaceDep) -> Response:
    stored = workspace.store.get(_template_id(template_id), _hash_prefix(hash_prefix))
    return Response(stored.preview(), media_type=SVG)


def _stored_body(stored: StoredModel) -> dict[str, Any]:
    return {
        **stored.summary(),
        "model": stored.model_text(),
        "provenance": stored.provenance(),
        "metadata": stored.metadata,
        "validation": stored.validation(),
    }


# -- /sim/models (SIM-M2.6 shapes, snake_case as in the milestone) ----------------------------

m26 = APIRouter(prefix="/sim/models", tags=["model artifacts"])


@m26.post("/export", summary="Create (a new version of) a named model artifact",
          responses={201: {"description": "A new version was created (200: the latest version "
                                           "already holds this model)"}, **WRITE_ERRORS},
          openapi_extra=_EXPORT_BODY)
async def export_model(request: Request, workspace: WorkspaceDep) -> JSONResponse:
    req = _parsed(ExportRequest, await json_body(request))
    meta = req.metadata or ExportMetadata()
    generation = await run_in_threadpool(
        lambda: workspace.export_named(req.template, req.name, req.parameters, title=meta.title,
                                       description=meta.description, tags=req.tags))
    stored = generation.stored
    assert stored is not None
    body = {
        "model_id": stored.metadata["nameId"],
        "version": stored.version,
        "created": generation.created,
        "path": str(stored.path),
        "artifact_metadata": _artifact_metadata(stored, generation.report),
        "validation": _m26_validation(generation.report),
        "provenance": generation.generated.provenance.to_json(),
    }
    return JSONResponse(body, status_code=201 if generation.created else 200)


@m26.post("/validate", summary="Structure validation and quality report (no execution)",
          responses=WRITE_ERRORS, openapi_extra=_VALIDATE_BODY)
async def validate_structure(request: Request, workspace: WorkspaceDep) -> dict[str, Any]:
    text, source = await _model_text(request)
    report = await run_in_threadpool(workspace.validate, text, source)
    return {**_m26_validation(report), "quality_score": report.quality.score,
            "quality": report.quality.to_json(),
            "problems": [p.to_dict() for p in report.problems]}


@m26.get("/{model_id}", summary="A named model artifact (latest version) or a stored model id",
         responses=READ_ERRORS)
def get_artifact(model_id: str, workspace: WorkspaceDep,
                 version: Annotated[int | None, Query(ge=1)] = None) -> dict[str, Any]:
    stored = _artifact(workspace, _artifact_ref(model_id), version)
    report = stored.validation()
    return {
        "model_id": stored.metadata.get("nameId", stored.model_id),
        "version": stored.version,
        "artifact_metadata": {
            "id": stored.metadata.get("nameId", stored.model_id),
            "title": stored.metadata.get("title", ""),
            "description": stored.metadata.get("description", ""),
            "version": stored.version,
            "created": stored.metadata.get("created"),
            "tags": stored.metadata.get("tags", []),
            "sim_source": f"template:{stored.template_id}",
            "engine_compatible": bool(report.get("valid")),
            "quality_score": report.get("quality", {}).get("score"),
        },
        "sim_config": {"template": stored.template_id,
                       "template_version": stored.metadata.get("template", {}).get("version"),
                       "parameters": stored.metadata.get("parameters", {})},
        "model": stored.model_text(),
        "provenance": stored.provenance(),
        "validation": report,
        "path": str(stored.path),
    }


def _artifact(workspace: Workspace, model_id: str, version: int | None) -> StoredModel:
    if MODEL_ID.fullmatch(model_id):
        return workspace.find(model_id)
    return workspace.named.get(model_id, version)


def _artifact_metadata(stored: StoredModel, report: ValidationReport) -> dict[str, Any]:
    return {
        "id": stored.metadata["nameId"],
        "title": stored.metadata.get("title", ""),
        "version": stored.version,
        "created": stored.metadata.get("created"),
        "tags": stored.metadata.get("tags", []),
        "sim_source": f"template:{stored.template_id}",
        "engine_compatible": report.valid,
        "quality_score": report.quality.score,
    }


def _m26_validation(report: ValidationReport) -> dict[str, Any]:
    return {
        "structure_valid": report.valid,
        "engine_compatible": report.valid,
        "warnings": [str(w) for w in report.warnings],
    }
