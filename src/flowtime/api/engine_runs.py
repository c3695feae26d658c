"""
Routes over stored runs: /v1/runs (list, one run, its series, export, delete, compare).

Handlers are plain ``def`` functions (FastAPI runs them in its threadpool):
everything here is disk and SQLite work. Unknown runs and series raise
``RunNotFound``, rendered as 404 by the problem handlers (text that is not a
run id at all is ``InvalidRunId``, 400). Every answer is read whole before it
is sent, so a run deleted meanwhile is a 404, never a cut-off body.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal
from urllib.parse import quote

from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import BeforeValidator

from flowtime.api.engine_deps import get_registry
from flowtime.api.problems import problem_responses
from flowtime.artifacts.alignment import grid_with_start
from flowtime.artifacts.compare import MAX_COMPARED_SERIES, compare_runs, json_values, model_diff
from flowtime.artifacts.compare_many import MAX_COMPARED_RUNS, compare_many
from flowtime.artifacts.export import export_run
from flowtime.artifacts.registry import MAX_LIMIT, ArtifactQuery, Registry, parse_series_csv
from flowtime.errors import QueryError

router = APIRouter(tags=["runs"], responses=problem_responses(400, 401, 404, 409, 422))
RunId = Annotated[str, "run id such as run_20250101T000000Z_ab12cd34"]


def _iso_8601(value: Any) -> Any:
    """ISO 8601 text only: pydantic alone would also read ``0.0`` as a Unix time, which the schema does not offer."""
    if isinstance(value, str):
        try:
            datetime.fromisoformat(value)
        except ValueError:
            raise ValueError("expected an ISO 8601 date or date-time such as 2025-01-01T00:00:00Z") from None
    return value


IsoTime = Annotated[datetime | None, BeforeValidator(_iso_8601)]


def content_disposition(kind: str, filename: str, fallback: str | None = None) -> str:
    """
    A Content-Disposition value any client reads: an ASCII ``filename`` (``fallback``,
    or the name with other characters as ``_``) plus RFC 5987 ``filename*`` when the
    name is not plain ASCII. (Header values must be Latin-1; node ids may be any script.)

    >>> content_disposition("inline", "a@A@DEFAULT.csv")
    'inline; filename="a@A@DEFAULT.csv"'
    >>> print(content_disposition("inline", "需求@需求@DEFAULT.csv", "node-1.csv"))
    inline; filename="node-1.csv"; filename*=UTF-8''%E9%9C%80%E6%B1%82%40%E9%9C%80%E6%B1%82%40DEFAULT.csv
    """
    plain = "".join(c if c.isascii() and c.isprintable() and c not in '"\\' else "_" for c in filename)
    if plain == filename:
        return f'{kind}; filename="{filename}"'
    ascii_name = fallback if fallback is not None else plain
    return f"{kind}; filename=\"{ascii_name}\"; filename*=UTF-8''{quote(filename, safe='')}"


def artifact_query(
    type_: Annotated[str | None, Query(alias="type", description="run (or model)")] = None,
    search: Annotated[str | None, Query(description="Case-insensitive substring of id, title, "
                                                    "tags, templateId or modelId.")] = None,
    tags: Annotated[str | None, Query(description="Comma-separated; matches runs with any.")]
    = None,
    template_id: Annotated[str | None, Query(alias="templateId", description="Exact.")] = None,
    model_id: Annotated[str | None, Query(alias="modelId", description="Exact.")] = None,
    created_after: Annotated[IsoTime, Query(alias="createdAfter",
                                            description="Inclusive, ISO 8601.")] = None,
    created_before: Annotated[IsoTime, Query(alias="createdBefore",
                                             description="Inclusive, ISO 8601.")] = None,
    sort_by: Annotated[Literal["created", "id", "title", "size"], Query(alias="sortBy")]
    = "created",
    sort_order: Annotated[Literal["asc", "desc"], Query(alias="sortOrder")] = "desc",
    limit: Annotated[int, Query(ge=0, description=f"Page size (at most {MAX_LIMIT}).")] = 50,
    skip: Annotated[int, Query(ge=0)] = 0,
) -> ArtifactQuery:
    """The registry query of a request's parameters (shared by /v1/runs and /v1/artifacts)."""
    return ArtifactQuery(
        type=type_, search=search or None,
        tags=tuple(t.strip() for t in (tags or "").split(",") if t.strip()),
        template_id=template_id, model_id=model_id,
        created_after=created_after, created_before=created_before,
        sort_by=sort_by, sort_order=sort_order, limit=min(limit, MAX_LIMIT), skip=skip,
    )


@router.get("/v1/runs", summary="Stored runs, newest first, paged")
def list_runs(q: ArtifactQuery = Depends(artifact_query),
              registry: Registry = Depends(get_registry)) -> dict[str, Any]:
    page = registry.query(ArtifactQuery(**{**q.__dict__, "type": "run"}))
    return {"runs": [a.to_json() for a in page.artifacts], "total": page.total,
            "count": page.count, "limit": q.limit, "skip": q.skip}


@router.get("/v1/runs/compare", summary=(
    "Compare runs: two (a, b) or several (run=..&run=..&baseline=..); different grids on their common span"))
def compare(a: Annotated[str | None, Query(description="Run A (with b: the two-run answer)")] = None,
            b: Annotated[str | None, Query(description="Run B (deltas are A - B)")] = None,
            run: Annotated[list[str] | None, Query(description=(
                f"Runs to compare (2 to {MAX_COMPARED_RUNS}; repeated, or comma-separated)."))] = None,
            baseline: Annotated[str | None, Query(description="With run=: the run deltas are taken against "
                                                              "(default: the first).")] = None,
            offset: Annotated[int, Query(ge=0, description="First common series of the page.")] = 0,
            limit: Annotated[int, Query(ge=1, le=MAX_COMPARED_SERIES, description=(
                f"Series per page (at most {MAX_COMPARED_SERIES}; fewer on long grids)."))] = MAX_COMPARED_SERIES,
            registry: Registry = Depends(get_registry)) -> dict[str, Any]:
    runs = [r.strip() for item in run or [] for r in item.split(",") if r.strip()]
    if runs:
        if a or b:
            raise QueryError("run", "give either a and b, or run=...; not both")
        return compare_many(registry, runs, baseline, offset=offset, limit=limit)
    if not a or not b:
        raise QueryError("b" if a else "a", "name the runs to compare: a and b, or run=...&run=... (two or more)")
    return compare_runs(registry, a, b, offset=offset, limit=limit).to_json()


@router.get("/v1/runs/diff", summary="How the models of any two runs differ, node by node (any grids)")
def diff(a: Annotated[str, Query(description="Run A")],
         b: Annotated[str, Query(description="Run B, the baseline (changes read from B to A)")],
         registry: Registry = Depends(get_registry)) -> dict[str, Any]:
    return model_diff(registry, a, b)


@router.get("/v1/runs/{run_id}", summary="run.json, manifest and provenance of a run")
def get_run(run_id: RunId, registry: Registry = Depends(get_registry)) -> dict[str, Any]:
    # ``grid`` adds the start written in the spec to run.json's grid: clock-time axes need it
    return {**registry.details(run_id), "grid": grid_with_start(registry, run_id)}


@router.get("/v1/runs/{run_id}/index", summary="The series index of a run")
def get_index(run_id: RunId, registry: Registry = Depends(get_registry)) -> dict[str, Any]:
    return registry.series_index(run_id)


def _wants_json(request: Request, fmt: str | None) -> bool:
    if fmt:
        return fmt == "json"
    accept = request.headers.get("accept", "").lower()
    j, c = accept.find("application/json"), accept.find("text/csv")
    return j >= 0 and (c < 0 or j < c)


@router.get("/v1/runs/{run_id}/series/{series_id}",
            summary="One series: CSV (stored bytes), or JSON with Accept: application/json",
            responses={200: {"content": {"text/csv": {}, "application/json": {}}}})
def get_series(run_id: RunId, series_id: str, request: Request,
               format: Annotated[Literal["csv", "json"] | None, Query(
                   description="Overrides the Accept header.")] = None,
               registry: Registry = Depends(get_registry)) -> Response:
    entry = registry.find_series(run_id, series_id)
    data = registry.series_bytes(run_id, entry)
    if _wants_json(request, format):
        values = parse_series_csv(data)
        node = entry.get("nodeId") or str(entry["id"]).split("@", 1)[0]
        body = {"id": entry["id"], "nodeId": node, "points": int(values.size),
                "values": json_values(values)}
        return JSONResponse(body)
    stored_name = str(entry.get("path", "")).rsplit("/", 1)[-1]  # always ASCII (layout.FILE_NAME)
    return Response(data, media_type="text/csv; charset=utf-8", headers={
        "Content-Disposition": content_disposition("inline", f"{entry['id']}.csv", stored_name)})


@router.get("/v1/runs/{run_id}/export",
            summary="A whole run as one file (long format: time_bin, offset_minutes, series, "
                    "value)")
def export(run_id: RunId,
           format: Annotated[Literal["csv", "parquet", "ndjson"], Query()] = "csv",
           registry: Registry = Depends(get_registry)) -> StreamingResponse:
    out = export_run(registry, run_id, format)
    return StreamingResponse(out.chunks, media_type=out.media_type, headers={
        "Content-Disposition": content_disposition("attachment", out.filename)})


@router.delete("/v1/runs/{run_id}", status_code=204, summary="Delete a run for good",
               responses=problem_responses(507))
def delete_run(run_id: RunId, registry: Registry = Depends(get_registry)) -> Response:
    registry.delete(run_id)
    return Response(status_code=204)
