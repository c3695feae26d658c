"""
Compare two runs (Engine ``/v1/runs/compare``): how their models differ node by
node (overrides included), overlaid and delta charts per series, the series
ranked by how much they changed, and the two runs' provenance parameters side
by side with the differences marked.

The Engine compares one page of the common series per request (its ``page``
field); runs with more get Previous/Next links (``?offset=N``).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from flowtime.ui.deps import Engine
from flowtime.ui.forms import to_text
from flowtime.ui.pages.home import probe
from flowtime.ui.render import page

router = APIRouter()


@dataclass(frozen=True)
class Row:
    """One line of a side-by-side table."""

    name: str
    a: str
    b: str

    @property
    def differs(self) -> bool:
        return self.a != self.b


def side_by_side(a: dict[str, Any], b: dict[str, Any]) -> list[Row]:
    """
    Rows for every key of either mapping, in first-seen order.

    >>> [(r.name, r.differs) for r in side_by_side({"x": 1, "y": [1, 2]}, {"y": [1, 3], "z": True})]
    [('x', True), ('y', True), ('z', True)]
    """
    keys = list(dict.fromkeys([*a.keys(), *b.keys()]))
    return [Row(k, to_text(a[k]) if k in a else "—", to_text(b[k]) if k in b else "—") for k in keys]


PROVENANCE_FIELDS = (("Template", "templateId"), ("Template version", "templateVersion"),
                     ("Model id", "modelId"), ("Generated at", "generatedAt"),
                     ("Generator", "generator"))


@router.get("/compare", response_class=HTMLResponse)
async def compare(request: Request, engine: Engine) -> HTMLResponse:
    params = request.query_params
    picked = [r for r in params.getlist("run") if r]
    a = params.get("a") or (picked[0] if picked else "")
    b = params.get("b") or (picked[1] if len(picked) > 1 else "")
    try:
        offset = max(0, int(params.get("offset") or 0))
    except ValueError:
        offset = 0
    if not a or not b or len(picked) > 2 or a == b:
        return page(request, "error.html", {
            "title": "Pick two runs",
            "message": "Select exactly two different runs in the runs list, then press Compare.",
            "back": "/runs",
        }, status=400)
    result, (run_a, _), (run_b, _) = await asyncio.gather(
        engine.compare(a, b, offset=offset), probe(engine.run_detail(a)), probe(engine.run_detail(b)),
    )
    paging = _paging(result.get("page"), offset)
    prov_a = (result.get("a") or {}).get("provenance") or (run_a or {}).get("provenance") or {}
    prov_b = (result.get("b") or {}).get("provenance") or (run_b or {}).get("provenance") or {}
    series = [s for s in result.get("series") or [] if isinstance(s, dict)]
    ranking = [r for r in result.get("ranking") or [] if isinstance(r, dict)]
    order = {str(r.get("id")): i for i, r in enumerate(ranking)}
    series.sort(key=lambda s: order.get(str(s.get("id")), len(order)))
    changed = [s for s in series if (s.get("maxAbsDelta") or 0) != 0]
    return page(request, "compare.html", {
        "title": "Compare runs",
        "a": a,
        "b": b,
        "run_a": run_a or {},
        "run_b": run_b or {},
        "grid": result.get("grid") or {},
        "series": series,
        "ranking": ranking,
        "max_delta": max((abs(float(r.get("maxAbsDelta") or 0)) for r in ranking), default=0.0),
        "changed_count": len(changed),
        "only_in_a": result.get("onlyInA") or [],
        "only_in_b": result.get("onlyInB") or [],
        "paging": paging,
        "common_total": paging["total"] if paging else len(series),
        "meta_rows": [Row(label, to_text(prov_a.get(key)) or "—", to_text(prov_b.get(key)) or "—")
                      for label, key in PROVENANCE_FIELDS],
        "param_rows": side_by_side(prov_a.get("parameters") or {}, prov_b.get("parameters") or {}),
        "override_rows": side_by_side((result.get("a") or {}).get("overrides") or {},
                                      (result.get("b") or {}).get("overrides") or {}),
        "model_changes": [c for c in result.get("modelChanges") or [] if isinstance(c, dict)],
        "model_changes_known": isinstance(result.get("modelChanges"), list),
        "model_note": result.get("modelNote"),
        "chart_data": {"a": a, "b": b, "grid": result.get("grid") or {},
                       "series": [{"id": s.get("id"), "label": str(s.get("id", "")).split("@")[0],
                                   "a": s.get("a"), "b": s.get("b"), "delta": s.get("delta"),
                                   "maxAbsDelta": s.get("maxAbsDelta")} for s in series]},
    })


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
