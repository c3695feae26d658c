"""
Run comparison: the same series in two runs, bin by bin.

Pure arithmetic over arrays (``compare_series``) plus one function that reads
two runs from a registry (``compare_runs``). Series are matched by node id.
For each common series::

    delta    = a - b
    relDelta = (a - b) / |b|, and 0 wherever b == 0
    sumDelta, meanDelta = sum and mean of delta
    maxAbsDelta = max |delta|

NaN and infinities propagate into the statistics as they would in NumPy (and
are written as JSON null); a series whose ``maxAbsDelta`` is NaN ranks last.

``compare_runs`` does bounded work per call: one page of the common series (at
most ``MAX_COMPARED_SERIES``, fewer on long grids so that no more than
``MAX_COMPARED_VALUES`` values per run are read), found from the two series
indexes without reading any other series. The answer's ``page`` says which
slice it holds and whether there is more; the ranking covers that slice.

>>> c = compare_series({"x": np.array([3.0, 5.0])}, {"x": np.array([1.0, 0.0])})
>>> s = c.series[0]
>>> s.delta.tolist(), s.rel_delta.tolist(), s.sum_delta, s.max_abs_delta
([2.0, 5.0], [2.0, 0.0], 7.0, 5.0)
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from flowtime.artifacts import layout
from flowtime.artifacts.alignment import (
    align_runs,
    aligned,
    how_of,
    level_series,
    resampling_json,
    run_axis,
    target_grid,
)
from flowtime.artifacts.state import utc_text
from flowtime.errors import ConflictError, FlowTimeError
from flowtime.model.diff import Change, diff_models
from flowtime.model.schema import Model
from flowtime.records import record

if TYPE_CHECKING:
    from flowtime.artifacts.registry import Registry

Series = npt.NDArray[np.float64]
GRID_KEYS = ("bins", "binSize", "binUnit")
# Work bounds of one comparison (SECURITY.md): series compared, values read per run,
# and ids listed as only in one run (the counts are always given in full).
MAX_COMPARED_SERIES = 200
MAX_COMPARED_VALUES = 1_000_000
MAX_LISTED_IDS = 1000


def json_number(v: float) -> float | None:
    """A float for JSON: NaN and infinities become None (null)."""
    return v if math.isfinite(v) else None


def json_values(arr: Series) -> list[float | None]:
    """
    An array as a JSON list, non-finite values as None.

    >>> json_values(np.array([1.0, np.nan, np.inf]))
    [1.0, None, None]
    """
    values: list[float | None] = arr.tolist()
    if not bool(np.isfinite(arr).all()):
        values = [v if v is not None and math.isfinite(v) else None for v in values]
    return values


@record
class SeriesDelta:
    id: str
    a: Series
    b: Series
    delta: Series
    rel_delta: Series
    sum_delta: float
    mean_delta: float
    max_abs_delta: float

    def summary(self) -> dict[str, Any]:
        return {"id": self.id, "maxAbsDelta": json_number(self.max_abs_delta),
                "sumDelta": json_number(self.sum_delta), "meanDelta": json_number(self.mean_delta)}

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id, "a": json_values(self.a), "b": json_values(self.b),
            "delta": json_values(self.delta), "relDelta": json_values(self.rel_delta),
            "sumDelta": json_number(self.sum_delta), "meanDelta": json_number(self.mean_delta),
            "maxAbsDelta": json_number(self.max_abs_delta),
        }


@record
class Comparison:
    """Common series in A's order, the ranking (most changed first), and the unmatched ids."""

    series: list[SeriesDelta]
    ranking: list[SeriesDelta]
    only_in_a: list[str]
    only_in_b: list[str]


def delta_of(series_id: str, a: Series, b: Series) -> SeriesDelta:
    if a.shape != b.shape:
        raise ConflictError(f"series '{series_id}' has {a.size} values in A but {b.size} in B")
    with np.errstate(all="ignore"):
        delta = a - b
        absb = np.abs(b)
        rel = np.divide(delta, absb, out=np.zeros_like(delta), where=absb != 0)
        n = delta.size
        total = float(delta.sum()) if n else 0.0
        mean = total / n if n else 0.0
        max_abs = float(np.abs(delta).max()) if n else 0.0
    return SeriesDelta(series_id, a, b, delta, rel, total, mean, max_abs)


def _rank_key(d: SeriesDelta) -> tuple[int, float, str]:
    if math.isnan(d.max_abs_delta):
        return (1, 0.0, d.id)
    return (0, -d.max_abs_delta, d.id)


def compare_series(a: Mapping[str, Series], b: Mapping[str, Series]) -> Comparison:
    """Compare series by id; ranking is by ``maxAbsDelta`` descending, then id."""
    common = [sid for sid in a if sid in b]
    deltas = [delta_of(sid, a[sid], b[sid]) for sid in common]
    return Comparison(
        series=deltas,
        ranking=sorted(deltas, key=_rank_key),
        only_in_a=[sid for sid in a if sid not in b],
        only_in_b=[sid for sid in b if sid not in a],
    )


@record
class ComparePage:
    """
    Which slice of the common series a comparison holds: ``total`` common
    series, ``returned`` of them from ``offset``; ``truncated`` when some were left out.
    """

    offset: int
    limit: int
    returned: int
    total: int
    only_in_a: int
    only_in_b: int

    @property
    def truncated(self) -> bool:
        return self.returned < self.total

    def to_json(self) -> dict[str, Any]:
        following = self.offset + self.returned
        return {"offset": self.offset, "limit": self.limit, "returned": self.returned,
                "total": self.total, "truncated": self.truncated,
                "nextOffset": following if following < self.total else None,
                "onlyInACount": self.only_in_a, "onlyInBCount": self.only_in_b}


@record
class RunComparison:
    """
    Two stored runs compared: who they are (with their overrides), the shared
    grid, how their models differ node by node, and the series deltas.
    ``model_changes`` is None when a stored model can no longer be read.
    """

    a: dict[str, Any]
    b: dict[str, Any]
    grid: dict[str, Any]
    comparison: Comparison
    page: ComparePage | None = None
    model_changes: list[Change] | None = None
    model_note: str | None = None
    resampling: dict[str, Any] | None = None  # what was done to bring two grids together (alignment)

    def to_json(self) -> dict[str, Any]:
        c = self.comparison
        body: dict[str, Any] = {
            "a": self.a, "b": self.b, "grid": self.grid,
            "modelChanges": None if self.model_changes is None else [m.to_json() for m in self.model_changes],
            "series": [d.to_json() for d in c.series],
            "ranking": [d.summary() for d in c.ranking],
            "onlyInA": c.only_in_a, "onlyInB": c.only_in_b,
        }
        if self.model_note:
            body["modelNote"] = self.model_note
        if self.page is not None:
            body["page"] = self.page.to_json()
        if self.resampling is not None:
            body["resampling"] = self.resampling
        return body


def stored_model(registry: Registry, run_id: str) -> Model:
    """
    The model a stored run computed: its ``spec.yaml`` with the overrides of its
    ``run.json`` applied (an embedded provenance block was already cut out).
    """
    from flowtime.model.load import load_model
    from flowtime.model.overrides import apply_overrides

    text = registry.file_path(run_id, "spec.yaml").read_text(encoding="utf-8-sig")
    # a stored run's model was accepted once; its skipped outputs (if any) were warned about then
    model = load_model(text, f"{run_id}/spec.yaml", lenient_outputs=True).model
    overrides = registry.run_json(run_id).get("overrides") or {}
    return apply_overrides(model, overrides)[0] if isinstance(overrides, dict) else model


def model_diff(registry: Registry, a: str, b: str) -> dict[str, Any]:
    """
    The node-level differences of two stored runs' models (any grids), read from B
    (the baseline, as in the deltas A - B) to A, with each run's overrides.
    """
    changes, note = _model_changes(registry, a, b)
    out: dict[str, Any] = {
        "a": {"runId": a, "overrides": registry.run_json(a).get("overrides") or {}},
        "b": {"runId": b, "overrides": registry.run_json(b).get("overrides") or {}},
        "modelChanges": None if changes is None else [c.to_json() for c in changes],
    }
    if note:
        out["modelNote"] = note
    return out


def _model_changes(registry: Registry, a: str, b: str, model_a: Model | None = None,
                   model_b: Model | None = None) -> tuple[list[Change] | None, str | None]:
    """What changed from B's model to A's (None and a note when one cannot be read)."""
    try:
        return diff_models(model_b or stored_model(registry, b), model_a or stored_model(registry, a)), None
    except (FlowTimeError, OSError, UnicodeDecodeError) as exc:  # a spec this engine no longer reads
        return None, f"the models could not be compared: {str(exc).splitlines()[0][:200]}"


def series_limit(bins: int, limit: int | None = MAX_COMPARED_SERIES) -> int | None:
    """
    How many series one comparison reads on a grid of ``bins`` (None: all).

    >>> series_limit(2), series_limit(100_000), series_limit(10_000_000), series_limit(4, 10)
    (200, 10, 1, 10)
    """
    if limit is None:
        return None
    by_values = max(1, MAX_COMPARED_VALUES // max(1, bins))
    return max(1, min(limit, MAX_COMPARED_SERIES, by_values))


def compare_runs(registry: Registry, a: str, b: str, *, offset: int = 0,
                 limit: int | None = MAX_COMPARED_SERIES) -> RunComparison:
    """
    Compare runs ``a`` and ``b`` over one page of their common series (in A's
    index order); ``limit=None`` compares them all (for local callers such as
    the CLI). Runs on different grids are compared on their common span, in
    bins of the coarser size (``alignment``); ``ConflictError`` when they share none.
    """
    run_a, run_b = registry.run_json(a), registry.run_json(b)
    grid_a = run_a.get("grid") or {}
    axes = [run_axis(registry, a), run_axis(registry, b)]
    alignment, start = align_runs(axes)

    def who(run_id: str, run: dict[str, Any]) -> dict[str, Any]:
        return {"runId": run_id, "title": run.get("title"),
                "provenance": registry.provenance(run_id), "overrides": run.get("overrides") or {},
                "modelHash": run.get("modelHash"),
                "scenarioHash": run.get("scenarioHash"), "createdUtc": run.get("createdUtc")}

    entries_a, entries_b = _entries(registry, a), _entries(registry, b)
    common = [sid for sid in entries_a if sid in entries_b]
    only_a = [sid for sid in entries_a if sid not in entries_b]
    only_b = [sid for sid in entries_b if sid not in entries_a]
    count = series_limit(max(ax.axis.bins for ax in axes), limit)
    start_at = max(0, offset)
    chosen = common[start_at:] if count is None else common[start_at:start_at + count]
    model_a, model_b = try_stored_model(registry, a), try_stored_model(registry, b)
    levels = level_series(model_a) | level_series(model_b)
    hows = {sid: how_of(entries_a[sid], levels) for sid in chosen}
    comparison = compare_series(
        {sid: aligned(registry.series_values(a, entries_a[sid]), alignment, 0, hows[sid]) for sid in chosen},
        {sid: aligned(registry.series_values(b, entries_b[sid]), alignment, 1, hows[sid]) for sid in chosen})
    listed = MAX_LISTED_IDS if limit is not None else None
    comparison = Comparison(comparison.series, comparison.ranking, only_a[:listed], only_b[:listed])
    page = ComparePage(start_at, count if count is not None else len(common), len(chosen), len(common),
                       len(only_a), len(only_b))
    if alignment.resampled:
        grid = target_grid(alignment, start)
    else:
        grid = {k: grid_a.get(k) for k in (*GRID_KEYS, "binMinutes") if k in grid_a}
        grid["startTimeUtc"] = utc_text(start)
    changes, note = _model_changes(registry, a, b, model_a, model_b)
    resampling = resampling_json(axes, alignment, start, [sid for sid in chosen if hows[sid] == "mean"])
    return RunComparison(who(a, run_a), who(b, run_b), grid, comparison, page, changes, note, resampling)


def try_stored_model(registry: Registry, run_id: str) -> Model | None:
    """A run's model, or None when this engine can no longer read its spec."""
    try:
        return stored_model(registry, run_id)
    except (FlowTimeError, OSError, UnicodeDecodeError):
        return None


def _entries(registry: Registry, run_id: str) -> dict[str, dict[str, Any]]:
    """A run's series index entries by node id, in index order (the first of a repeated id)."""
    out: dict[str, dict[str, Any]] = {}
    for e in registry.series_index(run_id).get("series", []):
        if isinstance(e, dict):
            out.setdefault(layout.entry_name(e), e)
    return out
