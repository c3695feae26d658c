"""
Analysis: start any experiment kind on a run's model or on a model Sim rendered, watch it, see its result.

* ``/analysis/new?run=<id>`` (or ``?template=<id>&hash=<model hash>``, a model Sim
  rendered from chosen template values) ``&kind=sweep``: a form generated from
  the Engine's experiment schema for the kind (``schema_form``), the model's
  parameters and series offered as choices (``analysis_params``). Posting sends
  ``{spec, model}`` to ``POST /v1/experiments``; the Engine's located 400 is shown
  at the fields it names, a 202 redirects to the experiment.
* ``/experiments``: the Engine's experiments, newest first (kind, status, search).
* ``/experiments/{id}``: progress (points done of total, rate, cancel) while it
  runs, polled by ``static/analysis.js`` from ``status.json``; the kind's charts
  and the table when it is done; any point opened as a run (materialised).
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response

from flowtime.ui.analysis_params import ModelChoices, model_choices
from flowtime.ui.clients import InvalidId, ServiceProblem, path_id
from flowtime.ui.deps import Engine, Sim
from flowtime.ui.experiment_view import LIVE, answer_point, chart_data, summary_rows, table_page
from flowtime.ui.forms import fmt_number
from flowtime.ui.render import page
from flowtime.ui.schema_form import SpecField, kinds_of, locate, read_spec, spec_fields

router = APIRouter()

KIND_TITLES = {"sweep": "Sweep", "montecarlo": "Monte Carlo", "sensitivity": "Sensitivity", "goalseek": "Goal seek",
               "optimize": "Optimise", "fit": "Fit"}
# What a kind's parameters are given as (the rest of the Parameter schema is hidden on its form): a sweep takes
# values or a range, Monte Carlo draws from a distribution, the numerical kinds search a range.
HIDDEN = {"sweep": ("distribution",), "montecarlo": ("values", "range")}
HIDDEN_SEARCH = ("values", "distribution", "range.steps")
# over HTTP the Engine reads no files: observed values are pasted
# and the Engine takes models: the page itself names the model (a run's or a generated one), never a template
HIDDEN_ALWAYS = ("settings.observed.file", "settings.observed.csv", "template", "template.id", "template.parameters")
ROWS = {"parameters": 2, "metrics": 2, "settings.constraints": 1}
ROWS_BY_KIND = {"goalseek": {"parameters": 1, "metrics": 1}, "fit": {"metrics": 0}}
MAX_ROWS = 12
GRIDS_KEPT = 256  # grids of the experiments this UI started (the Engine's answer has none): clock-time axes


@dataclass(frozen=True)
class Source:
    """The model an experiment starts from: a run's, or one Sim rendered from a template."""

    label: str
    href: str
    model: str
    params: dict[str, str]  # the query/hidden fields naming it
    series: tuple[str, ...] = ()


async def _source(engine: Engine, sim: Sim, params: Any) -> Source:
    run, template, model_hash = (str(params.get(k) or "") for k in ("run", "template", "hash"))
    if run:
        spec, index = await asyncio.gather(engine.file(run, "spec.yaml"), engine.run_index(run))
        # a series' name as a spec writes it: its node (or derived metric) id, class parts left out
        series = tuple(dict.fromkeys(str(s.get("id", "")).split("@", 1)[0] for s in index.get("series") or []
                                     if isinstance(s, dict) and s.get("classKind") != "specific"))
        return Source(f"run {run}", f"/runs/{path_id(run)}", spec.content.decode("utf-8-sig", errors="replace"),
                      {"run": run}, series)
    if template and model_hash:
        stored = await sim.model(template, model_hash)
        return Source(f"model {model_hash[:19]}… of template {template}",
                      f"/models/{path_id(template)}/{path_id(model_hash)}", str(stored.get("model") or ""),
                      {"template": template, "hash": model_hash})
    raise InvalidId("an analysis starts from a run (?run=<id>) or a generated model (?template=<id>&hash=<hash>)")


def _rows(kind: str, params: Any) -> dict[str, int]:
    rows = {**ROWS, **ROWS_BY_KIND.get(kind, {})}
    for key, short in (("parameters", "prows"), ("metrics", "mrows"), ("settings.constraints", "crows")):
        with contextlib.suppress(ValueError):  # a hand-edited row count: keep the default
            rows[key] = min(MAX_ROWS, max(0, int(params.get(short, rows[key]))))
    return rows


def _shown(fields: list[SpecField], kind: str) -> list[SpecField]:
    hidden = HIDDEN.get(kind, HIDDEN_SEARCH)
    return [f for f in fields if f.name not in HIDDEN_ALWAYS and not (
        f.group.startswith("parameters[") and any(f.leaf == h or f.leaf.startswith(h + ".") for h in hidden))]


def _num(x: float) -> str:
    return fmt_number(round(x, 6))


def suggested(kind: str, choices: ModelChoices) -> dict[str, str]:
    """A fresh form's first parameter row and metric, from the model's first target and a series it computes."""
    texts: dict[str, str] = {}
    targets = {t.target for t in choices.targets}
    measured = next((s for s in choices.series if s not in targets), choices.series[0] if choices.series else "")
    if choices.targets:
        t = choices.targets[0]
        base = t.base if t.base else 1.0
        texts["parameters[0].target"] = t.target
        if kind == "montecarlo":
            texts |= {"parameters[0].distribution.kind": "uniform", "parameters[0].distribution.low": _num(base * 0.8),
                      "parameters[0].distribution.high": _num(base * 1.2), "settings.replications": "200"}
        else:
            texts |= {"parameters[0].range.low": _num(base * 0.5), "parameters[0].range.high": _num(base * 1.5)}
            if kind == "sweep":
                texts["parameters[0].range.steps"] = "5"
    if measured:
        if kind == "fit":
            texts["settings.series"] = measured
        else:
            texts["metrics[0].series"] = measured
        if kind in ("sweep", "montecarlo"):
            texts["capture"] = measured
    return texts


def _form_page(request: Request, source: Source, kind: str, kinds: tuple[str, ...], fields: list[SpecField],
               rows: dict[str, int], choices: ModelChoices, texts: dict[str, Any],
               errors: dict[str, str] | None = None, general: list[str] | None = None,
               status: int = 200) -> HTMLResponse:
    groups: dict[str, list[SpecField]] = {}
    for f in fields:
        groups.setdefault(f.group, []).append(f)
    more = {"prows": rows["parameters"], "mrows": rows["metrics"], "crows": rows["settings.constraints"]}
    return page(request, "analysis_new.html", {
        "title": f"{KIND_TITLES.get(kind, kind)} · analyse {source.label}",
        "source": source, "kind": kind, "kinds": [(k, KIND_TITLES.get(k, k)) for k in kinds],
        "groups": groups, "texts": texts, "errors": errors or {}, "general_errors": general or [],
        "choices": choices, "source_query": urlencode(source.params), "rows": more,
    }, status=status)


async def _form_parts(engine: Engine, sim: Sim, params: Any) -> tuple[Source, str, tuple[str, ...],
                                                                       list[SpecField], dict[str, int],
                                                                       ModelChoices]:
    (schema, defs), source = await asyncio.gather(engine.experiment_schema(), _source(engine, sim, params))
    offered = kinds_of(schema)
    kinds = tuple(sorted(offered, key=lambda k: list(KIND_TITLES).index(k) if k in KIND_TITLES else len(KIND_TITLES)))
    kind = str(params.get("kind") or "sweep")
    if kind not in kinds:
        kind = kinds[0] if kinds else "sweep"
    rows = _rows(kind, params)
    fields = _shown(spec_fields(schema, defs, kind, rows), kind)
    choices = await asyncio.to_thread(model_choices, source.model, source.series)
    return source, kind, kinds, fields, rows, choices


@router.get("/analysis/new", response_class=HTMLResponse)
async def new_form(request: Request, engine: Engine, sim: Sim) -> HTMLResponse:
    source, kind, kinds, fields, rows, choices = await _form_parts(engine, sim, request.query_params)
    given = {f.name: request.query_params[f.name] for f in fields if f.name in request.query_params}
    return _form_page(request, source, kind, kinds, fields, rows, choices, given or suggested(kind, choices))


def _texts(form: Any, fields: list[SpecField]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for f in fields:
        values = [v for v in form.getlist(f.name) if isinstance(v, str)]
        if values:
            out[f.name] = values if f.type == "texts" and len(values) > 1 else values[-1]
    return out


@router.post("/analysis/new", response_class=HTMLResponse)
async def start(request: Request, engine: Engine, sim: Sim) -> Response:
    form = await request.form()
    source, kind, kinds, fields, rows, choices = await _form_parts(engine, sim, form)
    texts = _texts(form, fields)
    spec, errors, renames = read_spec(fields, texts, kind)
    if errors:
        return _form_page(request, source, kind, kinds, fields, rows, choices, texts, errors, status=400)
    try:
        started = await engine.start_experiment(spec, source.model)
    except ServiceProblem as exc:
        if exc.status not in (400, 413, 422):
            raise
        per_field, general = locate(exc.errors, fields, renames)
        if not per_field and not general:
            general = [exc.detail or exc.title]
        return _form_page(request, source, kind, kinds, fields, rows, choices, texts, per_field, general, status=400)
    exp_id = str(started.get("id") or "")
    if choices.grid is not None:
        _remember_grid(request, exp_id, choices.grid)
    return RedirectResponse(f"/experiments/{path_id(exp_id)}", status_code=303)


def _grids(request: Request) -> dict[str, dict[str, Any]]:
    grids: dict[str, dict[str, Any]] | None = getattr(request.app.state, "experiment_grids", None)
    if grids is None:
        grids = request.app.state.experiment_grids = {}
    return grids


def _remember_grid(request: Request, exp_id: str, grid: dict[str, Any]) -> None:
    grids = _grids(request)
    grids[exp_id] = grid
    while len(grids) > GRIDS_KEPT:
        grids.pop(next(iter(grids)))


# ---- experiments ------------------------------------------------------------------------------------

@router.get("/experiments", response_class=HTMLResponse)
async def experiments_list(request: Request, engine: Engine, q: str = "", kind: str = "",
                           status: str = "") -> HTMLResponse:
    data = await engine.experiments({"q": q.strip(), "kind": kind, "status": status})
    rows = [e for e in data.get("experiments") or [] if isinstance(e, dict)]
    words = q.lower().split()
    # the Engine may or may not filter (its paged listing is newer than this page): filtering again is harmless
    shown = [e for e in rows if (not kind or e.get("kind") == kind) and (not status or e.get("status") == status)
             and all(w in f"{e.get('id', '')} {e.get('title', '')} {e.get('kind', '')}".lower() for w in words)]
    return page(request, "analysis_list.html", {
        "title": "Experiments", "experiments": shown, "total": data.get("total", len(rows)),
        "query": {"q": q, "kind": kind, "status": status}, "kinds": list(KIND_TITLES.items()),
        "kind_titles": KIND_TITLES,
    })


def _status_json(detail: dict[str, Any]) -> dict[str, Any]:
    return {k: detail.get(k) for k in ("id", "kind", "status", "progress", "points", "error", "createdUtc")}


@router.get("/experiments/{exp_id}/status.json")
async def experiment_status(exp_id: str, engine: Engine) -> JSONResponse:
    """Status and progress, without the result (what the progress page polls)."""
    return JSONResponse(_status_json(await engine.experiment(exp_id)))


@router.get("/experiments/{exp_id}", response_class=HTMLResponse)
async def experiment_page(request: Request, exp_id: str, engine: Engine) -> HTMLResponse:
    detail = await engine.experiment(exp_id)
    status = str(detail.get("status") or "")
    result = detail.get("result") or {}
    try:
        wanted = int(request.query_params.get("tp", "1"))
    except ValueError:
        wanted = 1
    done = status == "done" and bool(result)
    grid = detail.get("grid") or _grids(request).get(exp_id)
    return page(request, "analysis_experiment.html", {
        "title": f"{KIND_TITLES.get(str(detail.get('kind')), detail.get('kind'))} {exp_id}",
        "exp_id": exp_id, "detail": detail, "status": status, "live": status in LIVE, "done": done,
        "kind_title": KIND_TITLES.get(str(detail.get("kind")), detail.get("kind")),
        "status_json": _status_json(detail),
        "table": table_page(result, wanted) if done else None,
        "summary": summary_rows(detail) if done else [],
        "answer_point": answer_point(result) if done else None,
        "chart_data": chart_data(detail, grid) if done else None,
        "warnings": result.get("warnings") or [],
    })


@router.post("/experiments/{exp_id}/cancel")
async def cancel(exp_id: str, engine: Engine) -> Response:
    await engine.cancel_experiment(exp_id)
    return RedirectResponse(f"/experiments/{path_id(exp_id)}", status_code=303)


@router.post("/experiments/{exp_id}/points/{point}/run")
async def open_point(exp_id: str, point: int, engine: Engine) -> Response:
    """Point ``point`` written as an ordinary run by the Engine, then its page."""
    made = await engine.materialise_point(exp_id, point)
    return RedirectResponse(f"/runs/{path_id(str(made.get('runId') or ''))}", status_code=303)
