"""
The Engine service: ``create_engine_app(settings)`` builds the /v1 FastAPI app.

The Engine is the single source of truth for runs: it evaluates models, stores
every run permanently under ``settings.data_dir`` and answers every question
about them. It never calls Sim. Routes live in one module per resource:

    engine_models.py     POST /v1/run, /v1/graph, /v1/validate  (model text in)
    engine_runs.py       /v1/runs...                            (one stored run)
    engine_state.py      /v1/runs/{id}/graph|state|state_window|metrics (what a run means)
    engine_artifacts.py  /v1/artifacts...                       (the registry)
    engine_experiments.py /v1/experiments...                    (experiments in the background, stored)
    engine_modes.py      POST /v1/sweep, /v1/sensitivity, /v1/goal-seek, /v1/optimize (the reference's, sync)
    engine_whatif.py     /v1/whatif, WS /v1/whatif/{id}                (live what-if sessions)

This module holds the factory, start-up (temp-folder cleanup, index sync), the
request guard (bearer token, body size) and the health endpoints.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import APIRouter, Depends, FastAPI
from fastapi.middleware.cors import CORSMiddleware
from starlette.concurrency import run_in_threadpool

from flowtime._version import __version__
from flowtime.api import (
    engine_artifacts,
    engine_experiments,
    engine_models,
    engine_modes,
    engine_runs,
    engine_state,
    engine_whatif,
)
from flowtime.api.engine_deps import get_registry, get_settings
from flowtime.api.experiment_jobs import Experiments
from flowtime.api.guard import RequestGuard
from flowtime.api.problems import install_problem_handlers
from flowtime.api.whatif_sessions import Sessions
from flowtime.artifacts.experiments import FOLDER
from flowtime.artifacts.registry import Registry
from flowtime.artifacts.state import StateCache
from flowtime.artifacts.writer import clean_temp_folders
from flowtime.errors import StorageFull
from flowtime.gcpause import settled
from flowtime.settings import EngineSettings

log = logging.getLogger("flowtime.engine")


def create_engine_app(settings: EngineSettings) -> FastAPI:
    """A new Engine app over ``settings.data_dir``; nothing is shared between apps."""
    registry = Registry(settings.data_dir)
    experiments = Experiments(settings)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        await run_in_threadpool(_start_up, registry)
        # experiments left queued or running by the last process run again (decision 0037)
        await run_in_threadpool(experiments.start_up, engine_experiments.resume(settings))
        with settled():  # start-up done: later full collections skip what lives as long as the process
            yield
        await run_in_threadpool(experiments.close)  # running experiments are cancelled: nothing half-written

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
    app.state.state_cache = StateCache(settings.state_cache_bytes)
    app.state.experiments = experiments
    app.state.whatif = Sessions(settings.whatif_max_sessions, settings.whatif_idle_seconds)
    install_problem_handlers(app)
    app.include_router(health)
    app.include_router(engine_models.router)
    app.include_router(engine_state.router)
    app.include_router(engine_runs.router)
    app.include_router(engine_artifacts.router)
    app.include_router(engine_experiments.router)
    app.include_router(engine_modes.router)
    app.include_router(engine_whatif.router)
    engine_experiments.document_spec(app)
    app.add_middleware(RequestGuard, max_body_bytes=settings.max_body_bytes,
                       api_token=settings.api_token, host=settings.host,
                       allowed_hosts=settings.allowed_hosts, cors_origin=settings.cors_origin)
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
    """
    Clean up, then check the index (a corrupt one is set aside and rebuilt) and catch
    up with the folders. A full disk does not stop the Engine: reads still work.
    """
    registry.root.mkdir(parents=True, exist_ok=True)
    clean_temp_folders(registry.root, older_than_seconds=TEMP_FOLDER_GRACE_SECONDS)
    clean_temp_folders(registry.root / FOLDER, older_than_seconds=TEMP_FOLDER_GRACE_SECONDS)
    registry.check()
    try:
        registry.sync()
    except StorageFull as exc:
        log.warning("the run index cannot catch up with the run folders now: %s", exc)


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
        # Indexes found corrupt and rebuilt since start-up (the old file is kept aside).
        "indexRecovered": [r.to_json() for r in registry.recovered],
        "limits": {"maxBins": settings.max_bins, "maxNodes": settings.max_nodes,
                   "maxBodyBytes": settings.max_body_bytes, "maxExperimentPoints": settings.max_experiment_points,
                   "whatifMaxSessions": settings.whatif_max_sessions},
        "auth": bool(settings.api_token),
    }
