"""
Compare runs (Engine ``/v1/runs/compare``): two (``?a=&b=``, deltas A − B) or several
(``?run=..&run=..&baseline=..``, deltas against the baseline). How their models
differ node by node (overrides included), overlaid and delta charts per series,
the series ranked by how much they changed, and the runs' provenance parameters
side by side with the differences marked. Runs on different grids come back from
the Engine resampled onto their common span; the page shows its statement.

The Engine compares one page of the common series per request (its ``page``
field); runs with more get Previous/Next links (``?offset=N``).
"""

from __future__ import annotations

import asyncio
import string
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from flowtime.ui.clients import ServiceProblem
from flowtime.ui.deps import Engine
from flowtime.ui.forms import to_text
from flowtime.ui.pages.home import probe
from flowtime.ui.render import page

router = APIRouter()
MAX_RUNS = 8  # as the Engine's MAX_COMPARED_RUNS


@dataclass(frozen=True)
class Row:
    """One line of a side-by-side table: a name and one value per run."""

    name: str
    values: tuple[str, ...]

    @property
    def differs(self) -> bool:
        return len(set(self.values)) > 1


def side_by_side(*maps: dict[str, Any]) -> list[Row]:
    """
    Rows for every key of any mapping, in first-seen order.

    >>> [(r.name, r.differs) for r in side_by_side({"x": 1, "y": [1, 2]}, {"y": [1, 3], "z": True})]
    [('x', True), ('y', True), ('z', True)]
    >>> side_by_side({"k": 1}, {"k": 1}, {"k": 2})[0].values
    ('1', '1', '2')
    """
    keys = list(dict.fromkeys(k for m in maps for k in m))
    return [Row(k, tuple(to_text(m[k]) if k in m else "—" for m in maps)) for k in keys]


PROVENANCE_FIELDS = (("Template", "templateId"), ("Template version", "templateVersion"),
                     ("Model id", "modelId"), ("Generated at", "generatedAt"),
                     ("Generator", "generator"))


def _refuse(request: Request, message: str) -> HTMLResponse:
    return page(request, "error.html", {"title": "Pick runs to compare", "message": message, "back": "/runs"},
                status=400)


@router.get("/compare", response_class=HTMLResponse)
async def compare(request: Request, engine: Engine) -> HTMLResponse:
    params = request.query_params
    picked = list(dict.fromkeys(r for r in params.getlist("run") if r))
    if params.get("a") or params.get("b"):
        picked = [params.get("a") or "", params.get("b") or ""]
    try:
        offset = max(0, int(params.get("offset") or 0))
    except ValueError:
        offset = 0
    baseline = params.get("baseline") or ""
    if len(picked) < 2 or not all(picked) or len(set(picked)) != len(picked):
        return _refuse(request, "Select two or more different runs in the runs list, then press Compare.")
    if len(picked) > MAX_RUNS:
        return _refuse(request, f"Compare at most {MAX_RUNS} runs at once; {len(picked)} were selected.")
    if baseline and baseline not in picked:
        return _refuse(request, f"The baseline {baseline} is not one of the compared runs.")
    many = len(picked) > 2 or bool(baseline)
    base = (baseline or picked[0]) if many else picked[1]
    try:
        result, *details = await asyncio.gather(
            engine.compare_many(picked, base, offset=offset) if many else
            engine.compare(picked[0], picked[1], offset=offset),
            *(probe(engine.run_detail(r)) for r in picked))
    except ServiceProblem as exc:
        if exc.status != 409:
            raise
        return page(request, "error.html", {  # no common span: say so, and offer the model diff
            "title": "These runs cannot be compared", "message": exc.detail or exc.title,
            "hint": "Runs are compared on the time span they share; pick runs whose grids overlap.",
            "back": "/runs"}, status=409)
    view = _normalise(result, picked, base, many)
    order = {str(r.get("id")): i for i, r in enumerate(view["ranking"])}
    view["series"].sort(key=lambda s: order.get(str(s.get("id")), len(order)))
    query = [*(("run", r) for r in picked), ("baseline", base)] if many else [("a", picked[0]), ("b", picked[1])]
    paging = _paging(result.get("page"), offset)
    runs = []
    for i, (rid, (detail, _)) in enumerate(zip(picked, details, strict=True)):
        runs.append({"id": rid, "label": _letter(i), "detail": detail or {}, "baseline": rid == base})
    provs = [(view["who"].get(r) or {}).get("provenance") or ((d or {}).get("provenance") or {})
             for r, (d, _) in zip(picked, details, strict=True)]
    overrides = [(view["who"].get(r) or {}).get("overrides") or {} for r in picked]
    changed = [s for s in view["series"] if (s.get("maxAbsDeltaAny") or 0) != 0]
    resampling = result.get("resampling") if isinstance(result.get("resampling"), dict) else None
    return page(request, "compare.html", {
        "title": "Compare runs",
        "runs": runs,
        "many": many,
        "baseline": base,
        "a": picked[0],
        "b": picked[1],
        "query": urlencode(query),
        "swap_query": urlencode([("a", picked[1]), ("b", picked[0])]),
        "grid": result.get("grid") or {},
        "resampling": resampling,
        "series": view["series"],
        "ranking": view["ranking"],
        "max_delta": max((abs(float(r.get("maxAbsDelta") or 0)) for r in view["ranking"]), default=0.0),
        "changed_count": len(changed),
        "only_in_a": result.get("onlyInA") or [],
        "only_in_b": result.get("onlyInB") or [],
        "not_in_all": result.get("notInAll") or [],
        "paging": paging,
        "common_total": paging["total"] if paging else len(view["series"]),
        "meta_rows": [Row(label, tuple(to_text(p.get(key)) or "—" for p in provs)) for label, key in PROVENANCE_FIELDS],
        "param_rows": side_by_side(*(p.get("parameters") or {} for p in provs)),
        "override_rows": side_by_side(*overrides),
        "model_changes": view["changes"],
        "chart_data": {"runs": [{"id": r["id"], "label": r["label"]} for r in runs], "baseline": base,
                       "grid": result.get("grid") or {}, "resampled": bool(resampling and resampling.get("resampled")),
                       "series": [{k: s.get(k) for k in ("id", "label", "unit", "how", "values", "deltas",
                                                         "maxAbsDeltaAny")} for s in view["series"]]},
    })


def _letter(i: int) -> str:
    return string.ascii_uppercase[i] if i < 26 else str(i + 1)


def _normalise(result: dict[str, Any], picked: list[str], base: str, many: bool) -> dict[str, Any]:
    """
    One shape for both Engine answers: ``who`` by run id, series with ``values`` and
    ``deltas`` by run id, the ranking, and model changes per compared run against the baseline.
    """
    series: list[dict[str, Any]] = []
    if many:
        who = {str(r.get("runId")): r for r in result.get("runs") or [] if isinstance(r, dict)}
        for s in result.get("series") or []:
            if isinstance(s, dict):
                series.append({**s, "label": str(s.get("id", "")).split("@")[0]})
        changes = []
        for rid, found in (result.get("modelChanges") or {}).items():
            found = found if isinstance(found, dict) else {}
            listed = found.get("changes")
            changes.append({"run": rid, "known": isinstance(listed, list), "note": found.get("note"),
                            "changes": [c for c in listed or [] if isinstance(c, dict)]})
        ranking = [r for r in result.get("ranking") or [] if isinstance(r, dict)]
        return {"who": who, "series": series, "ranking": ranking, "changes": changes}
    a, b = picked
    who = {a: result.get("a") or {}, b: result.get("b") or {}}
    for s in result.get("series") or []:
        if isinstance(s, dict):
            series.append({"id": s.get("id"), "label": str(s.get("id", "")).split("@")[0],
                           "values": {a: s.get("a"), b: s.get("b")}, "deltas": {a: s.get("delta")},
                           "maxAbsDelta": {a: s.get("maxAbsDelta")}, "maxAbsDeltaAny": s.get("maxAbsDelta")})
    listed = result.get("modelChanges")
    changes = [{"run": a, "known": isinstance(listed, list), "note": result.get("modelNote"),
                "changes": [c for c in listed or [] if isinstance(c, dict)]}]
    ranking = [r for r in result.get("ranking") or [] if isinstance(r, dict)]
    return {"who": who, "series": series, "ranking": ranking, "changes": changes}


def _paging(page: Any, asked: int) -> dict[str, Any] | None:
    """
    The Engine's ``page`` with Previous/Next offsets, or None when it sent none
    (or ignored the offset asked for).

    >>> _paging({"offset": 200, "limit": 200, "returned": 200, "total": 900, "nextOffset": 400}, 200)["prev"]
    0
    >>> _paging({"offset": 0, "limit": 200, "returned": 3, "total": 3}, 400) is None
    True
    """
    if not isinstance(page, dict) or not all(isinstance(page.get(k), int) for k in ("offset", "limit", "total")):
        return None
    if page["offset"] != asked:
        return None
    limit = max(1, int(page["limit"]))
    nxt = page.get("nextOffset")
    return {**page, "prev": max(0, asked - limit) if asked > 0 else None,
            "next": nxt if isinstance(nxt, int) and nxt > asked else None,
            "first": asked + 1, "last": asked + int(page.get("returned") or 0)}
