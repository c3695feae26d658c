"""
The template format: YAML text -> ``Template``, with every problem located.

A template is a model with ``${name}`` placeholders plus sections that are
not part of the model: ``metadata`` (id, title, description, tags, version)
and ``parameters``, and in the reference's later form ``generator`` (which
must start with ``flowtime-sim``) and ``mode`` (simulation or telemetry). A
template with ``generator:`` is in that form and must give ``metadata.title``
and a semver ``metadata.version``; our own templates need neither key
(decision 0023). ``window``, node ``source``, ``profile`` and
``dependencies`` stay in the body: they may hold placeholders, and
``flowtime.sim.lowering`` turns them into model terms after substitution.

The reference's authoring spellings are read unchanged and turned into the
engine's: node ``expression:`` -> ``expr:``, output
``source:`` -> ``series:`` and ``filename:`` -> ``as:``.

Parsing checks the template's own structure (metadata, parameter
declarations and their defaults, placeholders that name no parameter);
``flowtime.sim.render.check_template`` then renders the defaults and runs the
shared model validation over the result.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from flowtime.errors import ModelSyntaxError, Problem, TemplateError, sorted_problems
from flowtime.expr.functions import suggest
from flowtime.model.parameters import Parameter, parse_parameter
from flowtime.model.yamltext import Path, SourceMap, format_path, parse_yaml

TEMPLATE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}\Z")
PLACEHOLDER = re.compile(r"\$\{([^{}]*)\}")
WHOLE_PLACEHOLDER = re.compile(r"^\$\{([A-Za-z_][A-Za-z0-9_]*)\}\Z")
# ASCII classes only: `\d` would also take other scripts' digits ("١.٠").
SEMVER = re.compile(r"^[0-9]+\.[0-9]+(\.[0-9]+)?([-+][0-9A-Za-z.+-]+)?\Z")
DEFAULT_VERSION = "1.0"
TEMPLATE_ONLY_KEYS = ("metadata", "parameters", "generator", "mode")
GENERATOR_PREFIX = "flowtime-sim"
MODES = ("simulation", "telemetry")
DEFAULT_MODE = "simulation"
# Engine spelling -> the reference's authoring spelling, to locate renamed keys.
_AUTHORED = {"expr": "expression", "series": "source", "as": "filename"}
_METADATA_KEYS = ("id", "title", "description", "tags", "version", "author", "category", "narrative",
                  "captureKey")


class TemplateValidationError(TemplateError):
    """A template that cannot be used; ``problems`` lists every reason, located."""

    title = "Invalid template"

    def __init__(self, problems: Iterable[Problem], source: str = "") -> None:
        self._problems = sorted_problems(problems)
        self.source = source
        errors = [p for p in self._problems if p.severity == "error"]
        head = f"template {source} has {len(errors)} problem{'s' if len(errors) != 1 else ''}:"
        super().__init__("\n".join([head, *(f"  - {p}" for p in errors)]))

    @property
    def problems(self) -> Sequence[Problem]:
        return self._problems


@dataclass(frozen=True)
class Placeholder:
    """A ``${name}`` occurrence: where, and whether it is the whole scalar."""

    name: str
    path: Path
    whole: bool


@dataclass(frozen=True)
class Template:
    """
    A parsed, structurally valid template.

    ``body`` is the model part in engine spelling, placeholders still in
    place; ``parameters`` are in declaration order.
    """

    id: str
    title: str
    description: str
    tags: tuple[str, ...]
    version: str
    parameters: tuple[Parameter, ...]
    body: dict[str, Any]
    placeholders: tuple[Placeholder, ...]
    source: str = "<string>"
    origin: str = "builtin"
    warnings: tuple[Problem, ...] = field(default=())
    generator: str | None = None  # the reference's later form names its generator
    mode: str = DEFAULT_MODE
    # Where the template's keys are, to locate problems found at generation.
    smap: SourceMap | None = field(default=None, compare=False, repr=False)

    def problem(self, path: Path, message: str, severity: str = "error") -> Problem:
        """A problem at ``path`` of the body (same indices as the template), located in the template."""
        if self.smap is None:
            return Problem(format_path(path), message, severity=severity, source=self.source)
        found = _Findings(self.source, self.smap, self.body)
        found.add(path, message, severity)
        return found.items[0]

    def parameter(self, name: str) -> Parameter:
        for p in self.parameters:
            if p.name == name:
                return p
        raise KeyError(name)

    @property
    def defaults(self) -> dict[str, Any]:
        return {p.name: p.default for p in self.parameters if not p.required}

    @property
    def bins_parameter(self) -> str | None:
        """The parameter that is the whole of ``grid.bins``, if one is."""
        for ph in self.placeholders:
            if ph.whole and ph.path == ("grid", "bins"):
                return ph.name
        return None

    @property
    def per_bin_arrays(self) -> tuple[str, ...]:
        """
        Array parameters that are the whole ``values:`` of a const node: one
        value per bin, so their length follows ``grid.bins``.
        """
        arrays = {p.name for p in self.parameters if p.type == "array"}
        nodes = self.body.get("nodes")
        out: list[str] = []
        for ph in self.placeholders:
            if not (ph.whole and ph.name in arrays and len(ph.path) == 3 and ph.path[0] == "nodes"
                    and ph.path[2] == "values" and isinstance(nodes, list)):
                continue
            node = nodes[int(ph.path[1])]
            if isinstance(node, dict) and node.get("kind", "const") == "const" and ph.name not in out:
                out.append(ph.name)
        return tuple(out)

    @property
    def unused_parameters(self) -> list[str]:
        used = {ph.name for ph in self.placeholders}
        return [p.name for p in self.parameters if p.name not in used]

    def summary(self) -> dict[str, Any]:
        """The list entry served by ``GET /api/v1/templates``."""
        return {
            "id": self.id,
            "title": self.title,
            "description": self.description,
            "tags": list(self.tags),
            "version": self.version,
            "parameterCount": len(self.parameters),
        }

    def describe(self) -> dict[str, Any]:
        """The detail served by ``GET /api/v1/templates/{id}``: the summary with full parameters."""
        head = {k: v for k, v in self.summary().items() if k != "parameterCount"}
        per_bin = self.per_bin_arrays
        # perBin and binsParameter let a form resize those arrays when bins changes.
        return {**head, "binsParameter": self.bins_parameter,
                "parameters": [{**p.describe(), "perBin": p.name in per_bin} for p in self.parameters]}


class _Findings:
    """Collects located problems while a template is read."""

    def __init__(self, source: str, smap: SourceMap, data: Any = None) -> None:
        self.source = source
        self.smap = smap
        self.data = data
        self.items: list[Problem] = []

    def _shown(self, path: Path) -> str:
        """nodes[3].expr -> nodes.served.expr when node 3 has an id (as the model loader does)."""
        if len(path) >= 2 and path[0] == "nodes" and isinstance(path[1], int) and isinstance(self.data, dict):
            nodes = self.data.get("nodes")
            if isinstance(nodes, list) and path[1] < len(nodes) and isinstance(nodes[path[1]], dict):
                node_id = nodes[path[1]].get("id")
                if isinstance(node_id, str):
                    return format_path(("nodes", node_id, *path[2:]))
        return format_path(path)

    def add(self, path: Path, message: str, severity: str = "error", *, key: bool = False) -> None:
        if path not in self.smap.marks and path and path[-1] in _AUTHORED:
            authored = (*path[:-1], _AUTHORED[str(path[-1])])
            path = authored if authored in self.smap.marks else path
        line, col = self.smap.find_key(path) if key else self.smap.find(path)
        self.items.append(Problem(self._shown(path), message, line, col, severity, self.source))

    @property
    def has_errors(self) -> bool:
        return any(p.severity == "error" for p in self.items)


def parse_template(text: str, source: str = "<string>", *, fallback_id: str | None = None,
                   origin: str = "builtin") -> Template:
    """
    Read a template. Raises ``TemplateValidationError`` listing every problem.

    >>> t = parse_template(
    ...     "metadata: {id: demo, title: Demo}\\n"
    ...     "parameters: [{name: n, type: integer, default: 2}]\\n"
    ...     "grid: {bins: 2, binSize: 1, binUnit: hours}\\n"
    ...     "nodes: [{id: a, kind: const, values: [1, 2]}, {id: b, kind: expr, expression: 'a * ${n}'}]\\n"
    ...     "outputs: [{id: b, source: b, filename: b.csv}]\\n")
    >>> t.id, t.version, t.body["nodes"][1], t.body["outputs"][0]
    ('demo', '1.0', {'id': 'b', 'kind': 'expr', 'expr': 'a * ${n}'}, {'id': 'b', 'series': 'b', 'as': 'b.csv'})
    """
    try:
        data, smap = parse_yaml(text, source)
    except ModelSyntaxError as exc:
        raise TemplateValidationError(exc.problems, source) from None
    found = _Findings(source, smap, data)
    if not isinstance(data, dict):
        found.add((), "a template must be a mapping with metadata, parameters, grid, nodes and outputs")
        raise TemplateValidationError(found.items, source)

    generator = _generator(data, found)
    mode = _mode(data, found)
    meta = _metadata(data.get("metadata"), found, fallback_id, later=generator is not None)
    params = _parameters(data.get("parameters"), found)
    body = {k: v for k, v in data.items() if k not in TEMPLATE_ONLY_KEYS}
    body = _engine_spelling(body, found)
    placeholders = list(_placeholders(body, found))
    names = {p.name for p in params}
    for ph in placeholders:
        if ph.name not in names:
            hint = suggest(ph.name, sorted(names))
            found.add(ph.path, f"placeholder ${{{ph.name}}} names no declared parameter{hint}")
    used = {ph.name for ph in placeholders}
    for i, p in enumerate(params):
        if p.name not in used:
            found.add(("parameters", i), f"parameter `{p.name}` is declared but never used", "warning")
    if found.has_errors:
        raise TemplateValidationError(found.items, source)
    return Template(
        id=meta["id"], title=meta["title"], description=meta["description"], tags=meta["tags"],
        version=meta["version"], parameters=tuple(params), body=body,
        placeholders=tuple(placeholders), source=source, origin=origin,
        warnings=tuple(p for p in found.items if p.severity == "warning"),
        generator=generator, mode=mode, smap=smap,
    )


def _generator(data: dict[str, Any], found: _Findings) -> str | None:
    if "generator" not in data:
        return None
    raw = data["generator"]
    if not isinstance(raw, str) or not raw.strip().startswith(GENERATOR_PREFIX):
        found.add(("generator",), f"generator must start with '{GENERATOR_PREFIX}', got {raw!r}")
        return None
    return raw.strip()


def _mode(data: dict[str, Any], found: _Findings) -> str:
    if "mode" not in data:
        return DEFAULT_MODE
    raw = data["mode"]
    mode = raw.strip().lower() if isinstance(raw, str) else None
    if mode not in MODES:
        found.add(("mode",), f"mode must be one of {', '.join(MODES)}, got {raw!r}")
        return DEFAULT_MODE
    return mode


def _metadata(raw: Any, found: _Findings, fallback_id: str | None, *, later: bool = False) -> dict[str, Any]:
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        found.add(("metadata",), "metadata must be a mapping with id, title, description, tags, version")
        raw = {}
    for key in raw:
        if key not in _METADATA_KEYS:
            found.add(("metadata", key), f"metadata field '{key}' is ignored", "warning", key=True)
    tid = raw.get("id", fallback_id)
    if tid is None:
        found.add(("metadata",), "metadata.id is required (letters, digits, '-', '_', '.')")
        tid = ""
    elif not isinstance(tid, str) or not TEMPLATE_ID.match(tid):
        found.add(("metadata", "id"), "metadata.id must start with a letter or digit and use only "
                  f"letters, digits, '-', '_' and '.' (at most 128), got {tid!r}")
        tid = str(tid)
    title = raw.get("title")
    description = raw.get("description")
    for key in ("title", "version") if later else ():
        if raw.get(key) is None:  # the reference requires both once a template names its generator
            found.add(("metadata",), f"metadata.{key} is required in a template with generator: "
                      "(the reference's form)", key=True)
    version = raw.get("version", DEFAULT_VERSION)
    if isinstance(version, int | float) and not isinstance(version, bool):
        version = str(version)  # `version: 1.0` reads as a float
    if not isinstance(version, str) or not SEMVER.match(version):
        found.add(("metadata", "version"), f"metadata.version must look like 1.2.3, got {version!r}")
        version = DEFAULT_VERSION
    tags = raw.get("tags", [])
    if isinstance(tags, str):
        tags = [t.strip() for t in tags.strip("[]").split(",") if t.strip()]
    if not isinstance(tags, list) or any(isinstance(t, dict | list) for t in tags):
        found.add(("metadata", "tags"), "metadata.tags must be a list of words")
        tags = []
    return {
        "id": tid,
        "title": str(title) if title is not None else tid,
        "description": str(description) if description is not None else "",
        "tags": tuple(str(t) for t in tags),
        "version": version,
    }


def _parameters(raw: Any, found: _Findings) -> list[Parameter]:
    if raw is None:
        return []
    if not isinstance(raw, list):
        found.add(("parameters",), "parameters must be a list of {name, type, default, ...} mappings")
        return []
    out: list[Parameter] = []
    seen: dict[str, int] = {}
    for i, item in enumerate(raw):
        param, findings = parse_parameter(item, i)
        for path, severity, message in findings:
            found.add(path, message, severity, key=severity == "warning")
        if param is None:
            continue
        if param.name in seen:
            found.add(("parameters", i, "name"), f"parameter `{param.name}` is declared twice "
                      f"(first as parameter {seen[param.name] + 1})")
            continue
        seen[param.name] = i
        out.append(param)
    return out


def _engine_spelling(body: dict[str, Any], found: _Findings) -> dict[str, Any]:
    """Rename the reference's authoring keys to the model's, keeping key order."""
    out = dict(body)
    nodes = body.get("nodes")
    if isinstance(nodes, list):
        out["nodes"] = [
            _renamed(n, {"expression": "expr"}, ("nodes", i), found) if isinstance(n, dict) else n
            for i, n in enumerate(nodes)
        ]
    outputs = body.get("outputs")
    if isinstance(outputs, list):
        out["outputs"] = [
            _renamed(o, {"source": "series", "filename": "as"}, ("outputs", i), found)
            if isinstance(o, dict) else o
            for i, o in enumerate(outputs)
        ]
    return out


def _renamed(item: dict[str, Any], names: dict[str, str], path: Path, found: _Findings) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in item.items():
        new = names.get(key, key)
        if new != key and new in item:
            found.add((*path, key), f"both `{key}` and `{new}` are given; keep one", key=True)
            continue
        out[new] = value
    return out


def _placeholders(data: Any, found: _Findings, path: Path = ()) -> Iterator[Placeholder]:
    if isinstance(data, dict):
        for k, v in data.items():
            yield from _placeholders(v, found, (*path, k))
    elif isinstance(data, list):
        for i, v in enumerate(data):
            yield from _placeholders(v, found, (*path, i))
    elif isinstance(data, str) and "${" in data:
        whole = WHOLE_PLACEHOLDER.match(data) is not None
        for m in PLACEHOLDER.finditer(data):
            name = m.group(1)
            if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
                found.add(path, f"malformed placeholder {m.group(0)!r}; write ${{name}} with a "
                          "parameter name")
                continue
            yield Placeholder(name, path, whole)
        if PLACEHOLDER.sub("", data).count("${"):
            found.add(path, f"unclosed placeholder in {data!r}; write ${{name}}")
