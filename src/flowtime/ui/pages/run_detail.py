"""
One run: grid, hashes, seed, timings, charts and table of its series, the DAG,
where it came from (provenance, with a "re-generate" link), and downloads.
"""

from __future__ import annotations

import asyncio
import io
import zipfile
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response

from flowtime.ui.clients import Download, path_id
from flowtime.ui.dag import render_svg
from flowtime.ui.deps import Engine
from flowtime.ui.forms import prefill_url
from flowtime.ui.pages.home import probe
from flowtime.ui.render import page

router = APIRouter()

# Series whose values come with the page; the rest load when they are selected.
INITIAL_SERIES = 24
EXPORT_FORMATS = ("csv", "parquet")
SPEC_FILE = "spec.yaml"
# Top-level run files included in the series zip when the Engine has them.
RUN_FILES = ("spec.yaml", "run.json", "manifest.json", "provenance.json")


def regenerate_url(provenance: dict[str, Any], run_id: str) -> str | None:
    """The template form pre-filled with the parameters a run's model was made from."""
    template_id = provenance.get("templateId")
    if not template_id:
        return None
    return prefill_url(str(template_id), provenance.get("parameters") or {}, _from=run_id)


def _label(entry: dict[str, Any]) -> str:
    return str(entry.get("nodeId") or str(entry.get("id", "")).split("@", 1)[0])


@router.get("/runs/{run_id}", response_class=HTMLResponse)
async def run_page(request: Request, run_id: str, engine: Engine) -> HTMLResponse:
    detail, index = await asyncio.gather(engine.run_detail(run_id), engine.run_index(run_id))
    entries: list[dict[str, Any]] = [s for s in index.get("series") or [] if isinstance(s, dict)]
    first = entries[:INITIAL_SERIES]
    spec_result, *values = await asyncio.gather(
        probe(engine.file(run_id, SPEC_FILE)),
        *(engine.series_values(run_id, str(s["id"])) for s in first),
    )
    spec, _ = spec_result
    spec_text = spec.content.decode("utf-8-sig", errors="replace") if spec else ""
    graph, graph_error = await probe(engine.graph(spec_text)) if spec_text else (None, None)
    loaded = {str(s["id"]): v.get("values") for s, v in zip(first, values, strict=True)}
    run = detail.get("run") or {}
    manifest = detail.get("manifest") or {}
    provenance = detail.get("provenance") or {}
    grid = run.get("grid") or index.get("grid") or {}
    chart_data = {
        "runId": run_id,
        "grid": grid,
        "series": [
            {"id": str(s["id"]), "label": _label(s), "points": s.get("points"),
             "values": loaded.get(str(s["id"]))}
            for s in entries
        ],
    }
    return page(request, "run.html", {
        "title": f"Run {run_id}",
        "run_id": run_id,
        "run": run,
        "manifest": manifest,
        "grid": grid,
        "series": entries,
        "series_labels": {str(s["id"]): _label(s) for s in entries},
        "chart_data": chart_data,
        "provenance": provenance,
        "regenerate_url": regenerate_url(provenance, run_id),
        "spec_text": spec_text,
        "dag_svg": render_svg(graph) if graph else None,
        "dag_error": graph_error,
        "seed": (manifest.get("rng") or {}).get("seed"),
    })


@router.get("/runs/{run_id}/series/{series_id}.json")
async def series_json(run_id: str, series_id: str, engine: Engine) -> JSONResponse:
    data = await engine.series_values(run_id, series_id)
    return JSONResponse(data)


def _passthrough(download: Download, default_name: str) -> Response:
    name = download.filename or default_name
    return Response(download.content, media_type=download.media_type,
                    headers={"Content-Disposition": f'attachment; filename="{name}"'})


@router.get("/runs/{run_id}/series/{series_id}.csv")
async def series_csv(run_id: str, series_id: str, engine: Engine) -> Response:
    download = await engine.series_csv(run_id, series_id)
    return _passthrough(download, f"{path_id(run_id)}-{series_id.split('@', 1)[0]}.csv")


@router.get("/runs/{run_id}/export/{fmt}")
async def export(run_id: str, fmt: str, engine: Engine) -> Response:
    """The Engine's whole-run export (one long table: time, series, value)."""
    if fmt not in EXPORT_FORMATS:
        return JSONResponse({"detail": f"unknown format {fmt!r}; use csv or parquet"}, 404)
    download = await engine.export(run_id, fmt)
    return _passthrough(download, f"{path_id(run_id)}.{fmt}")


@router.get("/runs/{run_id}/download.zip")
async def download_zip(run_id: str, engine: Engine) -> Response:
    """Every series CSV plus the run's own files, zipped here from the Engine's endpoints."""
    index = await engine.run_index(run_id)
    ids = [str(s["id"]) for s in index.get("series") or [] if isinstance(s, dict)]
    files = await asyncio.gather(*(probe(engine.file(run_id, name)) for name in RUN_FILES))
    series = await asyncio.gather(*(engine.series_csv(run_id, sid) for sid in ids))
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, (found, _) in zip(RUN_FILES, files, strict=True):
            if found is not None:
                zf.writestr(f"{run_id}/{name}", found.content)
        for sid, csv in zip(ids, series, strict=True):
            zf.writestr(f"{run_id}/series/{sid}.csv", csv.content)
    return Response(buf.getvalue(), media_type="application/zip",
                    headers={"Content-Disposition": f'attachment; filename="{path_id(run_id)}.zip"'})


@router.get("/runs/{run_id}/files/{name}")
async def run_file(run_id: str, name: str, engine: Engine) -> Response:
    download = await engine.file(run_id, name)
    return _passthrough(download, path_id(name))
