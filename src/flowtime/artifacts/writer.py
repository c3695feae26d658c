"""
Results + model + provenance -> a run folder, written atomically.

Everything is written into a hidden temporary sibling folder and renamed into
place at the end, so a reader (or a crash) never sees a half-written run: a
folder named like a run id always has its manifest.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from flowtime._version import __version__
from flowtime.analysis.findings import Finding
from flowtime.analysis.invariants import analyse
from flowtime.analysis.metrics import METRICS, NodeMetrics, derive, series_name
from flowtime.artifacts import layout
from flowtime.artifacts.canonical import CSV_HEADER, format_rows, sha256_text
from flowtime.artifacts.index import is_disk_full
from flowtime.engine.evaluate import Results
from flowtime.errors import ArtifactError, StorageFull
from flowtime.model.hashing import model_hash, scenario_hash
from flowtime.model.load import LoadedModel
from flowtime.model.provenance import Provenance
from flowtime.model.schema import Model
from flowtime.records import record

_BLOCK = 256  # series formatted together (bounds the temporary memory of a block)


@record
class RunRecord:
    run_id: str
    path: Path
    manifest: dict[str, Any]
    run: dict[str, Any]
    reused: bool = False


def title_of(model: Model, spec_text: str) -> str:
    """A human title: metadata.title, the first sentence of the description, a leading comment, or node ids."""
    md = model.metadata
    if md.title:
        return md.title
    if md.description:
        d = md.description.strip()
        return d if len(d) <= 80 else d.split(". ")[0][:80]
    for line in spec_text.splitlines():
        s = line.strip()
        if not s:
            continue
        if not s.startswith("#"):
            break
        text = s.lstrip("#").strip()
        if len(text) > 10 and not text.lower().startswith(("generated", "this is", "file:")):
            return text
    ids = model.node_ids[:3]
    return f"Model with {', '.join(ids)}" if ids else "Empty model"


def _write_new(path: Path, data: bytes) -> None:
    """Create ``path`` (it must not exist) holding ``data``."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
    finally:
        os.close(fd)


def _write_series(folder: Path, node_id: str, data: bytes) -> str:
    """Write one series file; returns its path relative to the run folder (for the index)."""
    rel = layout.series_file(node_id)
    try:
        _write_new(folder / rel, data)
    except FileExistsError:
        # Two node ids that differ only in case (a, A) on a case-insensitive file system.
        rel = layout.encoded_series_file(node_id)
        _write_new(folder / rel, data)
    return rel


def _dump(path: Path, obj: Any) -> bytes:
    # orjson: the stdlib encoder falls back to pure Python when indenting.
    data = orjson.dumps(obj, option=orjson.OPT_INDENT_2 | orjson.OPT_APPEND_NEWLINE)
    path.write_bytes(data)
    return data


def write_run(
    loaded: LoadedModel,
    results: Results,
    root: Path,
    *,
    provenance: Provenance | None = None,
    deterministic_id: bool = False,
    timings: dict[str, float] | None = None,
    now: datetime | None = None,
    metrics: Mapping[str, NodeMetrics] | None = None,
    findings: Sequence[Finding] | None = None,
    experiment: Mapping[str, Any] | None = None,
    whatif: Mapping[str, Any] | None = None,
) -> RunRecord:
    """
    Write one run under ``root`` and return where it went. The model that is
    hashed and described is the one ``results`` were computed from (what-if
    overrides applied); ``spec.yaml`` keeps the text as given, and ``run.json``
    (and the provenance, when there is one) record the overrides. ``metrics`` and
    ``findings``: ``derive``'s and the analyser's, when the caller already has them
    (``run --strict`` gates on the findings first). ``experiment``: ``{id, point}`` of the
    experiment point this run repeats (``artifacts.experiments.materialise``). ``whatif``: the
    base and parameters of the what-if point this run keeps (``artifacts.whatif.save_point``).
    """
    model = results.model if results.model is not None else loaded.model
    overrides = dict(results.overrides)
    if provenance is not None and overrides:
        provenance = provenance.with_overrides(overrides)
    now = now or datetime.now(UTC)
    created = layout.utc_iso(now)
    m_hash = model_hash(model)
    s_hash = scenario_hash(model, results.seed, bool(results.sampled))
    run_id = layout.deterministic_run_id(s_hash) if deterministic_id else layout.new_run_id(now)
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise _write_error(exc, root, run_id) from exc
    final = root / run_id
    if deterministic_id and (final / layout.MANIFEST).exists():
        return _reuse(final, run_id, s_hash)

    tmp = root / f"{layout.TMP_PREFIX}{run_id}-{os.urandom(4).hex()}"
    try:
        tmp.mkdir()
        (tmp / layout.SERIES_DIR).mkdir()
        spec = loaded.spec_text.replace("\r\n", "\n")
        (tmp / layout.SPEC).write_text(spec, encoding="utf-8")

        as_names = {o.series: o.as_ for o in model.outputs if o.as_}
        series_hashes: dict[str, str] = {}
        series_paths: dict[str, str] = {}
        index_entries: list[dict[str, Any]] = []
        run_series: list[dict[str, Any]] = []
        # One thread, in order: a pool of writers measured slower here (GIL hand-offs
        # cost more than overlapping file creation with formatting saves).
        ids = results.output_ids
        header = CSV_HEADER.encode()
        for start in range(0, len(ids), _BLOCK):
            chunk = ids[start : start + _BLOCK]
            block = np.stack([results.series[n] for n in chunk])
            for node_id, body in zip(chunk, format_rows(block), strict=True):
                data = header + body
                series_paths[node_id] = _write_series(tmp, node_id, data)
                series_hashes[layout.series_id(node_id)] = sha256_text(data)
        for node_id in results.output_ids:
            sid = layout.series_id(node_id)
            rel = series_paths[node_id]
            h = series_hashes[sid]
            entry = {
                "id": sid, "nodeId": node_id, "kind": "flow", "path": rel, "unit": "entities/bin",
                "componentId": node_id.upper(), "class": "DEFAULT", "classKind": "fallback",
                "points": int(results.series[node_id].size), "hash": h, "as": as_names.get(node_id),
            }
            index_entries.append(entry)
            run_series.append({"id": sid, "nodeId": node_id, "path": rel, "unit": "entities/bin",
                               "as": as_names.get(node_id)})

        coverage = _write_class_series(tmp, results, index_entries, run_series, series_hashes) if model.classes \
            else "none"
        if metrics is None:
            metrics = derive(model, results.series, model.analysis)
        _write_derived_series(tmp, model, results, metrics, index_entries, run_series, series_hashes)
        grid = {**model.grid.to_json(), "binMinutes": model.grid.bin_minutes, "timezone": "UTC", "align": "left"}
        warnings = run_warnings(loaded, results, model, metrics, findings)
        _dump(tmp / layout.SERIES_DIR / layout.INDEX, {"schemaVersion": 1, "grid": grid, "series": index_entries})
        prov_json: dict[str, Any] | None = None
        if provenance is not None:
            prov_json = {**provenance.to_json(), "receivedAt": created}
            _dump(tmp / layout.PROVENANCE, prov_json)
        run = {
            "schemaVersion": 1,
            "runId": run_id,
            "engineVersion": __version__,
            "source": "engine",
            "title": title_of(model, spec),
            "tags": list(model.metadata.tags),
            "grid": grid,
            "modelHash": m_hash,
            "scenarioHash": s_hash,
            "createdUtc": created,
            "seed": results.seed,
            "samplePmf": results.sample_pmf,
            "sampled": results.sampled,
            "overrides": overrides,
            "order": results.shown,
            "warnings": warnings,
            "series": run_series,
            "classCoverage": coverage,
            "timings": timings or {},
        }
        if experiment is not None:
            run["experiment"] = dict(experiment)
        if whatif is not None:
            run["whatif"] = dict(whatif)
        _dump(tmp / layout.RUN_JSON, run)
        manifest = {
            "schemaVersion": 1,
            "runId": run_id,
            "scenarioHash": s_hash,
            "modelHash": m_hash,
            "rng": {"kind": "pcg32", "seed": results.seed},
            "seriesHashes": series_hashes,
            "eventCount": 0,
            "classCoverage": coverage,
            "createdUtc": created,
            "provenance": (
                {"hasProvenance": True, "modelId": prov_json.get("modelId"), "templateId": prov_json.get("templateId")}
                if prov_json else None
            ),
        }
        _dump(tmp / layout.MANIFEST, manifest)  # written last: a manifest means "complete"
        _pause_hook("before-rename")
        try:
            os.rename(tmp, final)
        except OSError:
            if deterministic_id and (final / layout.MANIFEST).exists():
                shutil.rmtree(tmp, ignore_errors=True)
                return _reuse(final, run_id, s_hash)
            raise
    except OSError as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        raise _write_error(exc, root, run_id) from exc
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return RunRecord(run_id, final, manifest, run)


def run_warnings(loaded: LoadedModel, results: Results, model: Model,
                 metrics: Mapping[str, NodeMetrics] | None = None,
                 findings: Sequence[Finding] | None = None) -> list[dict[str, Any]]:
    """
    ``run.json.warnings``: the loader's and the engine's problems, then the
    analyser's findings (a finding's dict has a ``code``, a problem's does not).
    A problem that leads with a code (``router_class_leakage: ...``) the
    analyser reports too, or that the model's ``analysis.ignore`` names, is
    left out: the finding says it once, located by node and bin.
    """
    if findings is None:
        findings = analyse(model, results.series, model.analysis, metrics)
    said = {f.code for f in findings} | set(model.analysis.ignore)
    problems = (*loaded.warnings, *results.warnings, *results.nonfinite_warnings())
    kept = [p for p in problems if p.message.partition(":")[0] not in said]
    return [*(p.to_dict() for p in kept), *(f.to_dict() for f in findings)]


def _write_class_series(folder: Path, results: Results, index_entries: list[dict[str, Any]],
                        run_series: list[dict[str, Any]], series_hashes: dict[str, str]) -> str:
    """
    Beside each output's total, one series per flow class reaching it (``node@NODE@Class``,
    finite values only); the run's class coverage: ``full`` (every output classes reach has
    all its class series), ``partial``, or ``none`` (no output carries classes).
    """
    header = CSV_HEADER.encode()
    carried = skipped = 0
    for node_id in results.output_ids:
        parts = results.classes.get(node_id)
        if not parts:
            continue
        carried += 1
        for cls, arr in parts.items():
            if not np.isfinite(arr).all():
                skipped += 1
                continue
            data = header + format_rows(np.ascontiguousarray(arr)[None, :])[0]
            sid = layout.class_series_id(node_id, cls)
            rel = layout.class_series_file(node_id, cls)
            _write_new(folder / rel, data)
            series_hashes[sid] = sha256_text(data)
            index_entries.append({
                "id": sid, "nodeId": node_id, "kind": "flow", "path": rel, "unit": "entities/bin",
                "componentId": node_id.upper(), "class": cls, "classKind": "specific", "points": int(arr.size),
                "hash": series_hashes[sid], "as": None,
            })
            run_series.append({"id": sid, "nodeId": node_id, "class": cls, "path": rel, "unit": "entities/bin",
                               "as": None})
    if not carried:
        return "none"
    return "partial" if skipped else "full"


def _write_derived_series(folder: Path, model: Model, results: Results, metrics: Mapping[str, NodeMetrics],
                          index_entries: list[dict[str, Any]], run_series: list[dict[str, Any]],
                          series_hashes: dict[str, str]) -> None:
    """
    Each topology node's derived metrics (``analysis.metrics``), one series file
    each, an undefined bin as an empty cell. A name that is already a series of
    the model (or of another topology node's metric) is not written: the
    model's own series keeps its name.
    """
    taken = set(results.series) | set(model.node_ids)
    chosen: list[tuple[str, str, str]] = []  # series name, topology node, metric key
    arrays = []
    for m in metrics.values():
        for key, values in m.derived.items():
            name = series_name(m.id, key)
            if name in taken:
                continue
            taken.add(name)
            chosen.append((name, m.id, key))
            arrays.append(values)
    if not chosen:
        return
    header = CSV_HEADER.encode()
    for start in range(0, len(chosen), _BLOCK):
        rows = format_rows(np.stack(arrays[start:start + _BLOCK]))
        for (name, node_id, key), body in zip(chosen[start:start + _BLOCK], rows, strict=True):
            data = header + body.replace(b",NaN\n", b",\n")  # undefined: an empty cell (JSON null)
            sid = layout.series_id(name)
            rel = _write_series(folder, name, data)
            series_hashes[sid] = sha256_text(data)
            unit = METRICS[key].unit
            index_entries.append({
                "id": sid, "nodeId": node_id, "kind": "derived", "metric": key, "path": rel, "unit": unit,
                "componentId": node_id.upper(), "class": "DEFAULT", "classKind": "fallback",
                "points": int(model.grid.bins), "hash": series_hashes[sid], "as": None,
            })
            run_series.append({"id": sid, "nodeId": node_id, "kind": "derived", "metric": key, "path": rel,
                               "unit": unit, "as": None})


def _write_error(exc: OSError, root: Path, run_id: str) -> ArtifactError:
    if is_disk_full(exc):
        return StorageFull(f"the disk holding {root} is full: run {run_id} was not stored "
                           "(nothing was kept; free some space and try again)")
    return ArtifactError(f"cannot write run {run_id} under {root}: {exc}")


def _reuse(final: Path, run_id: str, s_hash: str) -> RunRecord:
    manifest = json.loads((final / layout.MANIFEST).read_text(encoding="utf-8"))
    if manifest.get("scenarioHash") != s_hash:
        raise ArtifactError(
            f"{run_id} already holds a different scenario ({manifest.get('scenarioHash')}); "
            "run without --deterministic-run-id"
        )
    run = json.loads((final / layout.RUN_JSON).read_text(encoding="utf-8"))
    return RunRecord(run_id, final, manifest, run, reused=True)


def _pause_hook(point: str) -> None:
    """Test hook: FLOWTIME_TEST_PAUSE_AT=<point> blocks here so a test can kill the process mid-write."""
    if os.environ.get("FLOWTIME_TEST_PAUSE_AT") == point:
        import time

        marker = os.environ.get("FLOWTIME_TEST_PAUSE_MARKER")
        if marker:
            Path(marker).write_text("paused")
        time.sleep(3600)


def clean_temp_folders(root: Path, *, older_than_seconds: float = 0.0) -> int:
    """
    Remove leftovers of interrupted writes; returns how many were removed.

    ``older_than_seconds`` spares folders modified more recently than that: another
    process (a second server worker) may be writing one right now.
    """
    if not root.is_dir():
        return 0
    import time

    cutoff = time.time() - older_than_seconds
    n = 0
    for p in root.iterdir():
        if p.name.startswith(layout.TMP_PREFIX) and p.is_dir() and not p.is_symlink():
            try:
                if older_than_seconds and p.stat().st_mtime > cutoff:
                    continue
            except FileNotFoundError:
                continue
            shutil.rmtree(p, ignore_errors=True)
            n += 1
    return n
