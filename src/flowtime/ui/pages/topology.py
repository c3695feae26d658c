"""
Run → Topology: the run's flow network, coloured by a metric, with a time
scrubber, a nodes × bins heatmap and pinned inspector cards (issue 15).

The page itself is a shell; the browser draws it from the Engine's state API,
read through this server (``/runs/{id}/state/{view}.json`` relays
``/v1/runs/{id}/{view}`` as it arrives, so the browser talks to one origin and
the UI never holds a large window whole). Query parameters are passed on from
an allow-list: the Engine validates their values and its 400 problem bodies
reach the browser unchanged.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from flowtime.ui.clients import STATE_VIEWS, InvalidId
from flowtime.ui.deps import Engine
from flowtime.ui.pages.run_detail import relay
from flowtime.ui.render import page

router = APIRouter()

# The state API's query parameters (ours and the reference's spellings), per view.
PASSED = {
    "graph": ("mode",),
    "state": ("bin", "ts", "mode", "classIds", "classes"),
    "state_window": ("startBin", "endBin", "start", "end", "mode", "classIds", "classes", "edgeIds",
                     "edgeMetrics", "max_points", "nodes"),
    "metrics": ("startBin", "endBin", "start", "end"),
}


@router.get("/runs/{run_id}/topology", response_class=HTMLResponse)
async def topology_page(request: Request, run_id: str, engine: Engine) -> HTMLResponse:
    detail = await engine.run_detail(run_id)
    run = detail.get("run") or {}
    return page(request, "run_topology.html", {
        "title": f"Topology · {run.get('title') or run_id}",
        "run_id": run_id,
        "run": run,
        "grid": run.get("grid") or {},
    })


@router.get("/runs/{run_id}/state/{view}.json")
async def state_json(request: Request, run_id: str, view: str, engine: Engine) -> Response:
    if view not in STATE_VIEWS:
        raise InvalidId(f"not a state view: {view!r}")
    params = {k: v for k, v in request.query_params.items() if k in PASSED[view]}
    return relay(await engine.state_stream(run_id, view, params), None)
