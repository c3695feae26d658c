"""
An experiment over a Sim template: what the core needs from whoever renders it.

The core never renders a template (the Engine takes models; Sim never runs one).
The CLI and the Python API, which may use both, hand the evaluator a
``TemplateRenderer``: the template's parameter names and ``render(values)`` ->
model text. Points whose template parameters are equal share one rendered model
(one plan, batched through ``evaluate_many``); ``parameters: [{target:
template.<name>}]`` names a template parameter. Decision 0038.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

TEMPLATE_PREFIX = "template."
ENGINE_TAKES_MODELS = ("the Engine takes models, not templates: the CLI (`flowtime sweep SPEC` with template: or "
                       "--template) or flowtime.experiment() in Python renders the template through the Sim library; "
                       "or send a model Sim rendered (the UI's Analyse on a generated model)")


class TemplateRenderer(Protocol):
    """A template the edge renders: ``names`` its parameters, ``render`` a model text for some of their values."""

    template_id: str
    names: tuple[str, ...]

    def render(self, values: Mapping[str, float]) -> str:
        """The model text with ``values`` over the experiment's base parameters (raises a ``FlowTimeError``)."""
        ...

    def provenance(self) -> dict[str, Any]:
        """What the experiment records of its template: id, version, title and the base parameters."""
        ...
