"""
One run: grid, hashes, seed, timings, charts and table of its series, the DAG,
where it came from (provenance, with a "re-generate" link), and downloads.

Bounded for runs of many series: the page lists one page of series
(``SERIES_PAGE``, ``?sp=N``) and loads values only for the first few of it;
the graph is drawn for models up to ``MAX_DAG_SERIES`` series; downloads are
relayed as streams, and the zip is built while it is sent (``runzip``).
"""

from __future__ import annotations

import asyncio
import re
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response, StreamingResponse

from flowtime.ui import runzip
from flowtime.ui.clients import ServiceProblem, Stream, path_id
from flowtime.ui.dag import render_svg
from flowtime.ui.deps import Engine
from flowtime.ui.forms import prefill_url
from flowtime.ui.pages.home import probe
from flowtime.ui.render import page

router = APIRouter()

# Series whose values come with the page; the rest load when they are selected.
INITIAL_SERIES = 24
# Series listed per page of the run page (chart list and files table).
SERIES_PAGE = 200
# Larger models get no drawn graph: laying it out is work for both services.
MAX_DAG_SERIES = 500
MAX_DAG_SPEC_CHARS = 256 * 1024
# Characters of the model text shown inline (the whole file is a download).
MAX_SPEC_SHOWN = 200_000
EXPORT_FORMATS = ("csv", "parquet")
SPEC_FILE = "spec.yaml"
# A model with a top-level topology block: the run page links to its topology view.
TOPOLOGY_KEY = re.compile(r"^topology:", re.MULTILINE)
# Top-level run files included in the series zip when the Engine has them.
RUN_FILES = ("spec.yaml", "run.json", "manifest.json", "provenance.json")


def regenerate_url(provenance: dict[str, Any], run_id: str) -> str | None:
    """The template form pre-filled with the parameters a run's model was made from."""
    template_id = provenance.get("templateId")
    if not template_id:
        return None
    return prefill_url(str(template_id), provenance.get("parameters") or {}, _from=run_id)


def _label(entry: dict[str, Any]) -> str:
    """A series' name: its node, and ``@Class`` for a class's part of it (its total is the plain name)."""
    node = str(entry.get("nodeId") or str(entry.get("id", "")).split("@", 1)[0])
    if entry.get("kind") == "derived":  # a metric of a topology node: the series' own name
        node = str(entry.get("id", "")).split("@", 1)[0]
    if entry.get("classKind") == "specific" and entry.get("class"):
        return f"{node}@{entry['class']}"
    return node


def _page_number(request: Request, total: int) -> tuple[int, int]:
    """The series page asked for (``?sp=N``, 1-based, clamped) and the number of pages."""
    pages = max(1, -(-total // SERIES_PAGE))
    try:
        wanted = int(request.query_params.get("sp", "1"))
    except ValueError:
        wanted = 1
    return min(max(1, wanted), pages), pages


async def _graph(engine: Engine, spec_text: str, series_count: int) -> tuple[str | None, Any]:
    """The DAG as SVG (drawn in a thread), or why there is none."""
    if series_count > MAX_DAG_SERIES or len(spec_text) > MAX_DAG_SPEC_CHARS:
        return None, (f"the graph is drawn for models of up to {MAX_DAG_SERIES} series; "
                      f"this run has {series_count}")
    graph, error = await probe(engine.graph(spec_text))
    if graph is None:
        return None, error
    return await asyncio.to_thread(render_svg, graph), None


@router.get("/runs/{run_id}", response_class=HTMLResponse)
async def run_page(request: Request, run_id: str, engine: Engine) -> HTMLResponse:
    detail, index = await asyncio.gather(engine.run_detail(run_id), engine.run_index(run_id))
    entries: list[dict[str, Any]] = [s for s in index.get("series") or [] if isinstance(s, dict)]
    number, pages = _page_number(request, len(entries))
    shown = entries[(number - 1) * SERIES_PAGE: number * SERIES_PAGE]
    first = shown[:INITIAL_SERIES]
    spec_result, *values = await asyncio.gather(
        probe(engine.file(run_id, SPEC_FILE)),
        *(engine.series_values(run_id, str(s["id"])) for s in first),
    )
    spec, _ = spec_result
    spec_text = spec.content.decode("utf-8-sig", errors="replace") if spec else ""
    dag_svg, graph_error = await _graph(engine, spec_text, len(entries)) if spec_text else (None, None)
    loaded = {str(s["id"]): v.get("values") for s, v in zip(first, values, strict=True)}
    run = detail.get("run") or {}
    manifest = detail.get("manifest") or {}
    provenance = detail.get("provenance") or {}
    # the Engine's detail grid carries the start (startTimeUtc) that clock-time axes need
    grid = detail.get("grid") or run.get("grid") or index.get("grid") or {}
    chart_data = {
        "runId": run_id,
        "grid": grid,
        "series": [
            {"id": str(s["id"]), "label": _label(s), "points": s.get("points"), "unit": s.get("unit"),
             "values": loaded.get(str(s["id"]))}
            for s in shown
        ],
    }
    return page(request, "run.html", {
        "title": f"Run {run_id}",
        "run_id": run_id,
        "run": run,
        "manifest": manifest,
        "grid": grid,
        "series": shown,
        "series_total": len(entries),
        "series_page": {"number": number, "pages": pages, "start": (number - 1) * SERIES_PAGE,
                        "size": SERIES_PAGE},
        "chart_data": chart_data,
        "provenance": provenance,
        "regenerate_url": regenerate_url(provenance, run_id),
        "spec_text": spec_text[:MAX_SPEC_SHOWN],
        "spec_truncated": len(spec_text) > MAX_SPEC_SHOWN,
        "dag_svg": dag_svg,
        "dag_error": graph_error,
        "seed": (manifest.get("rng") or {}).get("seed"),
        "has_topology": TOPOLOGY_KEY.search(spec_text) is not None,
    })


def relay(stream: Stream, default_name: str | None) -> StreamingResponse:
    """An Engine answer passed to the browser as it arrives (never held whole)."""
    headers = {}
    if default_name is not None:
        headers["Content-Disposition"] = f'attachment; filename="{stream.filename or default_name}"'
    return StreamingResponse(stream.chunks(), media_type=stream.media_type, headers=headers)


@router.get("/runs/{run_id}/series/{series_id}.json")
async def series_json(run_id: str, series_id: str, engine: Engine) -> Response:
    return relay(await engine.series_stream(run_id, series_id, "application/json"), None)


@router.get("/runs/{run_id}/series/{series_id}.csv")
async def series_csv(run_id: str, series_id: str, engine: Engine) -> Response:
    stream = await engine.series_stream(run_id, series_id, "text/csv")
    return relay(stream, f"{path_id(run_id)}-{series_id.split('@', 1)[0]}.csv")


@router.get("/runs/{run_id}/export/{fmt}")
async def export(run_id: str, fmt: str, engine: Engine) -> Response:
    """The Engine's whole-run export (one long table: time, series, value)."""
    if fmt not in EXPORT_FORMATS:
        return JSONResponse({"detail": f"unknown format {fmt!r}; use csv or parquet"}, 404)
    return relay(await engine.export(run_id, fmt), f"{path_id(run_id)}.{fmt}")


@router.get("/runs/{run_id}/download.zip")
async def download_zip(run_id: str, engine: Engine) -> Response:
    """
    Every series CSV plus the run's own files, zipped while it is sent, from one
    streamed Engine export (not one request per series).
    """
    index = await engine.run_index(run_id)
    ids: dict[str, str] = {}
    for entry in index.get("series") or []:
        if isinstance(entry, dict):
            ids.setdefault(_label(entry), str(entry.get("id", "")))
    found = await asyncio.gather(*(probe(engine.file(run_id, name)) for name in RUN_FILES))
    files = [(name, f.content) for name, (f, _) in zip(RUN_FILES, found, strict=True) if f is not None]
    stream = await engine.export(run_id, "csv")
    chunks = stream.chunks()
    try:
        head = await runzip.read_header(chunks)
    except runzip.ExportFormatError as exc:
        await stream.close()
        raise ServiceProblem("Engine", engine.base_url, 502, "Unexpected export", str(exc)) from None
    body = runzip.zip_chunks(runzip.RunZip(path_id(run_id), ids), files, head, chunks)
    return StreamingResponse(body, media_type="application/zip", headers={
        "Content-Disposition": f'attachment; filename="{path_id(run_id)}.zip"'})


@router.get("/runs/{run_id}/files/{name}")
async def run_file(run_id: str, name: str, engine: Engine) -> Response:
    return relay(await engine.file_stream(run_id, name), path_id(name))
