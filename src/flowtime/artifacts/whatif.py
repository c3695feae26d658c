"""
What-if sessions and the registry: a stored run as a session's base, a session's point as a new run.

``run_base`` reopens a stored run the way the state API does (``spec.yaml``, its
``file:`` series served from the run's own copies) and keeps what every
evaluation must repeat: the run's overrides, seed and PMF sampling.
``save_point`` writes the session's current point through the ordinary run
writer; its ``provenance.json`` and ``run.json.whatif`` name the base (run id,
model hash) and the parameters moved.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

from flowtime.artifacts import layout
from flowtime.artifacts.registry import Registry
from flowtime.artifacts.state import StateCache, stored_files
from flowtime.artifacts.writer import RunRecord, write_run
from flowtime.experiments.whatif import Point
from flowtime.model.limits import Limits
from flowtime.model.load import LoadedModel, load_model
from flowtime.model.provenance import Provenance, provenance_from_mapping
from flowtime.records import record


@record
class Base:
    """Where a session's model came from, and what every evaluation of it repeats."""

    loaded: LoadedModel
    reload: Callable[[str], LoadedModel]  # an edited text of the same model, read the same way
    run_id: str | None = None
    model_hash: str | None = None
    overrides: dict[str, Any] | None = None
    seed: int | None = None
    sample_pmf: bool = False
    provenance: Provenance | None = None


def run_base(registry: Registry, cache: StateCache, run_id: str, limits: Limits) -> Base:
    """A stored run as a session's base (``RunNotFound`` when there is none)."""
    state = cache.get(registry, run_id)
    spec = registry.file_path(run_id, layout.SPEC).read_text(encoding="utf-8-sig")
    files = stored_files(state.ids, list(state.values))
    source = f"{run_id}/{layout.SPEC}"

    def reload(text: str) -> LoadedModel:
        return load_model(text, source, limits=limits, series_files=files, lenient_outputs=True)

    run = state.run
    stored = registry.provenance(run_id)
    overrides = run.get("overrides")
    return Base(reload(spec), reload, run_id, run.get("modelHash"),
                dict(overrides) if isinstance(overrides, dict) else None,
                run.get("seed") if isinstance(run.get("seed"), int) else None, bool(run.get("samplePmf")),
                provenance_from_mapping(stored, layout.PROVENANCE) if stored else None)


def save_point(point: Point, base: Base, session_id: str, root: Path) -> RunRecord:
    """The session's current point as an ordinary run under ``root``."""
    what: Mapping[str, Any] = {"sessionId": session_id, "baseRunId": base.run_id, "baseModelHash": base.model_hash,
                               "parameters": dict(point.changed)}
    given = base.provenance or base.loaded.provenance
    if given is not None:
        provenance = replace(given, derived_from=base.run_id or given.derived_from,
                             extra={**given.extra, "whatif": dict(what)})
    else:
        provenance = Provenance(source="whatif", model_id=base.model_hash or session_id, derived_from=base.run_id,
                                extra={"whatif": dict(what)})
    return write_run(point.loaded, point.results, root, provenance=provenance, whatif=what)
