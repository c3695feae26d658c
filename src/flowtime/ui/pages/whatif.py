"""
Run → What-if: sliders for the run's parameters, the topology, a chart and the warnings repainted live (issue 15).

The browser talks to this server only. Its socket (``/runs/{id}/whatif/ws``)
makes the UI open one socket to the Engine (``WS /v1/whatif``) whose first frame
opens a session on the stored run; the Engine's ``{"type": "session", ...}``
(parameters, grid, nodes, the first answer) and every later frame go to the
browser untouched, and the browser's frames to the Engine - which checks every
message and answers problems located at ``set.<id>``. ``{"seq": n, "save": true}``
stores the current point as a run; the UI adds the run page's ``url`` to the
Engine's ``{"type": "saved", ...}``. The whole session is that one Engine
connection (so one Engine process, when the Engine serves with several) and
lives as long as the page: when either side closes, so does the other.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging

import websockets
from fastapi import APIRouter, Request, WebSocket, WebSocketDisconnect
from fastapi.responses import HTMLResponse
from websockets.asyncio.client import ClientConnection, connect

from flowtime.ui.clients import EngineClient, path_id
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


def _saved(frame: str) -> str:
    """The Engine's ``saved`` answer with the run page's URL added; every other frame as it came."""
    if '"saved"' not in frame:  # the common case (an answer) is not parsed here
        return frame
    try:
        data = json.loads(frame)
    except ValueError:
        return frame
    if isinstance(data, dict) and data.get("type") == "saved" and isinstance(data.get("runId"), str):
        data["url"] = f"/runs/{path_id(data['runId'])}"
        data["parameters"] = (data.get("whatif") or {}).get("parameters") or {}
        return json.dumps(data)
    return frame


async def _pump_browser(ws: WebSocket, upstream: ClientConnection) -> None:
    while True:
        await upstream.send(await ws.receive_text())


async def _pump_engine(ws: WebSocket, upstream: ClientConnection) -> None:
    async for frame in upstream:
        await ws.send_text(_saved(frame if isinstance(frame, str) else frame.decode("utf-8", "replace")))


async def _refuse(ws: WebSocket, title: str, detail: str) -> None:
    with contextlib.suppress(Exception):
        await ws.send_text(json.dumps({"type": "error", "seq": None, "error": {
            "status": 503, "title": title, "detail": detail, "errors": []}}))
        await ws.close(code=CLOSE_UNAVAILABLE)


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
        url, headers = engine.socket_target("/v1/whatif")
        async with connect(url, additional_headers=headers, proxy=None, compression=None,
                           max_size=UPSTREAM_MAX_BYTES, open_timeout=10) as upstream:
            await upstream.send(json.dumps({"runId": run_id, "series": series}))
            first = await upstream.recv()
            first_text = first if isinstance(first, str) else first.decode("utf-8", "replace")
            try:
                opened = json.loads(first_text)
            except ValueError:
                opened = {}
            if not isinstance(opened, dict) or opened.get("type") != "session":  # the Engine's problem: say it
                error = opened.get("error") if isinstance(opened, dict) else None
                await ws.send_text(json.dumps({"type": "error", "seq": None, "error": error or {
                    "status": 502, "title": "The Engine did not open a session", "detail": first_text[:200],
                    "errors": []}}))
                await ws.close(code=CLOSE_UNAVAILABLE)
                return
            await ws.send_text(first_text)
            pumps = [asyncio.create_task(_pump_browser(ws, upstream)), asyncio.create_task(_pump_engine(ws, upstream))]
            done, pending = await asyncio.wait(pumps, return_when=asyncio.FIRST_COMPLETED)
            for task in pending:
                task.cancel()
            for task in done:
                failure = task.exception()
                if failure is not None and not isinstance(failure, WebSocketDisconnect | websockets.ConnectionClosed):
                    raise failure
            if pumps[1] in done:  # the Engine ended the session's socket: say so, then close
                await _refuse(ws, "The what-if session ended",
                              "the Engine closed the session's socket (restarted or stopped?); reload the page")
    except (OSError, websockets.InvalidHandshake, websockets.ConnectionClosed, TimeoutError) as exc:
        await _refuse(ws, "Engine socket not reachable", type(exc).__name__)
