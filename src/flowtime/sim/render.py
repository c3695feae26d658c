"""
Template + parameter values -> model YAML, validated ``Model`` and ``Provenance``.

Substitution works on the parsed YAML, never on text: a placeholder that is a
whole scalar (``values: ${demand}``) takes the parameter's typed value - an
integer stays an integer, an array becomes a list - while a placeholder inside
a longer string (``expr: "MIN(a, ${cap} * 0.9)"``) is formatted in. The result
is dumped as YAML and run through the shared model loader, so a generated
model is exactly what the engine will read.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import yaml

from flowtime._version import __version__
from flowtime.errors import ModelError, ParameterError, Problem
from flowtime.expr.syntax import format_number
from flowtime.model.hashing import model_digest
from flowtime.model.load import LoadedModel, load_model
from flowtime.model.parameters import check_parameters
from flowtime.model.provenance import Provenance
from flowtime.sim.bins import fit_arrays
from flowtime.sim.canonical import parameters_hash
from flowtime.sim.lowering import lower, semantics_outputs
from flowtime.sim.template import MODES, PLACEHOLDER, WHOLE_PLACEHOLDER, Template, TemplateValidationError
from flowtime.sim.titles import model_title
from flowtime.sim.topology import Topology, topology

SOURCE = "flowtime-sim"
GENERATOR = f"flowtime-sim/{__version__}"
PROVENANCE_SCHEMA_VERSION = "1"
HASH_PREFIX_LENGTH = 12

try:  # libyaml's emitter; the representers below are Python either way.
    _BaseDumper: Any = yaml.CSafeDumper
except AttributeError:  # pragma: no cover - depends on the PyYAML build
    _BaseDumper = yaml.SafeDumper


class _ModelDumper(_BaseDumper):  # type: ignore[misc]
    """Block mappings, flow lists of scalars, double-quoted expressions."""


class _Quoted(str):
    """A string always written in double quotes (expressions read better so)."""


def _represent_list(dumper: Any, data: list[Any]) -> Any:
    flat = all(not isinstance(v, dict | list) for v in data)
    return dumper.represent_sequence("tag:yaml.org,2002:seq", data, flow_style=flat)


def _represent_quoted(dumper: Any, data: _Quoted) -> Any:
    return dumper.represent_scalar("tag:yaml.org,2002:str", str(data), style='"')


_ModelDumper.add_representer(list, _represent_list)
_ModelDumper.add_representer(_Quoted, _represent_quoted)


def dump_yaml(data: Any) -> str:
    """
    Model data as YAML text in the form people write by hand.

    >>> print(dump_yaml({"grid": {"bins": 2}, "nodes": [{"id": "a", "values": [1, 2]}]}), end="")
    grid:
      bins: 2
    <BLANKLINE>
    nodes:
    - id: a
      values: [1, 2]
    """
    text: str = yaml.dump(data, Dumper=_ModelDumper, sort_keys=False, allow_unicode=True,
                          default_flow_style=False, width=100)
    # A blank line between top-level sections; continuation lines of long
    # scalars are always indented, so a line at column 0 starts a new key.
    lines = text.splitlines(keepends=True)
    out = [lines[0]] if lines else []
    for line in lines[1:]:
        if line[:1] not in (" ", "-", "\n", "#", ""):
            out.append("\n")
        out.append(line)
    return "".join(out)


def format_in(value: Any) -> str:
    """
    How a value reads inside a longer string (an expression, a title).

    >>> format_in(12), format_in(0.1), format_in(2.0), format_in(True), format_in([1, 2.5])
    ('12', '0.1', '2', 'true', '[1, 2.5]')
    """
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return format_number(float(value)) if isinstance(value, float) else str(value)
    if isinstance(value, list | tuple):
        return "[" + ", ".join(format_in(v) for v in value) + "]"
    return str(value)


def substitute(data: Any, values: Mapping[str, Any]) -> Any:
    """
    A copy of ``data`` with placeholders replaced.

    >>> substitute({"a": "${n}", "b": "x * ${n}", "c": ["${n}", 1]}, {"n": 3})
    {'a': 3, 'b': 'x * 3', 'c': [3, 1]}
    """
    if isinstance(data, dict):
        return {k: substitute(v, values) for k, v in data.items()}
    if isinstance(data, list):
        return [substitute(v, values) for v in data]
    if isinstance(data, str) and "${" in data:
        whole = WHOLE_PLACEHOLDER.match(data)
        if whole:
            value = values[whole.group(1)]
            return list(value) if isinstance(value, tuple) else value
        return PLACEHOLDER.sub(lambda m: format_in(values[m.group(1)]), data)
    return data


@dataclass(frozen=True)
class Generated:
    """
    One generation: the model (text and validated form), its provenance, the
    resolved parameters and what generation adjusted on the way (``warnings``:
    per-bin arrays fitted to the grid).
    """

    template: Template
    parameters: dict[str, Any]
    model_data: dict[str, Any]
    model_text: str  # YAML without a provenance block
    loaded: LoadedModel
    provenance: Provenance
    hash: str  # SHA-256 hex of the canonical model (provenance and metadata excluded)
    warnings: tuple[Problem, ...] = ()

    @property
    def title(self) -> str:
        return self.loaded.model.metadata.title or self.template.title

    @property
    def model_id(self) -> str:
        return self.provenance.model_id

    @property
    def hash_prefix(self) -> str:
        return self.hash[:HASH_PREFIX_LENGTH]

    @functools.cached_property
    def topology(self) -> Topology:
        """Edges and outputs, computed once for the quality report and the preview."""
        return topology(self.loaded.model)

    def text(self, embed_provenance: bool = False) -> str:
        """The model YAML, optionally with a ``provenance:`` block after ``schemaVersion``."""
        if not embed_provenance:
            return self.model_text
        return embed(self.model_data, self.provenance)


def embed(model_data: Mapping[str, Any], provenance: Provenance) -> str:
    """Model YAML with ``provenance`` placed right after ``schemaVersion``."""
    data: dict[str, Any] = {"schemaVersion": model_data.get("schemaVersion", 1),
                            "provenance": provenance.to_json()}
    data.update((k, v) for k, v in model_data.items() if k not in data)
    return dump_yaml(_quote_expressions(data))


def timestamps(now: datetime | None = None) -> tuple[str, str]:
    """
    (``yyyyMMddTHHmmssZ`` for model ids, ISO-8601 UTC with milliseconds).

    >>> timestamps(datetime(2025, 10, 3, 12, 0, 0, 123456, tzinfo=UTC))
    ('20251003T120000Z', '2025-10-03T12:00:00.123Z')
    """
    now = (now or datetime.now(UTC)).astimezone(UTC)
    compact = now.strftime("%Y%m%dT%H%M%SZ")
    iso = now.strftime("%Y-%m-%dT%H:%M:%S.") + f"{now.microsecond // 1000:03d}Z"
    return compact, iso


def make_model_id(template: Template, parameters: Mapping[str, Any], now: datetime | None = None) -> str:
    """``model_<yyyyMMddTHHmmssZ>_<8 hex of template id, version and parameters>``."""
    compact, _ = timestamps(now)
    return f"model_{compact}_{parameters_hash(template.id, template.version, dict(parameters))}"


@dataclass(frozen=True)
class Draft:
    """
    A template's model data before the engine has read it: the parameters as
    resolved, what fitting them to the grid said, and a note per profiled pmf.
    """

    data: dict[str, Any]
    parameters: dict[str, Any]
    defaults: dict[str, Any]
    warnings: tuple[Problem, ...]
    profiles: dict[str, dict[str, Any]]


def draft_model(template: Template, overrides: Mapping[str, Any] | None = None, *,
                max_array_length: int | None = None) -> Draft:
    """
    Check and substitute the parameters and lower the template's own terms
    (``flowtime.sim.lowering``); the model is not loaded yet.

    Raises ``ParameterError`` (every parameter problem at once) or
    ``TemplateValidationError`` (what lowering found, located in the template).
    """
    overrides = dict(overrides or {})
    checked, problems = check_parameters(template.parameters, overrides,
                                         max_array_length=max_array_length)
    fitted = fit_arrays(template, checked, overrides, max_array_length=max_array_length)
    problems += fitted.problems
    if problems:
        raise ParameterError(problems, template.id)
    resolved = fitted.values
    lowered = lower(substitute(template.body, resolved))
    if lowered.problems:
        raise TemplateValidationError([template.problem(path, message) for path, message in lowered.problems],
                                      template.source)
    body = lowered.data
    data: dict[str, Any] = {"schemaVersion": body.get("schemaVersion", 1),
                            "metadata": {"title": model_title(template, resolved, fitted.defaults)}}
    data.update((k, v) for k, v in body.items() if k != "schemaVersion")
    return Draft(data, resolved, fitted.defaults, fitted.warnings, lowered.profiles)


def render_template(
    template: Template,
    overrides: Mapping[str, Any] | None = None,
    *,
    now: datetime | None = None,
    max_array_length: int | None = None,
    derived_from: str | None = None,
    mode: str | None = None,
) -> Generated:
    """
    Generate a model from ``template`` with ``overrides``.

    Per-bin arrays left at their default follow ``grid.bins`` (``Generated.warnings``
    says which). The model carries ``metadata.title``: the template's title
    and the parameters that differ from their defaults. Every series the
    topology's semantics name becomes an output. ``mode`` (simulation or
    telemetry) overrides the template's and is recorded in the provenance.

    Raises ``ParameterError`` (every parameter problem at once, a bad ``mode``
    included), ``TemplateValidationError`` or the model loader's
    ``ModelError`` when the generated model is not valid.
    """
    chosen = _mode(template, mode)
    drafted = draft_model(template, overrides, max_array_length=max_array_length)
    resolved, data = drafted.parameters, drafted.data
    source = f"{template.id} (generated)"
    text = dump_yaml(_quote_expressions(data))
    loaded = load_model(text, source)
    # Read off the loaded model: the queue and sink series the engine adds are named as it names them.
    added = semantics_outputs(loaded.model, data.get("outputs") or [])
    if added:
        data = {**data, "outputs": [*data["outputs"], *added]}
        text = dump_yaml(_quote_expressions(data))
        loaded = load_model(text, source)

    compact, iso = timestamps(now)
    extra: dict[str, Any] = {"mode": chosen}
    if drafted.profiles:
        extra["profiles"] = drafted.profiles
    provenance = Provenance(
        source=SOURCE,
        model_id=f"model_{compact}_{parameters_hash(template.id, template.version, resolved)}",
        template_id=template.id,
        template_version=template.version,
        template_title=template.title,
        parameters=resolved,
        generated_at=iso,
        generator=GENERATOR,
        schema_version=PROVENANCE_SCHEMA_VERSION,
        derived_from=derived_from,
        extra=extra,
    )
    return Generated(template, resolved, data, text, loaded, provenance,
                     model_digest(loaded.model), drafted.warnings)


def _mode(template: Template, mode: str | None) -> str:
    if mode is None:
        return template.mode
    chosen = mode.strip().lower()
    if chosen not in MODES:
        raise ParameterError([Problem("mode", f"mode must be one of {', '.join(MODES)}, got {mode!r}")],
                             template.id)
    return chosen


def _quote_expressions(data: dict[str, Any]) -> dict[str, Any]:
    nodes = data.get("nodes")
    if not isinstance(nodes, list):
        return data
    quoted = []
    for n in nodes:
        if isinstance(n, dict) and isinstance(n.get("expr"), str):
            n = {**n, "expr": _Quoted(n["expr"])}
        quoted.append(n)
    return {**data, "nodes": quoted}


def check_template(template: Template, *, max_array_length: int | None = None) -> None:
    """
    Render the defaults and validate the model they give; raise
    ``TemplateValidationError`` naming the template when they do not make a
    valid model. Templates with required parameters are checked only
    structurally.
    """
    if any(p.required for p in template.parameters):
        return
    try:
        # The defaults as if given: a default array must fit the default grid
        # (fitting is for a changed bins, not for an inconsistent template).
        render_template(template, template.defaults, max_array_length=max_array_length)
    except ParameterError as exc:
        raise TemplateValidationError(
            [Problem(p.path, f"with the defaults: {p.message}", source=template.source)
             for p in exc.problems], template.source) from None
    except ModelError as exc:
        problems = list(exc.problems) or [Problem("", str(exc))]
        raise TemplateValidationError(
            [Problem(p.path, f"the model generated from the defaults is invalid: {p.message}",
                     severity=p.severity, source=template.source)
             for p in problems], template.source) from None

