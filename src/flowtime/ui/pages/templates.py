"""
Templates: the catalog, a template's parameter form, generating a model (Sim),
and the generated model's page (YAML, DAG, provenance, quality; Run / Download).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from starlette.datastructures import FormData, QueryParams

from flowtime.model.parameters import Parameter
from flowtime.ui.clients import ServiceProblem, path_id
from flowtime.ui.dag import render_svg
from flowtime.ui.deps import Engine, Sim
from flowtime.ui.forms import (
    BinsLink,
    build_form,
    follow_bins,
    parameters_from_schema,
    parse_form,
    prefill_url,
    split_upstream_errors,
    to_text,
)
from flowtime.ui.pages.home import probe
from flowtime.ui.render import is_fragment, page
from flowtime.ui.yamlview import highlight

router = APIRouter()


def _matches(template: dict[str, Any], q: str, tag: str) -> bool:
    tags = [str(t) for t in template.get("tags") or []]
    if tag and tag not in tags:
        return False
    if not q:
        return True
    hay = " ".join([str(template.get("id", "")), str(template.get("title", "")),
                    str(template.get("description", "")), *tags]).lower()
    return all(word in hay for word in q.lower().split())


@router.get("/templates", response_class=HTMLResponse)
async def catalog(request: Request, sim: Sim, q: str = "", tag: str = "") -> HTMLResponse:
    templates = await sim.templates()
    tag_counts: dict[str, int] = {}
    for t in templates:
        for name in t.get("tags") or []:
            tag_counts[str(name)] = tag_counts.get(str(name), 0) + 1
    shown = [t for t in templates if _matches(t, q.strip(), tag)]
    ctx = {"title": "Templates", "templates": shown, "total": len(templates), "q": q, "tag": tag,
           "tags": sorted(tag_counts.items())}
    if is_fragment(request):
        return page(request, "_catalog_grid.html", ctx)
    return page(request, "catalog.html", ctx)


def _texts(data: QueryParams | FormData, names: list[str]) -> dict[str, str]:
    """Last value wins, so a checkbox after its hidden ``false`` reads as ticked."""
    out: dict[str, str] = {}
    for name in names:
        values = [v for v in data.getlist(name) if isinstance(v, str)]
        if values:
            out[name] = values[-1]
    return out


async def _template(sim: Sim, template_id: str) -> tuple[dict[str, Any], list[Parameter]]:
    tpl = await sim.template(template_id)
    return tpl, parameters_from_schema(tpl.get("parameters") or [])


def _form_page(request: Request, tpl: dict[str, Any], params: list[Parameter],
               texts: dict[str, str], errors: dict[str, str] | None = None,
               general: list[str] | None = None, status: int = 200) -> HTMLResponse:
    return page(request, "template.html", {
        "title": tpl.get("title") or tpl.get("id"),
        "template": tpl,
        "bins_link": BinsLink.from_template(tpl),
        "fields": build_form(params, texts, errors),
        "general_errors": general or [],
        "from_run": request.query_params.get("_from", ""),
    }, status=status)


@router.get("/templates/{template_id}", response_class=HTMLResponse)
async def template_form(request: Request, template_id: str, sim: Sim) -> HTMLResponse:
    tpl, params = await _template(sim, template_id)
    given = _texts(request.query_params, [p.name for p in params])
    texts = {p.name: to_text(p.default) for p in params if p.default is not None} | given
    texts = follow_bins(params, texts, BinsLink.from_template(tpl))
    # Pre-filled (e.g. "re-generate" from a run): say at once what no longer fits.
    _, errors = parse_form(params, texts) if given else ({}, {})
    return _form_page(request, tpl, params, texts, {k: v for k, v in errors.items() if k in given})


@router.post("/templates/{template_id}/generate", response_class=HTMLResponse, response_model=None)
async def generate(request: Request, template_id: str, sim: Sim, engine: Engine) -> Response:
    tpl, params = await _template(sim, template_id)
    form = await request.form()
    # Per-bin fields still at their default follow bins here too, so the form works without script.
    texts = follow_bins(params, _texts(form, [p.name for p in params]), BinsLink.from_template(tpl))
    values, errors = parse_form(params, texts)
    if errors:
        return _form_page(request, tpl, params, texts, errors, status=400)
    try:
        result = await sim.generate(template_id, values)
    except ServiceProblem as exc:
        # Rejected parameters are part of this page's flow: show them at their fields.
        if exc.status not in (400, 422):
            raise
        per_field, general = split_upstream_errors(exc.errors, [p.name for p in params])
        if not per_field and not general:
            general = [exc.detail or exc.title]
        return _form_page(request, tpl, params, texts, per_field, general, status=400)
    model_hash = str(result.get("hash") or "")
    if not model_hash:  # a Sim that names no stored model: show the result once, as before
        return await _model_page(request, engine, template_id, result, tpl)
    # Post/redirect/get: the model's page has a stable URL that survives a reload and can be shared.
    return RedirectResponse(f"/models/{quote(template_id, safe='')}/{quote(model_hash, safe=':')}", status_code=303)


@router.get("/models/{template_id}/{model_hash}", response_class=HTMLResponse)
async def model_view(request: Request, template_id: str, model_hash: str, sim: Sim,
                     engine: Engine) -> HTMLResponse:
    try:
        stored = await sim.model(template_id, model_hash)
    except ServiceProblem as exc:
        if exc.status != 404:
            raise
        # Sim's store is temporary: an old link finds nothing. Say so and offer the way back.
        return page(request, "error.html", {
            "title": "This generated model has expired",
            "message": f"Sim no longer holds model {model_hash} of template {template_id}: its store of "
                       "generated models is temporary.",
            "hint": "Generate it again from the template form (runs made from it are kept by the Engine).",
            "back": f"/templates/{quote(template_id, safe='')}", "back_label": "Generate again",
        }, status=404)
    metadata = stored.get("metadata") or {}
    result = {
        "model": stored.get("model", ""),
        "provenance": stored.get("provenance") or {},
        "hash": model_hash,
        "modelId": (stored.get("provenance") or {}).get("modelId") or metadata.get("modelId"),
        "path": stored.get("path"),
        # Sim's store keeps the quality report inside validation.json
        "quality": stored.get("quality") or metadata.get("quality") or (stored.get("validation") or {}).get("quality"),
        "validation": stored.get("validation") or metadata.get("validation"),
    }
    tpl, _ = await probe(sim.template(template_id))
    return await _model_page(request, engine, template_id, result, tpl or {"id": template_id})


@router.get("/models/{template_id}/{model_hash}/model.yaml")
async def model_yaml(template_id: str, model_hash: str, sim: Sim) -> Response:
    stored = await sim.model(template_id, model_hash)
    name = f"{path_id(template_id)}-{path_id(model_hash).replace(':', '_')[:20]}.yaml"
    return Response(stored.get("model", ""), media_type="application/x-yaml",
                    headers={"Content-Disposition": f'attachment; filename="{name}"'})


async def _model_page(request: Request, engine: Engine, template_id: str,
                      result: dict[str, Any], tpl: dict[str, Any]) -> HTMLResponse:
    model_text = str(result.get("model") or "")
    validation = result.get("validation") or {}
    problems = [(p.get("line"), p.get("message", "")) for p in validation.get("problems") or []
                if isinstance(p, dict)]
    graph, graph_error = await probe(engine.graph(model_text))
    model_hash = str(result.get("hash") or "")
    return page(request, "model.html", {
        "title": f"Model from {tpl.get('title') or template_id}",
        "template": tpl,
        "template_id": template_id,
        "model_hash": model_hash,
        "model_id": result.get("modelId") or (result.get("provenance") or {}).get("modelId"),
        "model_path": result.get("path"),
        "edit_url": prefill_url(template_id, (result.get("provenance") or {}).get("parameters") or {}),
        "lines": highlight(model_text, problems),
        "provenance": result.get("provenance") or {},
        "quality": result.get("quality"),
        "validation": validation,
        "dag_svg": render_svg(graph) if graph else None,
        "dag_error": graph_error,
        "banners": [],
    })
