"""
Runs: the Engine registry as a table (search, filters, sort, pages), starting a
run from a generated model or from pasted/uploaded YAML, and deleting a run.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import asdict, dataclass, replace
from datetime import date
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from starlette.datastructures import FormData, QueryParams, UploadFile

from flowtime.ui.clients import ServiceProblem, UpstreamProblem, path_id
from flowtime.ui.deps import Engine, Sim
from flowtime.ui.forms import fmt_number, parameters_from_schema
from flowtime.ui.pages.home import probe
from flowtime.ui.render import is_fragment, page
from flowtime.ui.yamlview import highlight

router = APIRouter()

SORT_KEYS = ("created", "id", "title", "size")
PAGE_SIZES = (25, 50, 100, 200)
MAX_UPLOAD_BYTES = 10 * 1024 * 1024
ARRAY_SHOWN = 3  # values of a longer array shown in a parameter cell


def _date(text: str) -> str:
    try:
        return date.fromisoformat(text.strip()).isoformat()
    except ValueError:
        return ""


@dataclass(frozen=True)
class RunQuery:
    """The runs page's query string, normalised; ``engine_params`` maps it onto /v1/artifacts."""

    q: str = ""
    template: str = ""
    model: str = ""
    tags: str = ""
    after: str = ""
    before: str = ""
    sort: str = "created"
    order: str = "desc"
    page: int = 1
    size: int = 50

    @classmethod
    def from_params(cls, params: QueryParams) -> RunQuery:
        def text(name: str) -> str:
            return (params.get(name) or "").strip()

        def number(name: str, default: int) -> int:
            try:
                return int(text(name))
            except ValueError:
                return default

        size = number("size", 50)
        return cls(
            q=text("q"), template=text("template"), model=text("model"), tags=text("tags"),
            after=_date(text("after")), before=_date(text("before")),
            sort=text("sort") if text("sort") in SORT_KEYS else "created",
            order="asc" if text("order") == "asc" else "desc",
            page=max(1, number("page", 1)),
            size=size if size in PAGE_SIZES else 50,
        )

    def engine_params(self) -> dict[str, Any]:
        tags = ",".join(t.strip() for t in self.tags.split(",") if t.strip())
        return {
            "type": "run", "search": self.q, "templateId": self.template, "modelId": self.model,
            "tags": tags,
            "createdAfter": f"{self.after}T00:00:00Z" if self.after else "",
            "createdBefore": f"{self.before}T23:59:59.999Z" if self.before else "",
            "sortBy": self.sort, "sortOrder": self.order,
            "limit": self.size, "skip": (self.page - 1) * self.size,
        }

    def url(self, **changes: Any) -> str:
        q = replace(self, **changes)
        defaults = RunQuery()
        params = {k: v for k, v in asdict(q).items() if v != getattr(defaults, k)}
        return "/runs" + (f"?{urlencode(params)}" if params else "")

    def sort_url(self, key: str) -> str:
        order = "asc" if self.sort == key and self.order == "desc" else "desc"
        return self.url(sort=key, order=order, page=1)

    @property
    def filtered(self) -> bool:
        return any((self.q, self.template, self.model, self.tags, self.after, self.before))


def show_parameter(value: Any) -> str:
    """
    A parameter value in a runs-table cell: scalars in full, long arrays abbreviated.

    >>> show_parameter(12), show_parameter(0.5), show_parameter([1, 2.5]), show_parameter(list(range(9)))
    ('12', '0.5', '[1, 2.5]', '[0, 1, 2, … 9 values]')
    >>> show_parameter(None), show_parameter({"a": 1})
    ('—', '{"a": 1}')
    """
    if value is None:
        return "—"
    if isinstance(value, list):
        shown = [show_parameter(v) for v in value[:ARRAY_SHOWN + 1]]
        if len(value) <= ARRAY_SHOWN + 1:
            return "[" + ", ".join(shown) + "]"
        return "[" + ", ".join(shown[:ARRAY_SHOWN]) + f", … {len(value)} values]"
    if isinstance(value, dict):
        return json.dumps(value, ensure_ascii=False)
    return fmt_number(value)


def parameter_columns(runs: list[dict[str, Any]]) -> list[str]:
    """
    The parameters whose values differ among ``runs`` (first-seen order): the
    columns that tell runs of one template apart. A run without the parameter
    (or without provenance parameters) counts as one more distinct value.

    >>> parameter_columns([{"parameters": {"bins": 6, "seats": 150}}, {"parameters": {"bins": 12, "seats": 150}}])
    ['bins']
    >>> parameter_columns([{"parameters": {"a": 1}}, {"parameters": None}])
    ['a']
    >>> parameter_columns([{"parameters": {"a": 1}}])
    []
    """
    names: list[str] = []
    for run in runs:
        params = run.get("parameters")
        if isinstance(params, dict):
            names.extend(str(k) for k in params if str(k) not in names)
    out = []
    for name in names:
        seen = set()
        for run in runs:
            params = run.get("parameters")
            value = params.get(name) if isinstance(params, dict) else None
            seen.add(json.dumps(value, sort_keys=True, default=str))
        if len(seen) > 1:
            out.append(name)
    return out


def _canonical(value: Any) -> str:
    """A value in one spelling, so that 12 and 12.0 (or [1, 2] and [1.0, 2.0]) compare equal."""
    def norm(v: Any) -> Any:
        if isinstance(v, bool) or v is None or isinstance(v, str):
            return v
        if isinstance(v, int | float):
            return float(v)
        if isinstance(v, list | tuple):
            return [norm(x) for x in v]
        if isinstance(v, dict):
            return {str(k): norm(x) for k, x in v.items()}
        return str(v)
    return json.dumps(norm(value), sort_keys=True)


def _same(value: Any, default: Any) -> bool:
    """
    Whether a parameter is at its default; a per-bin array is when it is its default
    repeated or cut to the grid (as Sim fits untouched arrays when bins change).

    >>> _same([1, 2, 1, 2], [1, 2]), _same([1, 2, 3], [1, 2]), _same(12, 12.0)
    (True, False, True)
    """
    if isinstance(value, list) and isinstance(default, list) and value and default:
        return all(_canonical(v) == _canonical(default[i % len(default)]) for i, v in enumerate(value))
    return _canonical(value) == _canonical(default)


def run_title(run: dict[str, Any], defaults: dict[str, Any] | None, most: int = 3) -> str | None:
    """
    A run named by what made it: its template and the parameters changed from the
    template's defaults (None without a template in its provenance).

    >>> run_title({"templateId": "transportation-basic", "parameters": {"demandRate": 12, "bins": 6}},
    ...           {"demandRate": 10, "bins": 6})
    'transportation-basic · demandRate=12'
    >>> run_title({"templateId": "t", "parameters": {"a": 1.0}}, {"a": 1})
    't · defaults'
    >>> run_title({"templateId": "t", "parameters": {"a": 2, "b": 3, "c": 4, "d": 5}}, {}, most=2)
    't · a=2, b=3, +2 more'
    """
    template = run.get("templateId")
    if not template:
        return None
    given = run.get("parameters")
    params: dict[str, Any] = given if isinstance(given, dict) else {}
    if defaults is None:  # the template's defaults are unknown (Sim down, or the template gone)
        return str(template)
    changed = [f"{k}={show_parameter(v)}" for k, v in params.items()
               if k not in defaults or not _same(v, defaults[k])]
    if not changed:
        return f"{template} · defaults"
    more = f", +{len(changed) - most} more" if len(changed) > most else ""
    return f"{template} · {', '.join(changed[:most])}{more}"


async def _defaults(sim: Sim, template_ids: set[str]) -> dict[str, dict[str, Any]]:
    """Each template's parameter defaults (a template Sim cannot describe is left out)."""
    found = await asyncio.gather(*(probe(sim.template(t)) for t in sorted(template_ids)))
    out: dict[str, dict[str, Any]] = {}
    for tid, (tpl, _) in zip(sorted(template_ids), found, strict=True):
        if isinstance(tpl, dict):
            out[tid] = {p.name: p.default for p in parameters_from_schema(tpl.get("parameters") or [])}
    return out


@router.get("/runs", response_class=HTMLResponse)
async def runs_list(request: Request, engine: Engine, sim: Sim) -> HTMLResponse:
    query = RunQuery.from_params(request.query_params)
    listing, (templates, _) = await asyncio.gather(
        engine.artifacts(query.engine_params()), probe(sim.templates()),
    )
    total = int(listing.get("total", 0))
    pages = max(1, -(-total // query.size))
    template_ids = sorted({str(t.get("id")) for t in templates or []} | (
        {query.template} if query.template else set()))
    runs = [r for r in listing.get("artifacts", []) if isinstance(r, dict)]
    # Filtered by one template, the parameters that differ are what set its runs apart.
    columns = parameter_columns(runs) if query.template else []
    defaults = await _defaults(sim, {str(r["templateId"]) for r in runs if r.get("templateId")})
    ctx = {
        "title": "Runs",
        "query": query,
        "runs": runs,
        "param_columns": columns,
        "param_cells": {str(r.get("id")): {name: _cell(r, name) for name in columns} for r in runs},
        "run_titles": {str(r.get("id")): run_title(r, defaults.get(str(r.get("templateId")))) for r in runs},
        "total": total,
        "pages": pages,
        "template_ids": template_ids,
        "template_titles": {str(t.get("id")): t.get("title") for t in templates or []},
        "deleted": request.query_params.get("deleted", ""),
        "page_sizes": PAGE_SIZES,
    }
    return page(request, "_runs_table.html" if is_fragment(request) else "runs.html", ctx)


def _cell(run: dict[str, Any], name: str) -> tuple[str, str]:
    """(shown text, full text for the tooltip) of one parameter of one run."""
    params = run.get("parameters")
    value = params.get(name) if isinstance(params, dict) else None
    full = show_parameter(value) if not isinstance(value, list) else ", ".join(map(show_parameter, value))
    return show_parameter(value), full


def _seed(text: Any) -> int | None:
    raw = str(text or "").strip()
    if not raw:
        return None
    try:
        return int(raw)
    except ValueError:
        raise ValueError(f"Seed must be a whole number, got '{raw}'.") from None


def _flag(form: FormData, name: str) -> bool:
    values = [v for v in form.getlist(name) if isinstance(v, str)]
    return bool(values) and values[-1].lower() in ("on", "true", "1", "yes")


@router.post("/runs/new")
async def run_generated(request: Request, engine: Engine, sim: Sim) -> Response:
    """Run a model from Sim's store: fetch model + provenance, post both to Engine (then its what-if if asked)."""
    form = await request.form()
    template_id = str(form.get("templateId") or "")
    model_hash = str(form.get("hash") or "")
    try:
        seed = _seed(form.get("seed"))
    except ValueError as exc:
        return page(request, "error.html", {"title": "Invalid seed", "message": str(exc)},
                    status=400)
    stored = await sim.model(template_id, model_hash)
    result = await engine.run(str(stored.get("model", "")), provenance=stored.get("provenance"),
                              seed=seed, sample_pmf=_flag(form, "samplePmf"))
    # A what-if moves a stored run's parameters (its colours and charts compare against that run).
    then = "/whatif" if form.get("then") == "whatif" else ""
    return RedirectResponse(f"/runs/{path_id(str(result['runId']))}{then}", status_code=303)


@dataclass(frozen=True)
class YamlForm:
    """What the Run YAML form sent, kept so a re-rendered page shows it again."""

    text: str = ""
    seed: str = ""
    sample: bool = False
    provenance: str = ""


def _yaml_page(request: Request, form: YamlForm, *, problems: list[Any] | None = None,
               message: str = "", valid: bool | None = None, status: int = 200) -> HTMLResponse:
    problems = problems or []
    return page(request, "run_yaml.html", {
        "title": "Run YAML",
        "yaml_text": form.text,
        "problems": problems,
        "lines": highlight(form.text, [(p.line, p.message) for p in problems]) if problems else [],
        "message": message,
        "valid": valid,
        "seed": form.seed,
        "sample": form.sample,
        "provenance_text": form.provenance,
    }, status=status)


@router.get("/run-yaml", response_class=HTMLResponse)
async def run_yaml_form(request: Request) -> HTMLResponse:
    return _yaml_page(request, YamlForm())


@router.post("/run-yaml")
async def run_yaml(request: Request, engine: Engine) -> Response:
    async with request.form() as data:
        text = str(data.get("yaml") or "")
        upload = data.get("file")
        if isinstance(upload, UploadFile) and upload.filename:
            raw = await upload.read(MAX_UPLOAD_BYTES + 1)
            if len(raw) > MAX_UPLOAD_BYTES:
                return _yaml_page(request, YamlForm(), message="The file is larger than 10 MB.",
                                  status=413)
            text = raw.decode("utf-8-sig", errors="replace")
        form = YamlForm(text, str(data.get("seed") or ""), _flag(data, "samplePmf"),
                        str(data.get("provenance") or "").strip())
        action = data.get("action")
    if not text.strip():
        return _yaml_page(request, form, message="Paste a model or choose a file.", status=400)
    try:
        seed = _seed(form.seed)
        provenance = json.loads(form.provenance) if form.provenance else None
        if provenance is not None and not isinstance(provenance, dict):
            raise ValueError("Provenance must be a JSON object.")
    except json.JSONDecodeError as exc:
        return _yaml_page(request, form, message=f"Provenance is not valid JSON: {exc.msg}.",
                          status=400)
    except ValueError as exc:
        return _yaml_page(request, form, message=str(exc), status=400)
    try:
        if action == "validate":
            report = await engine.validate(text)
            problems = [UpstreamProblem.from_json(p) for p in report.get("problems") or []]
            valid = bool(report.get("valid"))
            return _yaml_page(request, form, problems=problems, valid=valid,
                              message="The model is valid." if valid else "The model has problems.")
        result = await engine.run(text, provenance=provenance, seed=seed, sample_pmf=form.sample)
    except ServiceProblem as exc:
        # An invalid model is this page's business: show the located problems on the text.
        if exc.status not in (400, 413, 422):
            raise
        summary = (exc.detail or exc.title).splitlines()[0] if exc.errors else (exc.detail or exc.title)
        return _yaml_page(request, form, problems=exc.errors, valid=False, message=summary, status=400)
    return RedirectResponse(f"/runs/{path_id(str(result['runId']))}", status_code=303)


@router.get("/runs/{run_id}/delete", response_class=HTMLResponse)
async def delete_confirm(request: Request, run_id: str, engine: Engine) -> HTMLResponse:
    detail = await engine.run_detail(run_id)
    return page(request, "delete.html", {"title": "Delete run", "run_id": run_id,
                                         "provenance": detail.get("provenance") or {},
                                         "run": detail.get("run") or {}})


@router.post("/runs/{run_id}/delete")
async def delete(run_id: str, engine: Engine) -> Response:
    await engine.delete_run(run_id)
    return RedirectResponse(f"/runs?{urlencode({'deleted': run_id})}", status_code=303)
