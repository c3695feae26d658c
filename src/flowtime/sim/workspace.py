"""
Sim's operations over a catalog and a data directory: generate, export a
named model, derive a variation, validate, look up, collect garbage.

The CLI and the HTTP service both call these; neither executes a model.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import Any

from flowtime.errors import ModelError, ModelNotFound
from flowtime.model.load import load_model
from flowtime.model.provenance import Provenance
from flowtime.model.schema import Model
from flowtime.sim.catalog import Catalog
from flowtime.sim.preview import render_svg
from flowtime.sim.quality import ValidationReport, validate_loaded, validate_text
from flowtime.sim.render import Generated, render_template
from flowtime.sim.store import (
    MODEL_FILE,
    NAMED_DIR,
    PREVIEW_FILE,
    PROVENANCE_FILE,
    STALE_TEMP_SECONDS,
    VALIDATION_FILE,
    ModelStore,
    NamedStore,
    StoredModel,
    json_text,
)
from flowtime.sim.template import TEMPLATE_ID

MODEL_ID = re.compile(r"^model_[0-9]{8}T[0-9]{6}Z_[0-9a-f]{8}\Z")  # ASCII digits only, not \d
DAY_SECONDS = 86_400.0


@dataclass(frozen=True)
class Generation:
    """A generated model, its validation report and where it was stored."""

    generated: Generated
    report: ValidationReport
    stored: StoredModel | None
    created: bool

    def text(self, embed_provenance: bool = False) -> str:
        return self.generated.text(embed_provenance)

    def response(self, embed_provenance: bool = False) -> dict[str, Any]:
        """The body of ``POST /api/v1/templates/{id}/generate``."""
        return {
            "model": self.text(embed_provenance),
            "provenance": self.generated.provenance.to_json(),
            "modelId": self.generated.model_id,
            "templateId": self.generated.template.id,
            "path": str(self.stored.path / MODEL_FILE) if self.stored else None,
            "hash": self.generated.hash_prefix,
            "modelHash": f"sha256:{self.generated.hash}",
            "quality": self.report.quality.to_json(),
            # The analyser's model-only findings (the reference's generation warnings; no series: Sim never runs it)
            "warnings": [f.to_dict() for f in self.report.findings],
            "validation": {
                "valid": self.report.valid,
                "problems": [p.to_dict() for p in self.report.problems],
                "warnings": [p.to_dict() for p in self.report.warnings],
            },
        }


@dataclass(frozen=True)
class Resolved:
    """A model found by reference: its text, provenance (if any) and origin."""

    text: str
    provenance: dict[str, Any] | None
    source: str
    stored: StoredModel | None = None


class Workspace:
    """Catalog + temporary store + named models, with the settings that bound them."""

    def __init__(self, catalog: Catalog, data_dir: Path, *, max_array_length: int | None = None,
                 ttl_days: float = 7.0, stale_after: float = STALE_TEMP_SECONDS) -> None:
        self.catalog = catalog
        self.data_dir = data_dir
        self.max_array_length = max_array_length
        self.ttl_seconds = ttl_days * DAY_SECONDS
        self.store = ModelStore(data_dir, stale_after=stale_after)
        self.named = NamedStore(data_dir / NAMED_DIR, stale_after=stale_after)

    # -- generation ---------------------------------------------------------

    def render(self, template_id: str, overrides: Mapping[str, Any] | None = None, *,
               now: datetime | None = None, derived_from: str | None = None,
               mode: str | None = None) -> Generated:
        template = self.catalog.get(template_id)
        return render_template(template, overrides, now=now, max_array_length=self.max_array_length,
                               derived_from=derived_from, mode=mode)

    def generate(self, template_id: str, overrides: Mapping[str, Any] | None = None, *,
                 persist: bool = True, now: datetime | None = None,
                 derived_from: str | None = None, mode: str | None = None) -> Generation:
        """
        Render, validate and (unless ``persist`` is false) store in the
        temporary store; ``mode`` overrides the template's (simulation or telemetry).
        """
        generated = self.render(template_id, overrides, now=now, derived_from=derived_from, mode=mode)
        report = self._report(generated)
        if not persist:
            return Generation(generated, report, None, False)
        stored, created = self.store.save(
            generated.template.id, generated.hash_prefix, self._files(generated, report),
            self._metadata(generated, report), now=now, issued=generated.provenance.to_json())
        return Generation(generated, report, stored, created)

    def export_named(self, template_id: str, name: str, overrides: Mapping[str, Any] | None = None,
                     *, title: str | None = None, description: str | None = None,
                     tags: Sequence[str] = (), now: datetime | None = None,
                     derived_from: str | None = None, root: Path | None = None,
                     mode: str | None = None) -> Generation:
        """
        Generate and store as the next version of named model ``name``
        (unchanged content keeps the current version). ``root`` replaces
        ``<data>/named`` as the folder holding named models.
        """
        generated = self.render(template_id, overrides, now=now, derived_from=derived_from, mode=mode)
        report = self._report(generated)
        meta = self._metadata(generated, report)
        meta["title"] = title or meta["title"]
        meta["description"] = description if description is not None else meta["description"]
        meta["tags"] = list(dict.fromkeys([*meta["tags"], *tags]))
        named = self.named if root is None else NamedStore(root)
        stored, created = named.save(name, f"sha256:{generated.hash}",
                                     self._files(generated, report), meta, now=now,
                                     issued=generated.provenance.to_json())
        return Generation(generated, report, stored, created)

    def derive(self, ref: str | Resolved, changes: Mapping[str, Any], *, name: str | None = None,
               now: datetime | None = None) -> Generation:
        """
        Re-generate the model ``ref`` points at from its recorded template and
        parameters with ``changes`` applied; the new provenance names the
        parent in ``derivedFrom``. A named parent (or ``name``) gives a new
        named version, otherwise the result goes to the temporary store.
        """
        parent = self.resolve(ref) if isinstance(ref, str) else ref
        prov = parent.provenance
        if not prov or not prov.get("templateId"):
            raise ModelError(f"{parent.source} has no provenance naming its template; derive needs "
                             "a model generated by flowtime sim (stored, or with embedded provenance)")
        params = dict(prov.get("parameters") or {})
        params.update(changes)
        mode = prov.get("mode") if isinstance(prov.get("mode"), str) else None  # the parent's, kept
        parent_id = str(prov.get("modelId", "")) or None
        if name is None and parent.stored is not None:
            name = parent.stored.metadata.get("name")
        if name:
            meta = parent.stored.metadata if parent.stored is not None else {}
            return self.export_named(str(prov["templateId"]), name, params, now=now,
                                     derived_from=parent_id, tags=meta.get("tags", ()), mode=mode)
        return self.generate(str(prov["templateId"]), params, now=now, derived_from=parent_id, mode=mode)

    # -- lookup and validation ---------------------------------------------

    def resolve(self, ref: str) -> Resolved:
        """
        A model by reference: a file or folder path, a model id
        (``model_<time>_<hex>``), ``<templateId>/<hash>``, or a named model
        (``<name>_<hex>[/v<n>]`` or its plain name).
        """
        path = Path(ref)
        if ("/" in ref or ref.endswith((".yaml", ".yml")) or path.is_dir()) and path.exists():
            return _resolve_path(path)
        if MODEL_ID.match(ref):
            return _resolved(self.find(ref))
        head, _, tail = ref.partition("/")
        if tail and TEMPLATE_ID.match(head) and re.fullmatch(r"[0-9a-f]{12}", tail):
            return _resolved(self.store.get(head, tail))
        return _resolved(self.named.get(ref))

    def find(self, model_id: str) -> StoredModel:
        """
        The model a model id was issued for, temporary or named; every id
        issued resolves while its model is stored.
        """
        for store in (self.store, self.named):
            try:
                return store.find(model_id)
            except ModelNotFound:
                continue
        raise ModelNotFound(f"no stored model with id {model_id} (models expire after "
                            f"{self.ttl_seconds / DAY_SECONDS:g} days)")

    def validate(self, text: str, source: str = "<string>",
                 provenance: Mapping[str, Any] | None = None) -> ValidationReport:
        """
        Structure validation plus the quality report; ``parameters_used`` is
        checked when the provenance (given, or embedded) names a known template.
        """
        try:
            loaded = load_model(text, source)
        except ModelError:
            return validate_text(text, source)  # the report lists every problem
        tid = (provenance or {}).get("templateId")
        if tid is None and loaded.provenance is not None:
            tid = loaded.provenance.template_id
        template = self.catalog.templates.get(tid) if isinstance(tid, str) else None
        return validate_loaded(loaded, unused_parameters=template.unused_parameters if template else None)

    def gc(self, *, ttl_seconds: float | None = None, now: datetime | None = None) -> list[Path]:
        ttl = self.ttl_seconds if ttl_seconds is None else ttl_seconds
        return [*self.store.gc(ttl, now=now), *self.named.gc(ttl, now=now)]

    # -- files --------------------------------------------------------------

    def _report(self, generated: Generated) -> ValidationReport:
        report = validate_loaded(generated.loaded, unused_parameters=generated.template.unused_parameters,
                                 topo=generated.topology)
        # What generation adjusted is reported with the model's own warnings.
        return replace(report, warnings=(*generated.warnings, *report.warnings))

    @staticmethod
    def _files(generated: Generated, report: ValidationReport) -> dict[str, str]:
        template = generated.template
        return {
            MODEL_FILE: generated.model_text,
            PROVENANCE_FILE: json_text(generated.provenance.to_json()),
            VALIDATION_FILE: json_text(report.to_json()),
            PREVIEW_FILE: render_svg(generated.loaded.model, title=f"{template.title} ({template.id})",
                                     topo=generated.topology),
        }

    @staticmethod
    def _metadata(generated: Generated, report: ValidationReport) -> dict[str, Any]:
        t = generated.template
        meta: dict[str, Any] = {
            "modelId": generated.model_id,
            "title": generated.title,
            "description": t.description,
            "tags": list(t.tags),
            "template": {"id": t.id, "version": t.version, "title": t.title},
            "templateId": t.id,
            "parameters": generated.parameters,
            "modelHash": f"sha256:{generated.hash}",
            "validation": report.summary(),
        }
        if generated.provenance.derived_from:
            meta["derivedFrom"] = generated.provenance.derived_from
        return meta


def _resolved(stored: StoredModel) -> Resolved:
    return Resolved(stored.model_text(), stored.provenance(), str(stored.path), stored)


def _resolve_path(path: Path) -> Resolved:
    folder = path if path.is_dir() else path.parent
    model_path = path / MODEL_FILE if path.is_dir() else path
    try:
        text = model_path.read_text(encoding="utf-8-sig")
    except OSError as exc:
        raise ModelNotFound(f"cannot read {model_path}: {exc.strerror}") from None
    provenance: dict[str, Any] | None = None
    sidecar = folder / PROVENANCE_FILE
    if sidecar.is_file() and (path.is_dir() or path.name == MODEL_FILE):
        provenance = json.loads(sidecar.read_text(encoding="utf-8"))
    else:
        try:
            embedded = load_model(text, str(model_path)).provenance
        except ModelError:
            embedded = None
        provenance = embedded.to_json() if embedded is not None else None
    return Resolved(text, provenance, str(model_path))


def generate(template_id: str, parameters: Mapping[str, Any] | None = None, *,
             catalog: Catalog | None = None, now: datetime | None = None) -> tuple[Model, Provenance]:
    """
    The model and provenance for a template and parameter overrides, without
    storing anything (the built-in library unless ``catalog`` is given).

    >>> model, provenance = generate("support-backlog", {"agents": 6})
    >>> model.grid.bins, provenance.parameters["agents"], provenance.template_id
    (8, 6, 'support-backlog')
    """
    generated = render_template((catalog or Catalog.load()).get(template_id), parameters, now=now)
    return generated.loaded.model, generated.provenance
