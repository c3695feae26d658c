"""
Sim: parameterised templates -> engine-ready models plus provenance.

Sim never executes a model: it reads templates, checks parameters, renders
and validates models, keeps them in a temporary store and draws their DAG.
The Engine owns execution and the permanent registry.
"""

from __future__ import annotations

from flowtime.sim.catalog import Catalog
from flowtime.sim.render import Generated, render_template
from flowtime.sim.template import Template, TemplateValidationError, parse_template
from flowtime.sim.workspace import Workspace, generate

__all__ = [
    "Catalog",
    "Generated",
    "Template",
    "TemplateValidationError",
    "Workspace",
    "generate",
    "parse_template",
    "render_template",
]
