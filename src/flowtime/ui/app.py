"""
``create_ui_app(settings)``: the FlowTime web UI.

The UI orchestrates the two services over HTTP only - Sim generates models,
Engine runs and stores them - and renders server-side Jinja pages, enhanced by
a small script (``static/app.js``) and plotly.js served from the installed
``plotly`` wheel (no CDN, works offline). Upstream failures are translated
here, once: an unreachable service becomes a page with a banner, an error
answer becomes a page with the service's located messages.
"""

from __future__ import annotations

import dataclasses
import importlib.metadata
import importlib.util
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
from fastapi import Depends, FastAPI, Request
from fastapi.middleware.gzip import GZipMiddleware
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from flowtime.gcpause import settled
from flowtime.settings import UiSettings
from flowtime.ui import csrf
from flowtime.ui.clients import EngineClient, InvalidId, ServiceProblem, ServiceUnavailable, SimClient, UpstreamProblem
from flowtime.ui.pages import analysis, compare, home, run_detail, runs, templates, topology, whatif
from flowtime.ui.render import make_templates, page

STATIC_DIR = Path(__file__).parent / "static"


def plotly_bundle() -> Path:
    """The ``plotly.min.js`` shipped inside the ``plotly`` wheel (found without importing it)."""
    spec = importlib.util.find_spec("plotly")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("the plotly package is not installed; the UI needs its plotly.min.js")
    for location in spec.submodule_search_locations:
        candidate = Path(location) / "package_data" / "plotly.min.js"
        if candidate.is_file():
            return candidate
    raise RuntimeError("plotly is installed but package_data/plotly.min.js is missing")


def _version() -> str:
    try:
        return importlib.metadata.version("flowtime")
    except importlib.metadata.PackageNotFoundError:
        return "0+unknown"


class ServerTiming:
    """Adds ``Server-Timing: app;dur=<ms>`` to every response (read by the benchmark)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()

        async def send_with_timing(message: Message) -> None:
            if message["type"] == "http.response.start":
                ms = (time.perf_counter() - start) * 1000
                headers = list(message.get("headers", []))
                headers.append((b"server-timing", f"app;dur={ms:.1f}".encode()))
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_timing)


def create_ui_app(settings: UiSettings, *,
                  engine_transport: httpx.AsyncBaseTransport | None = None,
                  sim_transport: httpx.AsyncBaseTransport | None = None) -> FastAPI:
    """
    Build the UI app. The transports are a test seam (``httpx.MockTransport``
    or an ASGI transport); by default the clients open real connections to
    ``settings.engine_url`` and ``settings.sim_url``.
    """

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        common: dict[str, Any] = {"token": settings.api_token,
                                  "timeout": settings.request_timeout_seconds}
        app.state.engine = EngineClient(settings.engine_url, transport=engine_transport, **common)
        app.state.sim = SimClient(settings.sim_url, transport=sim_transport, **common)
        try:
            with settled():  # start-up done: later full collections skip what lives as long as the process
                yield
        finally:
            await app.state.engine.aclose()
            await app.state.sim.aclose()

    # Every route, including those added later, checks state-changing requests for the form token.
    app = FastAPI(title="FlowTime UI", lifespan=lifespan, docs_url=None, redoc_url=None,
                  openapi_url=None, dependencies=[Depends(csrf.csrf_protect)])
    app.state.settings = settings
    app.state.templates = make_templates()
    app.state.version = _version()
    app.state.csrf_secret = csrf.new_secret()
    app.add_middleware(GZipMiddleware, minimum_size=2048)
    app.add_middleware(ServerTiming)
    app.add_middleware(csrf.HostCheck, names=csrf.allowed_host_names(settings.host, settings.allowed_hosts))

    bundle = plotly_bundle()

    @app.get("/vendor/plotly.min.js", include_in_schema=False)
    async def plotly_js() -> FileResponse:
        return FileResponse(bundle, media_type="text/javascript",
                            headers={"Cache-Control": "public, max-age=86400"})

    @app.get("/healthz", include_in_schema=False)
    async def healthz() -> JSONResponse:
        return JSONResponse({"status": "ok", "service": "ui", "version": app.state.version,
                             "engineUrl": settings.engine_url, "simUrl": settings.sim_url})

    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    for module in (home, templates, runs, run_detail, compare, topology, whatif, analysis):
        app.include_router(module.router)
    _install_error_pages(app)
    return app


def _install_error_pages(app: FastAPI) -> None:
    @app.exception_handler(ServiceUnavailable)
    async def _down(request: Request, exc: ServiceUnavailable) -> Response:
        if not _wants_html(request):
            return _json_problem(503, f"{exc.service} is not reachable", str(exc))
        return page(request, "error.html", {
            "title": f"{exc.service} is not reachable",
            "banners": [exc],
            "message": f"This page needs the {exc.service} service, which is not answering at "
                       f"{exc.base_url}.",
            "hint": _start_hint(exc.service),
        }, status=503)

    @app.exception_handler(ServiceProblem)
    async def _problem(request: Request, exc: ServiceProblem) -> Response:
        status = exc.status if exc.status in (400, 404, 409, 413, 422) else 502
        if not _wants_html(request):
            return _json_problem(status, exc.title or f"{exc.service} error",
                                 exc.detail or f"{exc.service} answered {exc.status}.", exc.errors)
        return page(request, "error.html", {
            "title": exc.title or f"{exc.service} error",
            "message": exc.detail or f"{exc.service} answered {exc.status}.",
            "problems": exc.errors,
            "service": exc.service,
            "upstream_status": exc.status,
            "hint": (f"The {exc.service} wants an API token: start the UI with the same "
                     "FLOWTIME_API_TOKEN as the services.") if exc.status in (401, 403) else "",
        }, status=status)

    @app.exception_handler(csrf.CsrfRejected)
    async def _forged(request: Request, exc: csrf.CsrfRejected) -> Response:
        return page(request, "error.html", {"title": "Request refused", "message": str(exc)}, status=403)

    @app.exception_handler(InvalidId)
    async def _bad_id(request: Request, exc: InvalidId) -> Response:
        if not _wants_html(request):
            return _json_problem(404, "Not found", str(exc))
        return page(request, "error.html", {"title": "Not found", "message": str(exc)}, status=404)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> Response:
        if not _wants_html(request):
            return JSONResponse({"detail": exc.detail}, status_code=exc.status_code)
        title = "Page not found" if exc.status_code == 404 else f"Error {exc.status_code}"
        return page(request, "error.html", {"title": title, "message": str(exc.detail)},
                    status=exc.status_code)


def _wants_html(request: Request) -> bool:
    """Pages get an error page; scripts' JSON routes (``*.json``, or asking for JSON) a problem body."""
    path = request.url.path
    return not path.startswith(("/static", "/vendor")) and not path.endswith(".json") and \
        "application/json" not in request.headers.get("accept", "")


def _json_problem(status: int, title: str, detail: str, errors: Any = None) -> JSONResponse:
    listed = [dataclasses.asdict(e) if isinstance(e, UpstreamProblem) else e for e in errors or []]
    body = {"type": "about:blank", "title": title, "status": status, "detail": detail, "errors": listed}
    return JSONResponse(body, status_code=status, media_type="application/problem+json")


def _start_hint(service: str) -> str:
    cmd = {"Engine": "flowtime serve engine", "Sim": "flowtime serve sim"}.get(service, "flowtime up")
    return f"Start it with `{cmd}` (or `flowtime up` for all three services), then reload."

