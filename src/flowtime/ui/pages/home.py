"""Home: the two services' health, counts of templates, stored models and runs, recent runs."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from flowtime.ui.clients import ServiceError, ServiceUnavailable
from flowtime.ui.deps import Engine, Sim
from flowtime.ui.render import page

router = APIRouter()
T = TypeVar("T")


async def probe(call: Awaitable[T]) -> tuple[T | None, ServiceError | None]:
    """
    Await ``call``; a service error is returned, not raised, for pages that
    render what they can (the home page shows a down service as a card).
    """
    try:
        return await call, None
    except ServiceError as exc:
        return None, exc


@dataclass
class ServiceStatus:
    name: str
    url: str
    up: bool
    version: str = ""
    data_dir: str = ""
    details: dict[str, Any] = field(default_factory=dict)
    error: str = ""


def _status(name: str, url: str, health: dict[str, Any] | None,
            error: ServiceError | None) -> ServiceStatus:
    if health is None:
        if isinstance(error, ServiceUnavailable):
            return ServiceStatus(name, url, False, error=f"not reachable ({error.reason})")
        return ServiceStatus(name, url, False, error=str(error) if error else "no answer")
    details = {k: v for k, v in health.items()
               if k in ("templatesDir", "limits") and v not in (None, "", {})}
    return ServiceStatus(name, url, health.get("status", "ok") == "ok",
                         str(health.get("version", "")), str(health.get("dataDir", "")), details)


@router.get("/", response_class=HTMLResponse)
async def home(request: Request, engine: Engine, sim: Sim) -> HTMLResponse:
    (eh, e_err), (sh, s_err), (recent, _) = await asyncio.gather(
        probe(engine.health()),
        probe(sim.health()),
        probe(engine.artifacts({"limit": 5, "sortBy": "created", "sortOrder": "desc"})),
    )
    template_count = sh.get("templateCount") if sh else None
    if sh is not None and template_count is None:
        templates, _ = await probe(sim.templates())
        template_count = len(templates) if templates is not None else None
    banners = [e for e in (e_err, s_err) if isinstance(e, ServiceUnavailable)]
    return page(request, "home.html", {
        "title": "Home",
        "engine": _status("Engine", engine.base_url, eh, e_err),
        "sim": _status("Sim", sim.base_url, sh, s_err),
        "counts": {
            "templates": template_count,
            "models": sh.get("modelCount") if sh else None,
            "runs": eh.get("runCount") if eh else (recent or {}).get("total"),
        },
        "recent": (recent or {}).get("artifacts", []),
        "banners": banners,
    })
