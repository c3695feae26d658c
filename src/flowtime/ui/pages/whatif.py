"""
Run → What-if: sliders for the run's parameters, the topology, a chart and the warnings repainted live (issue 15).

The browser talks to this server only. Its socket (``/runs/{id}/whatif/ws``)
makes the UI open an Engine session on the stored run (``POST /v1/whatif``),
tell the browser what it offers (``{"type": "session", ...}``: parameters, grid,
nodes, the first answer), and relay text frames both ways to the Engine's
socket untouched - the Engine checks every message and answers problems
located at ``set.<id>``. One message the UI answers itself:
``{"seq": n, "save": true}`` stores the current point as a run
(``{"type": "saved", "seq", "runId", "url"}``). When either side closes, the
other is closed and the Engine session deleted: a session lives as long as its page.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from typing import Any

import websockets
from fastapi import APIRouter, Request, WebSocket, WebSocketDisconnect
from fastapi.responses import HTMLResponse
from websockets.asyncio.client import ClientConnection, connect

from flowtime.ui.clients import EngineClient, ServiceError, ServiceProblem, path_id
from flowtime.ui.csrf import socket_refusal
from flowtime.ui.deps import Engine
from flowtime.ui.render import page

router = APIRouter()
log = logging.getLogger("flowtime.ui")
UPSTREAM_MAX_BYTES = 64 * 1024 * 1024  # an answer carries the chosen series; the Engine caps their values
CLOSE_UNAVAILABLE = 1011  # the Engine's session could not be opened or went away


@router.get("/runs/{run_id}/whatif", response_class=HTMLResponse)
async def whatif_page(request: Request, run_id: str, engine: Engine) -> HTMLResponse:
    detail = await engine.run_detail(run_id)
    run = detail.get("run") or {}
    return page(request, "run_whatif.html", {
        "title": f"What-if · {run.get('title') or run_id}",
        "run_id": run_id,
        "run": run,
        "grid": run.get("grid") or {},
    })


def _problem(exc: ServiceError) -> dict[str, Any]:
    """The Engine's problem (or why it could not be reached) as the browser's error message."""
    if isinstance(exc, ServiceProblem):
        return {"status": exc.status, "title": exc.title, "detail": exc.detail,
                "errors": [{"path": e.path, "message": e.message} for e in exc.errors]}
    return {"status": 503, "title": f"{exc.service} is not reachable", "detail": str(exc), "errors": []}


async def _saved(engine: EngineClient, session_id: str, seq: Any) -> dict[str, Any]:
    try:
        saved = await engine.save_whatif(session_id)
    except ServiceError as exc:
        return {"type": "error", "seq": seq, "error": _problem(exc)}
    run_id = str(saved["runId"])
    return {"type": "saved", "seq": seq, "runId": run_id, "url": f"/runs/{path_id(run_id)}",
            "parameters": (saved.get("whatif") or {}).get("parameters") or {}}


def _is_save(text: str) -> tuple[bool, Any]:
    """Whether a browser frame is the UI's own save message (and its seq); anything else goes to the Engine."""
    if '"save"' not in text:  # the common case (a slider move) is not parsed here
        return False, None
    try:
        data = json.loads(text)
    except ValueError:
        return False, None
    if isinstance(data, dict) and data.get("save") is True:
        return True, data.get("seq")
    return False, None


async def _pump_browser(ws: WebSocket, upstream: ClientConnection, engine: EngineClient, session_id: str) -> None:
    while True:
        text = await ws.receive_text()
        save, seq = _is_save(text)
        if save:
            await ws.send_text(json.dumps(await _saved(engine, session_id, seq)))
        else:
            await upstream.send(text)


async def _pump_engine(ws: WebSocket, upstream: ClientConnection) -> None:
    async for frame in upstream:
        await ws.send_text(frame if isinstance(frame, str) else frame.decode("utf-8", "replace"))


@router.websocket("/runs/{run_id}/whatif/ws")
async def whatif_socket(ws: WebSocket, run_id: str) -> None:
    refusal = socket_refusal(ws)
    if refusal is not None:
        log.warning("what-if socket refused: %s", refusal)
        await ws.close(code=1008)  # before accepting: the browser sees a failed handshake
        return
    engine: EngineClient = ws.app.state.engine
    await ws.accept()
    series = [s for s in ws.query_params.getlist("series") if s]
    try:
        session = await engine.open_whatif({"runId": run_id, "series": series})
    except ServiceError as exc:
        await ws.send_text(json.dumps({"type": "error", "seq": None, "error": _problem(exc)}))
        await ws.close(code=CLOSE_UNAVAILABLE)
        return
    session_id = str(session["sessionId"])
    try:
        url, headers = engine.socket_target(str(session["websocket"]))
        async with connect(url, additional_headers=headers, proxy=None, compression=None,
                           max_size=UPSTREAM_MAX_BYTES, open_timeout=10) as upstream:
            await ws.send_text(json.dumps({"type": "session", **session}))
            pumps = [asyncio.create_task(_pump_browser(ws, upstream, engine, session_id)),
                     asyncio.create_task(_pump_engine(ws, upstream))]
            done, pending = await asyncio.wait(pumps, return_when=asyncio.FIRST_COMPLETED)
            for task in pending:
                task.cancel()
            for task in done:
                failure = task.exception()
                if failure is not None and not isinstance(failure, WebSocketDisconnect | websockets.ConnectionClosed):
                    raise failure
            if pumps[1] in done:  # the Engine ended the session's socket: say so, then close
                with contextlib.suppress(Exception):
                    await ws.send_text(json.dumps({"type": "error", "seq": None, "error": {
                        "status": 503, "title": "The what-if session ended",
                        "detail": "the Engine closed the session's socket (restarted or stopped?); reload the page",
                        "errors": []}}))
                    await ws.close(code=CLOSE_UNAVAILABLE)
    except (OSError, websockets.InvalidHandshake, TimeoutError) as exc:
        with contextlib.suppress(Exception):
            await ws.send_text(json.dumps({"type": "error", "seq": None, "error": {
                "status": 503, "title": "Engine socket not reachable", "detail": type(exc).__name__,
                "errors": []}}))
            await ws.close(code=CLOSE_UNAVAILABLE)
    finally:
        with contextlib.suppress(ServiceError):
            await engine.close_whatif(session_id)
