"""
The Engine service: ``create_engine_app(settings)`` builds the /v1 FastAPI app.

The Engine is the single source of truth for runs: it evaluates models, stores
every run permanently under ``settings.data_dir`` and answers every question
about them. It never calls Sim. Routes live in one module per resource:

    engine_models.py     POST /v1/run, /v1/graph, /v1/validate  (model text in)
    engine_runs.py       /v1/runs...                            (one stored run)
    engine_artifacts.py  /v1/artifacts...                       (the registry)

This module holds the factory, start-up (temp-folder cleanup, index sync), the
request guard (bearer token, body size) and the health endpoints.
"""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import APIRouter, Depends, FastAPI
from fastapi.middleware.cors import CORSMiddleware
from starlette.concurrency import run_in_threadpool
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from flowtime._version import __version__
from flowtime.api import engine_artifacts, engine_models, engine_runs
from flowtime.api.engine_deps import get_registry, get_settings
from flowtime.api.problems import install_problem_handlers, problem
from flowtime.artifacts.registry import Registry
from flowtime.artifacts.writer import clean_temp_folders
from flowtime.errors import LimitExceeded
from flowtime.settings import EngineSettings

WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


def create_engine_app(settings: EngineSettings) -> FastAPI:
    """A new Engine app over ``settings.data_dir``; nothing is shared between apps."""
    registry = Registry(settings.data_dir)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        await run_in_threadpool(_start_up, registry)
        yield

    app = FastAPI(
        title="FlowTime Engine",
        version=__version__,
        summary="Evaluate flow models and keep every run: /v1 runs, artifacts registry, compare.",
        lifespan=lifespan,
        docs_url="/docs",
        redoc_url=None,
    )
    app.state.settings = settings
    app.state.registry = registry
    install_problem_handlers(app)
    app.include_router(health)
    app.include_router(engine_models.router)
    app.include_router(engine_runs.router)
    app.include_router(engine_artifacts.router)
    app.add_middleware(RequestGuard, max_body_bytes=settings.max_body_bytes,
                       api_token=settings.api_token)
    if settings.cors_origin:  # outermost, so errors from the guard carry CORS headers too
        app.add_middleware(CORSMiddleware, allow_origins=[settings.cors_origin],
                           allow_methods=["GET", "POST", "DELETE", "OPTIONS"],
                           allow_headers=["Authorization", "Content-Type", "Accept",
                                          "X-Model-Provenance"],
                           expose_headers=["Content-Disposition", "Location"])
    return app


# Temp folders younger than this may belong to a write in progress in another
# process (a second worker on the same data directory) and are left alone.
TEMP_FOLDER_GRACE_SECONDS = 600.0


def _start_up(registry: Registry) -> None:
    registry.root.mkdir(parents=True, exist_ok=True)
    clean_temp_folders(registry.root, older_than_seconds=TEMP_FOLDER_GRACE_SECONDS)
    registry.sync()


class RequestGuard:
    """
    Pure ASGI middleware: bearer token on write methods (when configured) and
    the request body limit, checked on ``Content-Length`` and on the bytes
    actually received (a chunked or lying client is cut off at the limit).
    """

    def __init__(self, app: ASGIApp, *, max_body_bytes: int, api_token: str | None) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.api_token = api_token

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        if self.api_token and scope["method"] in WRITE_METHODS and not self._authorized(headers):
            response = problem(401, "Unauthorized", f"{scope['method']} requests need the header "
                               "'Authorization: Bearer <token>' (the server's FLOWTIME_API_TOKEN)")
            response.headers["WWW-Authenticate"] = 'Bearer realm="flowtime"'
            await response(scope, receive, send)
            return
        declared = headers.get("content-length", "")
        if declared.isdigit() and int(declared) > self.max_body_bytes:
            await self._too_large(int(declared))(scope, receive, send)
            return
        await self.app(scope, self._counting(receive), send)

    def _authorized(self, headers: dict[str, str]) -> bool:
        scheme, _, token = headers.get("authorization", "").partition(" ")
        assert self.api_token is not None
        return scheme.lower() == "bearer" and secrets.compare_digest(
            token.strip().encode(), self.api_token.encode())

    def _too_large(self, size: int | None) -> Any:
        what = f"{size} bytes" if size is not None else "larger than that"
        return problem(413, "Request body too large",
                       f"request body is {what}; the limit is {self.max_body_bytes} bytes "
                       "(FLOWTIME_MAX_BODY_BYTES)")

    def _counting(self, receive: Receive) -> Receive:
        seen = 0
        limit = self.max_body_bytes

        async def counted() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    raise LimitExceeded(
                        f"request body is over the limit of {limit} bytes (FLOWTIME_MAX_BODY_BYTES)",
                        limit_name="max_body_bytes")
            return message

        return counted


health = APIRouter(tags=["health"])


@health.get("/healthz", summary="Liveness and service facts")
@health.get("/v1/healthz", summary="Liveness and service facts")
def healthz(settings: EngineSettings = Depends(get_settings),
            registry: Registry = Depends(get_registry)) -> dict[str, Any]:
    return {
        "status": "ok",
        "service": "engine",
        "version": __version__,
        "dataDir": str(settings.data_dir.resolve()),
        "runCount": registry.count(),
        "limits": {"maxBins": settings.max_bins, "maxNodes": settings.max_nodes,
                   "maxBodyBytes": settings.max_body_bytes},
        "auth": bool(settings.api_token),
    }
