"""
Error class -> HTTP status, rendered once as application/problem+json.

Route handlers raise FlowTime's own errors and never catch them; the handler
installed by ``install_problem_handlers`` looks the class up along its MRO.
Bodies carry RFC 7807 fields plus ``errors`` (located problems) and ``error``
(the one-line message, for clients of the reference implementation).
"""

from __future__ import annotations

from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from flowtime.errors import (
    ArtifactError,
    ConflictError,
    EvaluationError,
    ExperimentError,
    FlowTimeError,
    GateFailed,
    InvalidExperimentId,
    InvalidRunId,
    LimitExceeded,
    ModelError,
    ModelNotFound,
    ParameterError,
    QueryError,
    RunNotFound,
    SessionNotFound,
    SessionsFull,
    StorageFull,
    TemplateError,
    TemplateNotFound,
    WhatIfError,
)

PROBLEM_JSON = "application/problem+json"

STATUS: dict[type[BaseException], int] = {
    InvalidRunId: 400,
    InvalidExperimentId: 400,
    RunNotFound: 404,
    TemplateNotFound: 404,
    ModelNotFound: 404,
    ParameterError: 400,
    QueryError: 400,
    TemplateError: 400,
    ModelError: 400,
    EvaluationError: 400,
    ExperimentError: 400,  # the spec is wrong, located at its paths
    GateFailed: 422,  # the model is fine; the run it made fails the analyser gate the client asked for
    # A model or parameters over a configured limit is a bad request; 413 is kept
    # for the request body itself (the guard), see SECURITY.md.
    LimitExceeded: 400,
    ConflictError: 409,
    WhatIfError: 400,
    SessionNotFound: 404,
    SessionsFull: 429,  # retry once an idle session has expired (SECURITY.md)
    StorageFull: 507,
    ArtifactError: 500,
    FlowTimeError: 500,
}


def problem_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` entries documenting problem+json bodies for ``statuses``."""
    schema = {
        "type": "object",
        "required": ["type", "title", "status", "detail", "errors", "error"],
        "properties": {
            "type": {"type": "string"}, "title": {"type": "string"},
            "status": {"type": "integer"}, "detail": {"type": "string"},
            "error": {"type": "string", "description": "the message on one line"},
            "limit": {"type": "string", "description": "the limit exceeded (LimitExceeded only)"},
            "parameter": {"type": "string", "description": "the query parameter at fault (QueryError only)"},
            "validRange": {"type": "string", "description": "what that parameter accepts (QueryError only)"},
            "errors": {"type": "array", "items": {"type": "object", "properties": {
                "path": {"type": "string"}, "line": {"type": ["integer", "null"]},
                "column": {"type": ["integer", "null"]}, "message": {"type": "string"},
                "severity": {"type": "string"}}}},
        },
    }
    return {s: {"description": HTTPStatus(s).phrase,
                "content": {PROBLEM_JSON: {"schema": schema}}} for s in statuses}


def status_for(exc: BaseException) -> int:
    for cls in type(exc).__mro__:
        if cls in STATUS:
            return STATUS[cls]
    return 500


def problem(status: int, title: str, detail: str, *, errors: list[dict[str, Any]] | None = None,
            type_: str = "about:blank", **extra: Any) -> JSONResponse:
    return JSONResponse(problem_document(status, title, detail, errors=errors, type_=type_, **extra),
                        status_code=status, media_type=PROBLEM_JSON)


def problem_document(status: int, title: str, detail: str, *, errors: list[dict[str, Any]] | None = None,
                     type_: str = "about:blank", **extra: Any) -> dict[str, Any]:
    """A problem+json body as data (also what a what-if WebSocket sends as ``error``)."""
    body: dict[str, Any] = {
        "type": type_,
        "title": title,
        "status": status,
        "detail": detail,
        "errors": errors or [],
        "error": detail.splitlines()[0] if detail else title,
    }
    body.update(extra)
    return body


def one_line(exc: FlowTimeError) -> str:
    """
    The ``error`` field: the message's first line, plus the first problem when the
    first line is only a count ("2 errors in model.yaml:").
    """
    head = str(exc).splitlines()[0] if str(exc) else getattr(exc, "title", "")
    problems = [p for p in exc.problems if p.severity == "error"] or list(exc.problems)
    if problems and head.endswith(":"):
        first = str(problems[0]).splitlines()[0]
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        return f"{head} {first}{more}"
    return head


def problem_for(exc: FlowTimeError) -> JSONResponse:
    body = document_for(exc)
    return JSONResponse(body, status_code=body["status"], media_type=PROBLEM_JSON)


def document_for(exc: FlowTimeError) -> dict[str, Any]:
    """The problem+json body for one of FlowTime's errors."""
    status = status_for(exc)
    errors = [p.to_dict() for p in exc.problems]
    detail = str(exc)
    slug = type(exc).__name__
    extra: dict[str, Any] = {}
    if isinstance(exc, LimitExceeded) and exc.limit_name:
        extra["limit"] = exc.limit_name
    if isinstance(exc, QueryError):
        extra["parameter"] = exc.parameter
        extra["validRange"] = exc.valid
    if isinstance(exc, GateFailed):
        extra["findings"] = [f.to_dict() for f in exc.findings]
    return problem_document(status, getattr(exc, "title", slug), detail, errors=errors,
                            type_=f"https://flowtime.dev/problems/{slug}", error=one_line(exc), **extra)


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
        try:
            title = getattr(exc, "title", None) or HTTPStatus(exc.status_code).phrase
        except ValueError:
            title = "HTTP error"
        resp = problem(exc.status_code, title, detail)
        for k, v in (exc.headers or {}).items():
            resp.headers[k] = v
        return resp
