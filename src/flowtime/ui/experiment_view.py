"""
An Engine experiment answer -> what its page shows: the summary, the table page and the charts' data.

The page embeds only what its charts draw (``chart_data``): the table, the
kind's own answer, Monte Carlo's bands and histograms, the observed series of a
fit - never the captured series of every point, which can be most of a large
answer. The table is paged on the server (``TABLE_PAGE`` rows, ``?tp=N``) with a
button per row that opens the point as a run.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

TABLE_PAGE = 25
LIVE = ("queued", "running", "cancelling")


@dataclass(frozen=True)
class TablePage:
    columns: list[str]
    rows: list[tuple[int, list[Any]]]  # (point index, values)
    number: int
    pages: int
    total: int
    size: int = TABLE_PAGE


def table_page(result: dict[str, Any], wanted: int) -> TablePage:
    table = result.get("table") or {}
    rows = table.get("rows") or []
    pages = max(1, -(-len(rows) // TABLE_PAGE))
    number = min(max(1, wanted), pages)
    start = (number - 1) * TABLE_PAGE
    shown = [(start + i, list(r)) for i, r in enumerate(rows[start:start + TABLE_PAGE])]
    return TablePage(list(table.get("columns") or []), shown, number, pages, len(rows))


def answer_point(result: dict[str, Any]) -> int | None:
    """The table row of the numerical kinds' answer (its parameters exactly), to open it as a run."""
    answer = result.get("answer") or {}
    names = list(result.get("parameters") or [])
    if isinstance(answer.get("parameters"), dict):
        x = [answer["parameters"].get(n) for n in names]
    elif "x" in answer and len(names) == 1:
        x = [answer["x"]]
    else:
        return None
    for k, row in enumerate((result.get("table") or {}).get("rows") or []):
        if list(row[:len(names)]) == x:
            return k
    return None


def chart_data(detail: dict[str, Any], grid: dict[str, Any] | None) -> dict[str, Any]:
    """What ``static/analysis.js`` draws for this experiment (its kind decides which charts)."""
    result = detail.get("result") or {}
    spec = result.get("spec") or {}
    out: dict[str, Any] = {
        "id": detail.get("id"), "kind": result.get("kind") or detail.get("kind"),
        "parameters": result.get("parameters") or [], "metrics": result.get("metrics") or [],
        "table": result.get("table") or {"columns": [], "rows": []}, "grid": grid,
        "settings": spec.get("settings") or {},
    }
    for key in ("answer", "bands", "percentiles", "histograms"):
        if key in result:
            out[key] = result[key]
    if out["kind"] == "fit":
        out["observed"] = ((spec.get("settings") or {}).get("observed") or {}).get("values")
    return out


def summary_rows(detail: dict[str, Any]) -> list[tuple[str, Any]]:
    """The answer card of the numerical kinds: (label, value) pairs."""
    result = detail.get("result") or {}
    answer = result.get("answer") or {}
    kind = result.get("kind")
    rows: list[tuple[str, Any]] = []
    if kind == "goalseek":
        rows = [("parameter", answer.get("parameter")), ("value found", answer.get("x")),
                ("metric", answer.get("metric")), ("metric there", answer.get("value")),
                ("target", answer.get("target")), ("residual", answer.get("residual")),
                ("converged", answer.get("converged")), ("solver", answer.get("flag")),
                ("evaluations", answer.get("evaluations"))]
    elif kind in ("optimize", "fit"):
        params = answer.get("parameters") or {}
        rows = [(f"{name}", v) for name, v in params.items()]
        if kind == "optimize":
            rows += [(f"{answer.get('goal')} {answer.get('metric')}", answer.get("objective"))]
        else:
            rows += [(f"loss ({answer.get('loss')})", answer.get("value")), ("R²", answer.get("r2"))]
        rows += [("method", answer.get("method")), ("converged", answer.get("converged")),
                 ("iterations", answer.get("iterations")), ("evaluations", answer.get("evaluations")),
                 ("message", answer.get("message"))]
    elif kind == "sensitivity":
        rows = [("method", answer.get("method")), ("evaluations", answer.get("evaluations"))]
    elif kind == "montecarlo":
        rows = [("replications", result.get("points")), ("seed", result.get("seed")),
                ("percentiles", ", ".join(f"p{q:g}" for q in result.get("percentiles") or []))]
    elif kind == "sweep":
        rows = [("points", result.get("points")), ("parameters", ", ".join(result.get("parameters") or []))]
    return rows
