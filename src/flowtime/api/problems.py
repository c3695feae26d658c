"""
Error class -> HTTP status, rendered once as application/problem+json.

Route handlers raise FlowTime's own errors and never catch them; the handler
installed by ``install_problem_handlers`` looks the class up along its MRO.
Bodies carry RFC 7807 fields plus ``errors`` (located problems) and ``error``
(the one-line message, for clients of the reference implementation).
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from flowtime.errors import (
    ArtifactError,
    ConflictError,
    EvaluationError,
    FlowTimeError,
    LimitExceeded,
    ModelError,
    ParameterError,
    RunNotFound,
    TemplateError,
    TemplateNotFound,
)

PROBLEM_JSON = "application/problem+json"

STATUS: dict[type[BaseException], int] = {
    RunNotFound: 404,
    TemplateNotFound: 404,
    ParameterError: 400,
    TemplateError: 400,
    ModelError: 400,
    EvaluationError: 400,
    LimitExceeded: 413,
    ConflictError: 409,
    ArtifactError: 500,
    FlowTimeError: 500,
}


def status_for(exc: BaseException) -> int:
    for cls in type(exc).__mro__:
        if cls in STATUS:
            return STATUS[cls]
    return 500


def problem(status: int, title: str, detail: str, *, errors: list[dict[str, Any]] | None = None,
            type_: str = "about:blank", **extra: Any) -> JSONResponse:
    body: dict[str, Any] = {
        "type": type_,
        "title": title,
        "status": status,
        "detail": detail,
        "errors": errors or [],
        "error": detail.splitlines()[0] if detail else title,
        **extra,
    }
    return JSONResponse(body, status_code=status, media_type=PROBLEM_JSON)


def problem_for(exc: FlowTimeError) -> JSONResponse:
    status = status_for(exc)
    errors = [p.to_dict() for p in exc.problems]
    detail = str(exc)
    slug = type(exc).__name__
    return problem(status, getattr(exc, "title", slug), detail, errors=errors,
                   type_=f"https://flowtime.dev/problems/{slug}")


def install_problem_handlers(app: FastAPI) -> None:
    @app.exception_handler(FlowTimeError)
    async def _flowtime(_: Request, exc: FlowTimeError) -> JSONResponse:
        return problem_for(exc)

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [
            {"path": ".".join(str(p) for p in e.get("loc", ())), "line": None, "column": None,
             "message": e.get("msg", "")}
            for e in exc.errors()
        ]
        detail = "; ".join(f"{e['path']}: {e['message']}" for e in errors) or "invalid request"
        return problem(422, "Invalid request", detail, errors=errors)

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        detail = exc.detail if isinstance(exc.detail, str) else str(exc.detail)
        resp = problem(exc.status_code, detail if exc.status_code != 404 else "Not found", detail)
        for k, v in (exc.headers or {}).items():
            resp.headers[k] = v
        return resp
