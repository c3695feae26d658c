"""
Several stored runs compared at once: every run's values of each common series
over the runs' common span, and each run's delta against a chosen baseline.

Runs on different grids are brought together by ``alignment`` (common span,
coarsest bin, flows summed and levels/ratios averaged) and the answer says so in
``resampling.statement``. Bounded like the two-run comparison: at most
``MAX_COMPARED_RUNS`` runs and one page of the series common to all of them.

For each common series and each run R other than the baseline B::

    deltas[R] = R - B        maxAbsDelta[R] = max |R - B|

and the series ranks by the largest of its ``maxAbsDelta`` values.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from flowtime.artifacts.alignment import (
    align_runs,
    aligned,
    how_of,
    level_series,
    resampling_json,
    run_axis,
    target_grid,
)
from flowtime.artifacts.compare import (
    MAX_COMPARED_SERIES,
    MAX_LISTED_IDS,
    _entries,
    _model_changes,
    delta_of,
    json_number,
    json_values,
    series_limit,
    try_stored_model,
)
from flowtime.errors import QueryError

if TYPE_CHECKING:
    from flowtime.artifacts.registry import Registry

MAX_COMPARED_RUNS = 8


def compare_many(registry: Registry, run_ids: list[str], baseline: str | None = None, *, offset: int = 0,
                 limit: int | None = MAX_COMPARED_SERIES) -> dict[str, Any]:
    """
    Compare ``run_ids`` (2 to ``MAX_COMPARED_RUNS`` different runs) against ``baseline``
    (one of them; the first when None). ``QueryError`` for a bad choice of runs,
    ``ConflictError`` when they share no time span.
    """
    ids = list(dict.fromkeys(run_ids))
    if len(ids) != len(run_ids):
        raise QueryError("run", "a run is listed twice: compare each run once")
    if not 2 <= len(ids) <= MAX_COMPARED_RUNS:
        raise QueryError("run", f"compare between 2 and {MAX_COMPARED_RUNS} runs, got {len(ids)}")
    base = baseline or ids[0]
    if base not in ids:
        raise QueryError("baseline", f"the baseline {base} is not one of the compared runs ({', '.join(ids)})")
    runs = {rid: registry.run_json(rid) for rid in ids}
    axes = [run_axis(registry, rid) for rid in ids]
    alignment, start = align_runs(axes)

    entries = {rid: _entries(registry, rid) for rid in ids}
    first = entries[ids[0]]
    common = [sid for sid in first if all(sid in entries[rid] for rid in ids[1:])]
    not_in_all = sorted({sid for rid in ids for sid in entries[rid]} - set(common))
    count = series_limit(sum(ax.axis.bins for ax in axes), limit)
    start_at = max(0, offset)
    chosen = common[start_at:] if count is None else common[start_at:start_at + count]
    models = {rid: try_stored_model(registry, rid) for rid in ids}
    levels = frozenset().union(*(level_series(m) for m in models.values()))

    series: list[dict[str, Any]] = []
    tops: dict[str, float] = {}  # each series' largest max |delta| (NaN when none is defined)
    for sid in chosen:
        how = how_of(first[sid], levels)
        values = {rid: aligned(registry.series_values(rid, entries[rid][sid]), alignment, i, how)
                  for i, rid in enumerate(ids)}
        deltas = {rid: delta_of(sid, values[rid], values[base]) for rid in ids if rid != base}
        worst = [d.max_abs_delta for d in deltas.values()]
        top = max((w for w in worst if not math.isnan(w)), default=math.nan)
        tops[sid] = top
        series.append({
            "id": sid, "how": how, "unit": first[sid].get("unit"), "kind": first[sid].get("kind"),
            "values": {rid: json_values(v) for rid, v in values.items()},
            "deltas": {rid: json_values(d.delta) for rid, d in deltas.items()},
            "maxAbsDelta": {rid: json_number(d.max_abs_delta) for rid, d in deltas.items()},
            "sumDelta": {rid: json_number(d.sum_delta) for rid, d in deltas.items()},
            "maxAbsDeltaAny": json_number(top),
        })
    ranking = sorted(series, key=lambda s: (math.isnan(tops[s["id"]]), -(0.0 if math.isnan(tops[s["id"]])
                                                                          else tops[s["id"]]), s["id"]))
    changes = {}
    for rid in ids:
        if rid != base:
            found, note = _model_changes(registry, rid, base, models[rid], models[base])
            changes[rid] = {"changes": None if found is None else [c.to_json() for c in found], "note": note}
    following = start_at + len(chosen)
    return {
        "runs": [_who(registry, rid, runs[rid]) for rid in ids],
        "baseline": base,
        "grid": target_grid(alignment, start),
        "resampling": resampling_json(axes, alignment, start, [s["id"] for s in series if s["how"] == "mean"]),
        "series": series,
        "ranking": [{"id": s["id"], "maxAbsDelta": s["maxAbsDeltaAny"]} for s in ranking],
        "notInAll": not_in_all[:MAX_LISTED_IDS],
        "modelChanges": changes,
        "page": {"offset": start_at, "limit": count if count is not None else len(common), "returned": len(chosen),
                 "total": len(common), "truncated": len(chosen) < len(common),
                 "nextOffset": following if following < len(common) else None, "notInAllCount": len(not_in_all)},
    }


def _who(registry: Registry, run_id: str, run: dict[str, Any]) -> dict[str, Any]:
    return {"runId": run_id, "title": run.get("title"), "provenance": registry.provenance(run_id),
            "overrides": run.get("overrides") or {}, "grid": run.get("grid"), "createdUtc": run.get("createdUtc")}
