"""
Routes over the registry: /v1/artifacts (query, one artifact, its files, re-index).

File downloads accept a top-level file name or ``series/<name>``; the name is
checked against ``layout.FILE_NAME`` before any path is built, then resolved
and checked to stay inside the run folder (symlinks refused), so no request
reaches a file outside it.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends
from fastapi.responses import FileResponse

from flowtime.api.engine_deps import get_registry
from flowtime.api.engine_runs import artifact_query
from flowtime.api.problems import problem_responses
from flowtime.artifacts.registry import ArtifactQuery, Registry

router = APIRouter(tags=["artifacts"], responses=problem_responses(401, 404, 422))

MEDIA_TYPES = {
    ".json": "application/json",
    ".yaml": "application/x-yaml",
    ".yml": "application/x-yaml",
    ".csv": "text/csv; charset=utf-8",
    ".parquet": "application/vnd.apache.parquet",
}


@router.get("/v1/artifacts", summary="Query the registry")
def list_artifacts(q: ArtifactQuery = Depends(artifact_query),
                   registry: Registry = Depends(get_registry)) -> dict[str, Any]:
    page = registry.query(q)
    return {"artifacts": [a.to_json() for a in page.artifacts], "total": page.total,
            "count": page.count}


@router.post("/v1/artifacts/index", summary="Rebuild the registry index from the run folders")
def rebuild_index(registry: Registry = Depends(get_registry)) -> dict[str, Any]:
    return {"indexed": registry.rebuild()}


@router.get("/v1/artifacts/{artifact_id}", summary="One artifact, with its files and provenance")
def get_artifact(artifact_id: str, registry: Registry = Depends(get_registry)) -> dict[str, Any]:
    art = registry.get(artifact_id)
    return {**art.to_json(), "files": registry.files(artifact_id),
            "provenance": registry.provenance(artifact_id)}


@router.get("/v1/artifacts/{artifact_id}/files", summary="The files of an artifact, with sizes")
def list_files(artifact_id: str,
               registry: Registry = Depends(get_registry)) -> list[dict[str, Any]]:
    return registry.files(artifact_id)


@router.get("/v1/artifacts/{artifact_id}/files/{name:path}",
            summary="Download one file: a top-level name or series/<name>")
def download_file(artifact_id: str, name: str,
                  registry: Registry = Depends(get_registry)) -> FileResponse:
    path = registry.file_path(artifact_id, name)
    return FileResponse(path, media_type=MEDIA_TYPES.get(path.suffix, "application/octet-stream"),
                        filename=path.name)
