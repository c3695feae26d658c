"""
``RunState``: one stored run opened for the state API - its series as one
columnar block, the derived metrics per topology node and the analyser's
findings - read once and kept in a bounded LRU cache (runs are immutable).

``open_state(registry, run_id)`` reads ``spec.yaml``, ``run.json`` and every
series CSV of the run once. The model is reloaded from ``spec.yaml`` (leniently,
with the run's overrides); a ``file:`` series is served from the run's own
stored copy of it, so a run whose telemetry folder has gone still opens. When
the model cannot be reloaded at all the state keeps the stored series and says
why (``model_note``): the graph then lists series only and ``/state`` answers 409.

Runs written before the analyser existed have no coded findings in run.json:
their findings are computed on read (``findings_source == "analysed"``). The
metrics are always derived on read: the derived series a newer run stores are
the same numbers, and are not read.
"""

from __future__ import annotations

import re
import threading
from collections import OrderedDict
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

import numpy as np
import numpy.typing as npt

from flowtime.analysis.findings import Finding
from flowtime.artifacts import layout
from flowtime.artifacts.class_parts import node_classes
from flowtime.artifacts.registry import Registry, parse_series_csv
from flowtime.errors import SeriesFileError
from flowtime.model.analysis_settings import DEFAULT_ANALYSIS, AnalysisSettings
from flowtime.model.files import FileSeries, SeriesFiles, stem_of
from flowtime.model.limits import Limits
from flowtime.model.schema import BinUnit, Grid, Model
from flowtime.records import record

Block = npt.NDArray[np.float64]
# Bounds for re-reading a stored spec: it was accepted once, under whatever limits its server had.
_REREAD = Limits(max_bins=100_000_000, max_nodes=10_000_000, max_outputs=10_000_000,
                 max_expression_length=10_000_000, max_model_bytes=1 << 40, max_yaml_nodes=1 << 40)
DEFAULT_CACHE_BYTES = 512 * 1024 * 1024
# A top-level grid (or window) section: its line and the more indented lines under it.
_GRID = re.compile(r"^(?:grid|window)[ \t]*:.*(?:\n(?:[ \t]+.*|[ \t]*(?:#.*)?))*", re.MULTILINE)


@record
class RunState:
    run_id: str
    run: dict[str, Any]  # run.json as stored (plus the manifest's templateId and modelId)
    grid: Grid
    start: datetime | None  # the grid's start (grid.start / startTimeUtc in spec.yaml); None without one
    model: Model | None  # None: spec.yaml could not be reloaded (``model_note`` says why)
    model_note: str | None
    ids: tuple[str, ...]  # stored series ids: node ids, class series as node@NODE@Class
    rows: dict[str, int]  # series id -> row of ``values``
    values: Block  # (series, bins), read-only
    metrics: dict[str, Any]  # topology node id -> analysis.metrics.NodeMetrics, in topology order
    keys: dict[str, dict[str, int]]  # node id -> metric key -> row of ``metric_values``
    metric_values: Block  # every node's metric series stacked, read-only
    colours: npt.NDArray[np.int8]  # (topology nodes, bins), analysis.metrics.COLOURS indexes
    findings: tuple[Finding, ...]
    findings_source: str  # "run.json" (stored by the writer) or "analysed" (computed on read)
    settings: AnalysisSettings
    class_ids: tuple[str, ...]  # the model's declared classes, in order
    classes: dict[str, Any]  # topology node id -> class_parts.NodeClasses
    class_values: Block  # every node's class series stacked, read-only
    model_bytes: int = 0  # the reloaded model's value arrays (a const node holds a whole series)

    @property
    def bins(self) -> int:
        return self.grid.bins

    @property
    def has_topology(self) -> bool:
        return self.model is not None and self.model.topology is not None

    def series(self, series_id: str) -> Block | None:
        row = self.rows.get(series_id)
        return None if row is None else self.values[row]

    @property
    def nbytes(self) -> int:
        """What the cache counts: the arrays (the rest is small beside them)."""
        return (int(self.values.nbytes + self.metric_values.nbytes + self.colours.nbytes + self.class_values.nbytes)
                + self.model_bytes + 4096)

    def bin_start(self, index: int) -> datetime | None:
        if self.start is None:
            return None
        from datetime import timedelta

        return self.start + timedelta(minutes=index * self.grid.bin_minutes)


def utc_text(dt: datetime | None) -> str | None:
    """A UTC instant as ISO 8601 with ``Z`` (None stays None)."""
    return None if dt is None else dt.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


# -- reading ---------------------------------------------------------------------------------------


def open_state(registry: Registry, run_id: str, settings: AnalysisSettings | None = None, *,
               model: Model | None = None) -> RunState:
    """
    Read one run folder (``RunNotFound`` when there is none) into a ``RunState``. ``model``: the model the
    run computed, when the caller still holds it (the Engine just ran it): spec.yaml is then not parsed again.
    """
    run = registry.run_json(run_id)
    prov = registry.manifest(run_id).get("provenance")
    if isinstance(prov, dict) and prov.get("templateId"):
        run = {**run, "templateId": prov.get("templateId"), "modelId": prov.get("modelId")}
    # Derived series (the writer's, since 0025) are not read: derive() gives the same numbers, and old
    # runs have none, so there is one path - and opening reads half the files.
    entries = [e for e in registry.series_index(run_id).get("series", [])
               if isinstance(e, dict) and e.get("kind") != "derived"]
    ids = tuple(str(e.get("id")) if e.get("classKind") == "specific" else layout.entry_name(e) for e in entries)
    texts = [registry.series_bytes(run_id, e) for e in entries]
    spec = registry.file_path(run_id, layout.SPEC).read_text(encoding="utf-8-sig")
    grid = run.get("grid")
    grid_json: dict[str, Any] = grid if isinstance(grid, dict) else {}
    return build_state(run_id, run, spec, ids, [parse_series_csv(t) for t in texts], grid_json, settings,
                       model=model)


def build_state(run_id: str, run: dict[str, Any], spec: str, ids: tuple[str, ...], columns: list[Block],
                grid_json: Mapping[str, Any], settings: AnalysisSettings | None = None, *,
                model: Model | None = None) -> RunState:
    """A ``RunState`` from what a run folder holds (read by ``open_state``; no file is opened here)."""
    note: str | None = None
    if model is None:
        model, note = _reload(run_id, spec, ids, columns, run)
    grid = model.grid if model is not None else _grid_of(grid_json, columns)
    values = _block(columns, grid.bins)
    rows = {sid: i for i, sid in enumerate(ids)}
    by_id = {sid: values[i] for sid, i in rows.items()}
    chosen = settings or (model.analysis if model is not None else DEFAULT_ANALYSIS)
    metrics: dict[str, Any] = {}
    if model is not None and model.topology is not None:
        from flowtime.analysis.metrics import derive

        metrics = derive(model, by_id, chosen)
    keys, metric_values, colours = _stack_metrics(metrics, grid.bins)
    class_ids = tuple(c.id for c in model.classes) if model is not None else ()
    classes, class_values = node_classes(metrics, class_ids, rows, values, grid.bin_minutes * 60_000.0,
                                         chosen.tolerance)
    stored = [w for w in run.get("warnings") or [] if isinstance(w, dict) and w.get("code")]
    if stored or model is None:
        findings, source = tuple(_finding(w) for w in stored), "run.json"
    else:
        from flowtime.analysis.invariants import analyse

        findings, source = tuple(analyse(model, by_id, chosen, metrics)), "analysed"
    held = sum(int(getattr(n, "values", np.empty(0)).nbytes) for n in model.nodes) if model is not None else 0
    return RunState(run_id, run, grid, _start_of(spec), model, note, ids, rows, values, metrics, keys,
                    metric_values, colours, findings, source, chosen, class_ids, classes, class_values,
                    held + len(spec))


def _block(columns: list[Block], bins: int) -> Block:
    """The columns as one (series, bins) array; a short column is padded with NaN (a damaged file)."""
    out = np.full((len(columns), bins), np.nan)
    for i, c in enumerate(columns):
        n = min(bins, c.size)
        out[i, :n] = c[:n]
    out.flags.writeable = False
    return out


def _grid_of(grid_json: Mapping[str, Any], columns: list[Block]) -> Grid:
    bins = grid_json.get("bins")
    if not isinstance(bins, int) or bins < 1:
        bins = max((c.size for c in columns), default=1)
    size = grid_json.get("binSize")
    unit = grid_json.get("binUnit")
    try:
        bin_unit = BinUnit(str(unit or "hours").strip().lower())
    except ValueError:
        bin_unit = BinUnit.HOURS
    return Grid(bins, size if isinstance(size, int) and size > 0 else 1, bin_unit)


def stored_files(ids: tuple[str, ...], columns: list[Block]) -> SeriesFiles:
    """
    ``file:`` series served from the run itself: a file became the const node
    named after its stem, and that node's series is stored with the run.
    """
    by_id = dict(zip(ids, columns, strict=True))

    def read(path: str, bins: int) -> FileSeries:
        stem = stem_of(path)
        if stem not in by_id:
            raise SeriesFileError(f"file:{path}: its series '{stem}' is not stored with the run")
        return FileSeries(np.array(by_id[stem], dtype=np.float64), f"stored:{stem}")

    return read


def _reload(run_id: str, spec: str, ids: tuple[str, ...], columns: list[Block],
            run: Mapping[str, Any]) -> tuple[Model | None, str | None]:
    """The model the run computed (spec.yaml plus run.json's overrides), or None and why not."""
    from flowtime.model.load import load_model
    from flowtime.model.overrides import apply_overrides

    try:
        # A stored run's skipped outputs were warned about when it ran (0024).
        model = load_model(spec, f"{run_id}/{layout.SPEC}", limits=_REREAD,
                           series_files=stored_files(ids, columns), lenient_outputs=True).model
        overrides = run.get("overrides")
        if isinstance(overrides, dict) and overrides:
            model = apply_overrides(model, overrides)[0]
    except (Exception, RecursionError) as exc:  # any spec this engine no longer reads: keep the series
        first = str(exc).splitlines()[0][:300] if str(exc) else type(exc).__name__
        return None, f"the model in {layout.SPEC} could not be reloaded ({first}); only the stored series are shown"
    return model, None


def grid_json(grid: Grid, spec: str) -> dict[str, Any]:
    """A model's grid as runs and experiments answer it: bins, size, unit, minutes per bin, start (or null)."""
    return {**grid.to_json(), "binMinutes": grid.bin_minutes, "startTimeUtc": utc_text(_start_of(spec))}


def grid_start(spec: str) -> datetime | None:
    """The grid's start written in a model's text, as a UTC instant (None without one)."""
    return _start_of(spec)


def _start_of(spec: str) -> datetime | None:
    """``grid.start`` (or ``startTimeUtc``, or the window form's ``window.startTimeUtc``) as a UTC instant."""
    from flowtime.model.yamltext import parse_yaml

    # Only the grid's own lines are parsed again: the whole spec may be megabytes of values.
    match = _GRID.search(spec)
    if match is None:
        return None
    try:
        data, _ = parse_yaml(match.group(0), layout.SPEC)
    except Exception:  # the model note already says the spec is unreadable
        return None
    if not isinstance(data, dict):
        return None
    for section in ("grid", "window"):
        g = data.get(section)
        if not isinstance(g, dict):
            continue
        for key in ("start", "startTimeUtc"):
            v = g.get(key)
            if isinstance(v, datetime):
                return v if v.tzinfo else v.replace(tzinfo=UTC)
            if isinstance(v, str):
                try:
                    dt = datetime.fromisoformat(v.strip().replace("Z", "+00:00"))
                except ValueError:
                    continue
                return dt if dt.tzinfo else dt.replace(tzinfo=UTC)
    return None


def _stack_metrics(metrics: Mapping[str, Any], bins: int
                   ) -> tuple[dict[str, dict[str, int]], Block, npt.NDArray[np.int8]]:
    """Every node's metric series in one block (one slice serves a bin or a window of all of them)."""
    keys: dict[str, dict[str, int]] = {}
    arrays: list[Block] = []
    for node_id, m in metrics.items():
        keys[node_id] = {}
        for key, arr in m.series.items():
            keys[node_id][key] = len(arrays)
            arrays.append(np.asarray(arr, dtype=np.float64))
    block = np.stack(arrays) if arrays else np.empty((0, bins))
    colours = (np.stack([np.asarray(m.colour, dtype=np.int8) for m in metrics.values()]) if metrics
               else np.empty((0, bins), dtype=np.int8))
    block.flags.writeable = False
    colours.flags.writeable = False
    return keys, block, colours


def _finding(w: Mapping[str, Any]) -> Finding:
    """A run.json warning entry (ours, or the reference's ``{code, message, nodeId, bins, value}``) as a Finding."""
    bins = tuple(int(b) for b in w.get("bins") or () if isinstance(b, int | float))
    edges = w.get("edgeIds") or ()
    count = w.get("binCount")
    value = w.get("value")
    return Finding(str(w["code"]), str(w.get("severity") or "warning"), str(w.get("message") or ""),
                   node=w.get("nodeId") if isinstance(w.get("nodeId"), str) else None,
                   edge=str(edges[0]) if edges else None, bins=bins,
                   count=int(count) if isinstance(count, int) else len(bins),
                   value=float(value) if isinstance(value, int | float) else None, hint=str(w.get("hint") or ""))


# -- the cache -------------------------------------------------------------------------------------


class StateCache:
    """
    Opened runs by id, least recently used dropped first once their arrays pass
    ``max_bytes``. An entry is checked against the run folder on every get (a
    deleted run is not found; a run written again under a deterministic id is
    re-read), which costs one ``stat``.
    """

    def __init__(self, max_bytes: int = DEFAULT_CACHE_BYTES) -> None:
        self.max_bytes = max_bytes
        self._items: OrderedDict[str, tuple[int, RunState]] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()
        self._opening: dict[str, threading.Lock] = {}
        self.loads = 0  # runs read from disk (tests and benchmarks watch it)
        self.seeded = 0  # runs opened right after the Engine wrote them (``seed``)

    def get(self, registry: Registry, run_id: str, settings: AnalysisSettings | None = None) -> RunState:
        stamp = (registry.run_path(run_id) / layout.MANIFEST).stat().st_mtime_ns
        hit = self._hit(run_id, stamp, settings)
        if hit is not None:
            return hit
        with self._lock:
            opening = self._opening.setdefault(run_id, threading.Lock())
        with opening:  # one reader per run: requests arriving meanwhile wait for it, then hit
            hit = self._hit(run_id, stamp, settings)
            if hit is not None:
                return hit
            state = open_state(registry, run_id, settings)
            with self._lock:
                self.loads += 1
                self._put(run_id, stamp, state)
                self._opening.pop(run_id, None)
        return state

    def seed(self, registry: Registry, run_id: str, model: Model) -> None:
        """
        Open a run the Engine has just written while it still holds the model (so its spec is not parsed
        again): the first view of a fresh run then finds it here. A run already cached is left alone.
        """
        stamp = (registry.run_path(run_id) / layout.MANIFEST).stat().st_mtime_ns
        with self._lock:
            opening = self._opening.setdefault(run_id, threading.Lock())
        with opening:
            if self._hit(run_id, stamp, None) is None:
                state = open_state(registry, run_id, model=model)
                with self._lock:
                    self.seeded += 1
                    self._put(run_id, stamp, state)
            with self._lock:
                self._opening.pop(run_id, None)

    def _hit(self, run_id: str, stamp: int, settings: AnalysisSettings | None) -> RunState | None:
        with self._lock:
            hit = self._items.get(run_id)
            if hit is not None and hit[0] == stamp and (settings is None or hit[1].settings == settings):
                self._items.move_to_end(run_id)
                return hit[1]
        return None

    def _put(self, run_id: str, stamp: int, state: RunState) -> None:
        old = self._items.pop(run_id, None)
        if old is not None:
            self._bytes -= old[1].nbytes
        if state.nbytes > self.max_bytes:
            return  # bigger than the whole cache: served, not kept
        self._items[run_id] = (stamp, state)
        self._bytes += state.nbytes
        while self._bytes > self.max_bytes:
            _, (_, dropped) = self._items.popitem(last=False)
            self._bytes -= dropped.nbytes

    def ids(self) -> list[str]:
        with self._lock:
            return list(self._items)

    @property
    def bytes(self) -> int:
        return self._bytes


def active_findings(state: RunState, index: int) -> list[tuple[Finding, str]]:
    """
    The findings active at bin ``index``, each with how that is known (0027):
    ``bin`` - the bin is one of its listed bins; ``run`` - a finding about the
    model, not about bins; ``unlisted`` - it has more offending bins than are
    listed (5) and ``index`` lies after the last listed one, so it may hold there.
    """
    out: list[tuple[Finding, str]] = []
    for f in state.findings:
        if index in f.bins:
            out.append((f, "bin"))
        elif not f.bins and f.count == 0:
            out.append((f, "run"))
        elif f.count > len(f.bins) and f.bins and index > f.bins[-1]:
            out.append((f, "unlisted"))
    return out


def findings_in(findings: Iterable[Finding], start: int, end: int) -> list[Finding]:
    """The findings that touch bins ``start..end`` (or are about the whole run)."""
    out = []
    for f in findings:
        about_run = not f.bins and f.count == 0
        unlisted = f.count > len(f.bins) and bool(f.bins) and f.bins[-1] < end
        if about_run or unlisted or any(start <= b <= end for b in f.bins):
            out.append(f)
    return out
