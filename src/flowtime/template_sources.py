"""
Experiments over a Sim template, orchestrated at the edge (the CLI and the Python API).

A spec with ``template: {id, parameters}`` names a template (a catalog id, or a template
file relative to the spec's folder) and its base parameter values; a parameter whose
target is ``template.<name>`` varies one of them. ``template_source`` renders the base
model through the Sim *library* and gives the core a ``TemplateRenderer``, which renders
again for each distinct combination of template values the experiment asks for; the
engine core evaluates every model (Sim never runs one, the Engine never renders one,
and nothing here talks HTTP). Decision 0038.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from flowtime.errors import ExperimentError, FlowTimeError, ParameterError, Problem
from flowtime.sim.catalog import Catalog, load_template_file
from flowtime.sim.render import render_template
from flowtime.sim.template import Template

TEMPLATE_FILE_SUFFIXES = (".yaml", ".yml")


class TemplateModels:
    """A template and the experiment's base parameters: ``render(values)`` is a model text (a ``TemplateRenderer``)."""

    def __init__(self, template: Template, base: Mapping[str, Any]) -> None:
        self.template = template
        self.base = dict(base)
        self.template_id = template.id
        self.names = tuple(p.name for p in template.parameters)
        self._generated = render_template(template, self.base)  # the base model; its errors are the spec's

    @property
    def base_text(self) -> str:
        return self._generated.model_text

    def render(self, values: Mapping[str, float]) -> str:
        return render_template(self.template, {**self.base, **values}).model_text

    def provenance(self) -> dict[str, Any]:
        p = self._generated.provenance
        return {"id": p.template_id, "version": p.template_version, "title": p.template_title,
                "parameters": dict(p.parameters or {})}


def find_template(ref: str, base: Path | None, catalog: Catalog | None = None) -> Template:
    """A template file (``ref`` ends in .yaml/.yml and names a file, relative to ``base``), else a catalog id."""
    path = Path(ref)
    if base is not None and not path.is_absolute():
        path = base / path
    if ref.endswith(TEMPLATE_FILE_SUFFIXES) and path.is_file():
        return load_template_file(path)
    return (catalog or Catalog.load()).get(ref)


def template_source(data: Mapping[str, Any], base: Path | None, catalog: Catalog | None = None) -> TemplateModels:
    """
    The renderer of a spec's ``template`` (its JSON/YAML data); every problem as an ``ExperimentError`` at
    ``template...``: an unknown template at ``template.id``, a bad base value at ``template.parameters.<name>``.
    """
    given = data.get("template")
    if isinstance(given, str):
        given = {"id": given}
    if not isinstance(given, Mapping) or not isinstance(given.get("id"), str) or not given["id"]:
        raise ExperimentError([Problem("template", "give template: {id: <template id or file>, parameters: "
                                                   "{...}}")])
    parameters = given.get("parameters") or {}
    if not isinstance(parameters, Mapping):
        raise ExperimentError([Problem("template.parameters", "a mapping of template parameter values")])
    try:
        template = find_template(given["id"], base, catalog)
    except FlowTimeError as exc:
        raise ExperimentError([Problem("template.id", str(exc).strip())]) from exc
    try:
        return TemplateModels(template, parameters)
    except ParameterError as exc:
        raise ExperimentError([Problem(f"template.{p.path}" if p.path.startswith("parameters") else
                                       f"template.parameters.{p.path}".rstrip("."), p.message)
                               for p in exc.problems]) from exc
    except FlowTimeError as exc:
        raise ExperimentError([Problem("template", f"template '{template.id}' gives no model: "
                                                   f"{str(exc).strip()}")]) from exc
