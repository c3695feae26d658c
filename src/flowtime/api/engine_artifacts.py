"""
Routes over the registry: /v1/artifacts (query, one artifact, its files, re-index).

File downloads accept a top-level file name or ``series/<name>``; the name is
checked against ``layout.FILE_NAME`` before any path is built, then resolved
and checked to stay inside the run folder (symlinks refused), so no request
reaches a file outside it. The file is opened before the answer starts: a run
deleted meanwhile is a 404 before that, and a whole file after it.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any, BinaryIO

from fastapi import APIRouter, Depends
from fastapi.responses import StreamingResponse
from starlette.types import Receive, Scope, Send

from flowtime.api.engine_deps import get_registry
from flowtime.api.engine_runs import artifact_query, content_disposition
from flowtime.api.problems import problem_responses
from flowtime.artifacts.registry import ArtifactQuery, Registry

router = APIRouter(tags=["artifacts"], responses=problem_responses(400, 401, 404, 422))
CHUNK = 64 * 1024

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


@router.post("/v1/artifacts/index", summary="Rebuild the registry index from the run folders",
             responses=problem_responses(507))
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
                  registry: Registry = Depends(get_registry)) -> StreamingResponse:
    filename = name.rsplit("/", 1)[-1]
    suffix = filename[filename.rfind("."):] if "." in filename else ""
    return OpenFileResponse(registry.open_file(artifact_id, name),
                            MEDIA_TYPES.get(suffix, "application/octet-stream"), filename)


class OpenFileResponse(StreamingResponse):
    """
    A file that is already open, streamed and then closed. Unlike ``FileResponse``
    (which opens the path only once the headers are on their way), a file deleted
    meanwhile still arrives whole.
    """

    def __init__(self, f: BinaryIO, media_type: str, filename: str) -> None:
        self._file = f
        size = os.fstat(f.fileno()).st_size  # run files are never rewritten
        super().__init__(_chunks(f), media_type=media_type, headers={
            "Content-Length": str(size),
            "Content-Disposition": content_disposition("attachment", filename)})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            self._file.close()


def _chunks(f: BinaryIO) -> Iterator[bytes]:
    while chunk := f.read(CHUNK):
        yield chunk
