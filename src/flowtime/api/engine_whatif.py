"""
Live what-if over HTTP and a WebSocket: /v1/whatif (decision 0043).

``POST /v1/whatif`` opens a session on model YAML (as ``POST /v1/run`` takes it)
or on a stored run (``{"runId": ...}``): the model is planned once and its
parameters are discovered (``experiments.knobs``). ``WS /v1/whatif/{id}`` takes
``{"seq": n, "set": {id: number}, "series": [...], "bin": n | null}`` text
frames and answers each evaluated one with ``{"seq", "series", "state",
"warnings", "values", "evalMs", "coalesced"}``. Messages arriving while an
evaluation runs are applied at once (their ``set`` merges into the point) but
only the latest is evaluated; ``coalesced`` counts the ones it stands for. A bad
message is answered ``{"seq", "error": <problem+json>}`` and the socket stays
open. ``POST /v1/whatif/{id}/save`` (or ``{"seq": n, "save": true}`` on the socket) stores the current
point as a run.

``WS /v1/whatif`` is the same session on one connection: its first frame is the body ``POST /v1/whatif``
takes (as JSON), answered ``{"type": "session", ...}`` with the first answer; the session lives as long
as the socket. Sessions are held in one Engine process's memory, so an Engine serving with several
worker processes can route ``POST`` and a later socket to different processes: clients of such an
Engine (the UI) use this form.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from typing import Any

import orjson
from fastapi import APIRouter, Depends, Request, Response, WebSocket, WebSocketDisconnect
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.concurrency import run_in_threadpool

from flowtime.api.bodies import UnusableJson, load_json
from flowtime.api.engine_deps import get_registry, get_settings
from flowtime.api.engine_models import SOURCE, parse_model_body, telemetry
from flowtime.api.engine_state import OrjsonResponse, get_state_cache
from flowtime.api.problems import document_for, problem_document, problem_responses
from flowtime.api.whatif_sessions import Session, Sessions
from flowtime.artifacts.registry import Registry
from flowtime.artifacts.state import StateCache
from flowtime.artifacts.whatif import Base, run_base, save_point
from flowtime.errors import FlowTimeError, LimitExceeded, Problem, WhatIfError
from flowtime.experiments.whatif import WhatIf
from flowtime.model.hashing import model_hash
from flowtime.model.kinds import is_internal
from flowtime.model.load import LoadedModel, load_model
from flowtime.model.yamltext import parse_yaml
from flowtime.settings import EngineSettings

log = logging.getLogger("flowtime.engine")
MAX_MESSAGE_CHARS = 64 * 1024  # a message sets numbers: anything longer is a mistake
_JSON = orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS

router = APIRouter(tags=["whatif"], responses=problem_responses(400, 404, 413, 415, 429))


def get_sessions(request: Request) -> Sessions:
    sessions: Sessions = request.app.state.whatif
    return sessions


class RunBase(BaseModel):
    """The JSON body that opens a session on a stored run."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)
    run_id: str = Field(alias="runId", description="A stored run: its model, overrides, seed and sampling.")
    series: list[str] | None = Field(default=None, description="The series every answer carries (default all).")


_BODY = {"requestBody": {"required": True, "content": {
    "application/x-yaml": {"schema": {"type": "string"}},
    "application/json": {"schema": {"oneOf": [
        RunBase.model_json_schema(by_alias=True),
        {"type": "object", "required": ["yaml"], "properties": {
            "yaml": {"type": "string"}, "seed": {"type": "integer"}, "samplePmf": {"type": "boolean"},
            "set": {"type": "object"}, "series": {"type": "array", "items": {"type": "string"}}}}]},
        "example": {"runId": "run_20250101T000000Z_ab12cd34"}}}}}
_PARAMETER = {"type": "object", "properties": {k: {"type": t} for k, t in (
    ("id", "string"), ("kind", "string"), ("target", "string"), ("mode", "string"), ("value", "number"),
    ("min", "number"), ("max", "number"), ("step", "number"), ("unit", "string"), ("label", "string"),
    ("replans", "boolean"))}}
_SESSION = {"type": "object", "properties": {
    "sessionId": {"type": "string"}, "websocket": {"type": "string"},
    "parameters": {"type": "array", "items": _PARAMETER}, "grid": {"type": "object"},
    "nodes": {"type": "array", "items": {"type": "string"}}, "topology": {"type": "array"},
    "base": {"type": "object"}, "idleSeconds": {"type": "number"},
    "result": {"type": "object", "description": "the first answer: series, state, warnings, values, evalMs"}}}


def _series_cap(whatif: WhatIf, series: list[str] | None, settings: EngineSettings) -> None:
    count = len(series) if series is not None else len([n for n in whatif.plan.order if not is_internal(n)])
    if count * whatif.bins > settings.max_response_values:
        raise LimitExceeded(f"every answer would carry {count} series x {whatif.bins} bins; the limit is "
                            f"{settings.max_response_values} values (FLOWTIME_MAX_RESPONSE_VALUES): choose fewer "
                            "with \"series\"", limit_name="max_response_values")


def _open(content_type: str | None, body: bytes, settings: EngineSettings, registry: Registry,
          cache: StateCache) -> tuple[WhatIf, Base, list[str] | None]:
    limits = settings.limits()
    media = (content_type or "").split(";", 1)[0].strip().lower()
    data: Any = None
    if media == "application/json" or media.endswith("+json"):
        try:
            data = load_json(body)
        except (json.JSONDecodeError, UnicodeDecodeError, UnusableJson) as exc:
            raise WhatIfError([Problem("body", f"body is not usable JSON: {exc}")]) from None
    series: list[str] | None = None
    if isinstance(data, dict) and "runId" in data:
        try:
            got = RunBase.model_validate(data)
        except ValidationError as exc:
            raise WhatIfError([Problem(".".join(str(p) for p in e["loc"]) or "body", str(e["msg"]))
                               for e in exc.errors()]) from None
        base = run_base(registry, cache, got.run_id, limits)
        series = got.series
    else:
        if isinstance(data, dict):
            series = data.pop("series", None)
            body = json.dumps(data).encode()
        req = parse_model_body(content_type, body)
        files = telemetry(settings)

        def reload(text: str) -> LoadedModel:
            return load_model(text, SOURCE, limits=limits, series_files=files)

        loaded = reload(req.text)
        base = Base(loaded, reload, None, model_hash(loaded.model), req.overrides, req.seed, req.sample_pmf)
    text = base.loaded.spec_text
    parsed: list[Any] = []

    def yaml_data() -> Any:
        if not parsed:
            parsed.append(parse_yaml(text, base.loaded.source)[0])
        return parsed[0]

    whatif = WhatIf(base.loaded, seed=base.seed, sample_pmf=base.sample_pmf, base_set=base.overrides,
                    data=yaml_data, reload=base.reload)
    chosen, _ = whatif.check_request(series, None)
    _series_cap(whatif, chosen, settings)
    return whatif, base, chosen


def _describe(session: Session, series: list[str] | None) -> dict[str, Any]:
    w = session.whatif
    topology = w.model.topology
    return {
        "sessionId": session.id,
        "websocket": f"/v1/whatif/{session.id}",
        "parameters": [k.to_json() for k in w.knobs],
        "grid": {**w.model.grid.to_json(), "binMinutes": w.model.grid.bin_minutes},
        "nodes": [n for n in w.plan.order if not is_internal(n)],
        "topology": [{"id": t.id, "kind": t.kind} for t in topology.nodes] if topology is not None else [],
        "base": {"runId": session.base.run_id, "modelHash": session.base.model_hash, "seed": w.seed,
                 "samplePmf": w.sample_pmf, "overrides": session.base.overrides or {}},
        "series": series,
    }


@router.post("/v1/whatif", status_code=201, openapi_extra=_BODY, response_class=OrjsonResponse,
             summary="Open a what-if session on model YAML or a stored run: its parameters and the first answer",
             responses={201: {"description": "The session", "content": {"application/json": {"schema": _SESSION}}}})
async def open_session(request: Request, settings: EngineSettings = Depends(get_settings),
                       registry: Registry = Depends(get_registry), cache: StateCache = Depends(get_state_cache),
                       sessions: Sessions = Depends(get_sessions)) -> OrjsonResponse:
    body = await request.body()

    def build() -> dict[str, Any]:
        whatif, base, series = _open(request.headers.get("content-type"), body, settings, registry, cache)
        first = whatif.result(series=series)  # before the session counts: a model that fails takes no place
        session = sessions.add(whatif, base, series)
        return {**_describe(session, series), "idleSeconds": sessions.idle_seconds, "result": first}

    out = await run_in_threadpool(build)
    return OrjsonResponse(out, status_code=201, headers={"Location": out["websocket"]})


@router.get("/v1/whatif/{session_id}", response_class=OrjsonResponse,
            summary="A what-if session: its parameters and their current values")
def get_session(session_id: str, sessions: Sessions = Depends(get_sessions)) -> OrjsonResponse:
    session = sessions.get(session_id)
    return OrjsonResponse({**_describe(session, session.series),
                           "values": dict(session.whatif.values)})


@router.delete("/v1/whatif/{session_id}", status_code=204, summary="Close a what-if session")
def close_session(session_id: str, sessions: Sessions = Depends(get_sessions)) -> Response:
    sessions.remove(session_id)
    return Response(status_code=204)


@router.post("/v1/whatif/{session_id}/save", status_code=201,
             summary="Store the session's current point as an ordinary run (provenance: the base and the overrides)")
async def save_session(session_id: str, sessions: Sessions = Depends(get_sessions),
                       settings: EngineSettings = Depends(get_settings),
                       registry: Registry = Depends(get_registry)) -> JSONResponse:
    session = sessions.get(session_id)
    out = await run_in_threadpool(_save, session, settings, registry)
    return JSONResponse(out, status_code=201, headers={"Location": out["location"]})


def _save(session: Session, settings: EngineSettings, registry: Registry) -> dict[str, Any]:
    """The session's current point stored as an ordinary run."""
    with session.lock:
        point = session.whatif.point()
    record = save_point(point, session.base, session.id, settings.data_dir)
    registry.register(record)
    return {"runId": record.run_id, "location": f"/v1/runs/{record.run_id}", "whatif": record.run["whatif"],
            "overrides": record.run.get("overrides") or {}, "modelHash": record.manifest["modelHash"]}


# -- the WebSocket ---------------------------------------------------------------------------------


def _error(seq: Any, exc: FlowTimeError | None = None, detail: str = "") -> dict[str, Any]:
    doc = document_for(exc) if exc is not None else problem_document(
        500, "What-if evaluation failed", detail)
    return {"seq": seq if isinstance(seq, int) and not isinstance(seq, bool) else None, "error": doc}


def _parse(raw: str) -> dict[str, Any]:
    """One text frame as an object (a located ``WhatIfError`` otherwise)."""
    if len(raw) > MAX_MESSAGE_CHARS:
        raise WhatIfError([Problem("", f"a message is at most {MAX_MESSAGE_CHARS} characters, got {len(raw)}")])
    try:
        data = load_json(raw)
    except (json.JSONDecodeError, UnusableJson) as exc:
        raise WhatIfError([Problem("", f"not JSON: {exc}")]) from None
    if not isinstance(data, dict):
        raise WhatIfError([Problem("", 'expected an object such as {"seq": 1, "set": {"demand": 12}}')])
    return data


def _message(data: dict[str, Any], whatif: WhatIf) -> dict[str, Any]:
    """The view one message changes (series and/or bin), its ``set`` applied."""
    seq = data.get("seq")
    unknown = sorted(set(data) - {"seq", "set", "series", "bin", "reset", "save"})
    problems = [Problem(k, "unknown field; a message takes seq, set, series, bin, reset and save") for k in unknown]
    if "save" in data and data["save"] is not True:
        problems.append(Problem("save", "expected true (store the current point as a run)"))
    if isinstance(seq, bool) or not isinstance(seq, int):
        problems.append(Problem("seq", "expected an integer that numbers the message (answers carry it back)"))
    if problems:
        raise WhatIfError(problems)
    series, index = whatif.check_request(data.get("series"), data.get("bin"))
    if data.get("reset") is True:
        whatif.reset()
    if "set" in data:
        whatif.change(data["set"])
    view: dict[str, Any] = {"bin": index} if "bin" in data else {}
    if series is not None:
        view["series"] = series
    return view


@router.websocket("/v1/whatif/{session_id}")
async def whatif_socket(ws: WebSocket, session_id: str) -> None:
    sessions: Sessions = ws.app.state.whatif
    await ws.accept()
    try:
        session = sessions.get(session_id)
    except FlowTimeError as exc:
        await ws.send_text(orjson.dumps(_error(None, exc)).decode())
        await ws.close(code=4404, reason="session not found")
        return
    await _serve(ws, session)


@router.websocket("/v1/whatif")
async def whatif_open_socket(ws: WebSocket) -> None:
    """A session opened by the socket's first frame and closed with the socket (one connection, one process)."""
    sessions: Sessions = ws.app.state.whatif
    settings: EngineSettings = ws.app.state.settings
    await ws.accept()
    try:
        message = await ws.receive()
    except WebSocketDisconnect:
        return
    text = message.get("text")

    def build() -> tuple[Session, dict[str, Any]]:
        if text is None:
            raise WhatIfError([Problem("", "the first frame is the session's body as JSON text, e.g. "
                                           '{"runId": "run_..."} or {"yaml": "..."}')])
        if len(text) > settings.max_body_bytes:
            raise LimitExceeded(f"the first frame is {len(text)} characters; the limit is "
                                f"{settings.max_body_bytes} (FLOWTIME_MAX_BODY_BYTES)", limit_name="max_body_bytes")
        whatif, base, series = _open("application/json", text.encode(), settings, ws.app.state.registry,
                                     ws.app.state.state_cache)
        first = whatif.result(series=series)
        session = sessions.add(whatif, base, series)
        return session, {"type": "session", **_describe(session, series), "result": first}

    if message["type"] == "websocket.disconnect":
        return
    try:
        session, described = await run_in_threadpool(build)
    except FlowTimeError as exc:
        await ws.send_text(orjson.dumps(_error(None, exc)).decode())
        await ws.close(code=4400, reason="the session could not be opened")
        return
    try:
        await ws.send_text(orjson.dumps(described, option=_JSON).decode())
        await _serve(ws, session)
    finally:
        with contextlib.suppress(FlowTimeError):
            sessions.remove(session.id)


async def _serve(ws: WebSocket, session: Session) -> None:
    """Answer a session's messages on ``ws`` until it closes: the latest point evaluated, saves in order."""
    sessions: Sessions = ws.app.state.whatif
    settings: EngineSettings = ws.app.state.settings
    registry: Registry = ws.app.state.registry
    sessions.attach(session, +1)
    send_lock = asyncio.Lock()
    wake = asyncio.Event()
    latest: dict[str, Any] = {}  # the newest message waiting to be evaluated (older ones coalesced into it)
    view: dict[str, Any] = {"series": session.series, "bin": None}

    async def send(payload: dict[str, Any]) -> None:
        text = orjson.dumps(payload, option=_JSON).decode()
        async with send_lock:
            await ws.send_text(text)

    def evaluate(series: list[str] | None, index: int | None) -> dict[str, Any]:
        with session.lock:
            return session.whatif.result(series=series, bin=index)

    async def worker() -> None:
        while True:
            await wake.wait()
            wake.clear()
            saves = latest.pop("saves", [])
            if "seq" in latest:
                seq, count = latest.pop("seq"), latest.pop("count")
                try:
                    _series_cap(session.whatif, view["series"], settings)
                    body = await run_in_threadpool(evaluate, view["series"], view["bin"])
                except FlowTimeError as exc:
                    await send(_error(seq, exc))
                except Exception:  # a bug must not end the session: say so, keep serving
                    log.exception("what-if evaluation failed in session %s", session.id)
                    await send(_error(seq, detail="the evaluation failed unexpectedly; the Engine's log has details"))
                else:
                    await send({"seq": seq, **body, "coalesced": count - 1})
            for seq in saves:  # after the point they follow was applied (and answered)
                try:
                    saved = await run_in_threadpool(_save, session, settings, registry)
                except FlowTimeError as exc:
                    await send(_error(seq, exc))
                else:
                    await send({"type": "saved", "seq": seq, **saved})

    task = asyncio.create_task(worker())
    try:
        while True:
            message = await ws.receive()
            if message["type"] == "websocket.disconnect":
                break
            text = message.get("text")
            if text is None:
                await send(_error(None, WhatIfError([Problem("", "send JSON as text frames, not binary")])))
                continue
            seq = None
            try:
                data = _parse(text)
                seq = data.get("seq")
                changes = _message(data, session.whatif)
            except WhatIfError as exc:
                await send(_error(seq, exc))
                continue
            sessions.attach(session, 0)  # in use: its idle time restarts
            view.update(changes)
            if data.get("save") is True:
                latest.setdefault("saves", []).append(seq)
                if set(data) <= {"seq", "save"}:  # a save alone: no evaluation to answer
                    wake.set()
                    continue
            latest["count"] = latest.get("count", 0) + 1
            latest["seq"] = seq
            wake.set()
    except WebSocketDisconnect:
        pass
    finally:
        task.cancel()
        sessions.attach(session, -1)
