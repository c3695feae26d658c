"""
Model text -> validated ``Model``, collecting every problem with its location.

The loader takes text plus a source name (for messages) and never opens files.
Checks are hand-written rather than left to pydantic so that each message says
where (file, line, column, node, field), what was expected and what was found.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from flowtime.errors import (
    ExpressionError,
    LimitExceeded,
    ModelSyntaxError,
    ModelValidationError,
    Problem,
)
from flowtime.expr.functions import suggest
from flowtime.expr.parser import parse_with_outline
from flowtime.expr.shapes import Outline
from flowtime.expr.syntax import Expr, Num
from flowtime.gcpause import paused_gc
from flowtime.model import kinds
from flowtime.model.analysis_settings import read_analysis
from flowtime.model.classes import Arrival, FlowClass, read_classes, read_traffic
from flowtime.model.decompose import decompose
from flowtime.model.files import SeriesFiles, load_files
from flowtime.model.graph import Analysis, ModelGraph, analyse_nodes, graph_from, graph_of, output_pattern, remember
from flowtime.model.limits import DEFAULT_LIMITS, Limits
from flowtime.model.nodes import is_number, type_name
from flowtime.model.provenance import Provenance, provenance_from_mapping
from flowtime.model.routers import RouterNode
from flowtime.model.schema import (
    BinUnit,
    Grid,
    Metadata,
    Model,
    Output,
    Rng,
)
from flowtime.model.synthesis import lower
from flowtime.model.topology import Topology, read_topology
from flowtime.model.yamltext import Path, SourceMap, format_path, parse_yaml, remove_top_level_key

TOP_LEVEL_KEYS = ("schemaVersion", "grid", "nodes", "outputs", "rng", "metadata", "provenance", "topology", "classes",
                  "traffic", "analysis")
WINDOW_KEYS = ("window", "variables", "constraints")  # the window (fixture) form's, beside topology
# \Z, not $: `$` also matches before a final newline ("b\n" must not pass).
NODE_ID = re.compile(r"^[^\W\d][\w.\-]{0,127}\Z")
OUTPUT_NAME = re.compile(r"^[\w][\w.\- ]{0,127}\Z")

@dataclass
class LoadedModel:
    """A validated model plus what the loader learned on the way."""

    model: Model
    spec_text: str  # the text as given, minus any embedded provenance block
    provenance: Provenance | None
    warnings: list[Problem] = field(default_factory=list)
    source: str = "<string>"

    @property
    def graph(self) -> ModelGraph:
        """The model analysed (the loader's own analysis, kept with the model)."""
        return graph_of(self.model)


@dataclass
class _Ctx:
    source: str
    smap: SourceMap
    limits: Limits
    problems: list[Problem] = field(default_factory=list)

    def error(self, path: Path, message: str, *, key: bool = False, column_offset: int = 0) -> None:
        self._add(path, message, "error", key, column_offset)

    def error_at(self, path: Path, message: str, line: int | None, column: int | None) -> None:
        self.problems.append(Problem(_display_path(path, self), message, line, column, source=self.source))

    def warn(self, path: Path, message: str, *, key: bool = False) -> None:
        self._add(path, message, "warning", key, 0)

    def _add(self, path: Path, message: str, severity: str, key: bool, column_offset: int) -> None:
        line, col = self.smap.find_key(path) if key else self.smap.find(path)
        if col is not None and column_offset:
            col += column_offset
        self.problems.append(
            Problem(_display_path(path, self), message, line, col, severity=severity, source=self.source)
        )

    raw_nodes: list[Any] = field(default_factory=list)  # the document's `nodes` list, as written
    _node_names: dict[int, str] | None = None
    text: str = ""
    lenient_outputs: bool = False
    parse_expressions: bool = True  # False for the schema tier (``model.shape``): expressions stay text
    _lines: list[str] | None = None  # the text's lines, split when a problem is first located in them
    # node id -> (path of its expression field, the text): where to point at an issue
    texts: dict[str, tuple[Path, str]] = field(default_factory=dict)
    outlines: dict[str, Outline] = field(default_factory=dict)  # the parser's, by node id
    topology_names: dict[int, str] = field(default_factory=dict)  # topology.nodes index -> id
    origins: dict[str, Path] = field(default_factory=dict)  # a node FlowTime added -> where it comes from

    @property
    def node_names(self) -> dict[int, str]:
        """Each node's id by its place in the list (nodes that failed to load included), once asked for."""
        if self._node_names is None:
            self._node_names = {i: item["id"] for i, item in enumerate(self.raw_nodes)
                                if isinstance(item, dict) and isinstance(item.get("id"), str)}
        return self._node_names

    def text_line(self, line: int) -> str:
        if self._lines is None:
            self._lines = self.text.splitlines()
        return self._lines[line - 1] if 0 < line <= len(self._lines) else ""


def _display_path(path: Path, ctx: _Ctx) -> str:
    """nodes[3].expr -> nodes.served.expr when node 3 has an id."""
    if len(path) >= 2 and path[0] == "nodes" and isinstance(path[1], int) and path[1] in ctx.node_names:
        return format_path(("nodes", ctx.node_names[path[1]], *path[2:]))
    if (len(path) >= 3 and path[:2] == ("topology", "nodes") and isinstance(path[2], int)
            and path[2] in ctx.topology_names):
        return format_path(("topology", "nodes", ctx.topology_names[path[2]], *path[3:]))
    return format_path(path)


def load_model(text: str, source: str = "<string>", *, limits: Limits = DEFAULT_LIMITS,
               series_files: SeriesFiles | None = None, lenient_outputs: bool = False) -> LoadedModel:
    """
    Parse and validate model YAML. Raises ``ModelSyntaxError`` for text that is
    not YAML, ``ModelValidationError`` listing every problem otherwise, and
    ``LimitExceeded`` for inputs over ``limits``. ``series_files`` reads the
    ``file:`` series the model references (``model.files``); without it they are errors.
    An output naming an unknown node is an error; with ``lenient_outputs`` it
    is skipped with a located warning, as the reference skips it silently (0024).

    >>> lm = load_model("schemaVersion: 1\\ngrid: {bins: 3, binSize: 1, binUnit: hours}\\n"
    ...                 "nodes:\\n  - {id: a, kind: const, values: [1, 2, 3]}\\n")
    >>> lm.model.grid.bins, lm.model.node_ids
    (3, ['a'])
    """
    if len(text) > limits.max_model_bytes:
        raise LimitExceeded(
            f"{source}: model text is {len(text)} bytes; the limit is {limits.max_model_bytes}",
            limit_name="max_model_bytes",
        )
    with paused_gc():
        return _load(text, source, limits, series_files, lenient_outputs)


def _load(text: str, source: str, limits: Limits, series_files: SeriesFiles | None,
          lenient_outputs: bool) -> LoadedModel:
    data, smap = parse_yaml(text, source, max_nodes=limits.max_yaml_nodes)
    ctx = _Ctx(source, smap, limits)
    ctx.lenient_outputs = lenient_outputs
    ctx.text = text
    if data is None:
        ctx.error((), "model is empty; expected a mapping with schemaVersion, grid and nodes")
        raise ModelValidationError(ctx.problems, source)
    if not isinstance(data, dict):
        ctx.error((), f"the top level must be a mapping (schemaVersion, grid, nodes, ...), got {type_name(data)}")
        raise ModelValidationError(ctx.problems, source)

    provenance = _provenance(data, ctx)
    window = is_window_form(data)
    _top_level_keys(data, ctx, window)
    if not window or "schemaVersion" in data:
        _schema_version(data, ctx)
    section = "window" if window else "grid"
    grid = _grid(data, ctx, section)
    bins = grid.bins if grid else _valid_bins(data, ctx.limits, section)
    nodes, exprs = _nodes(data, ctx, bins)
    topology, nodes = _topology(data, ctx, nodes, exprs, bins, series_files, "service" if window else None)
    classes, arrivals, nodes = _classes(data, ctx, nodes, exprs)
    outputs = _outputs(data, ctx, [n.id for n in nodes if not kinds.is_internal(n.id)])
    rng = _rng(data, ctx)
    metadata = _metadata(data, ctx)
    settings = read_analysis(data.get("analysis"), ctx)
    analysis = _analyse(nodes, exprs, ctx)

    errors = [p for p in ctx.problems if p.severity == "error"]
    if errors or grid is None:
        raise ModelValidationError(ctx.problems, source)

    model = Model(grid=grid, nodes=tuple(nodes), outputs=tuple(outputs), rng=rng, metadata=metadata,
                  topology=topology, classes=classes, arrivals=arrivals, analysis=settings)
    remember(graph_from(model, analysis))  # analysed once, here: Sim and the engine read this graph
    spec_text = text
    if "provenance" in data:
        stripped = remove_top_level_key(text, "provenance", smap)
        if stripped is None:
            import yaml  # re-serialise only for flow-style documents

            rest = {k: v for k, v in data.items() if k != "provenance"}
            stripped = yaml.safe_dump(rest, sort_keys=False)
        spec_text = stripped
    warnings = [p for p in ctx.problems if p.severity == "warning"]
    return LoadedModel(model, spec_text, provenance, warnings, source)


def _topology(data: dict[Any, Any], ctx: _Ctx, nodes: list[Any], exprs: dict[str, Expr],
              bins: int | None, series_files: SeriesFiles | None,
              default_kind: str | None = None) -> tuple[Topology | None, list[Any]]:
    """The topology section read, and the nodes with its files, queues (and every queue's companions) added."""
    topology = None
    if "topology" in data:
        raw = data["topology"]
        if isinstance(raw, dict) and isinstance(raw.get("nodes"), list):
            ctx.topology_names = {i: t["id"] for i, t in enumerate(raw["nodes"])
                                  if isinstance(t, dict) and isinstance(t.get("id"), str)}
        topology = read_topology(raw, ctx, default_kind)
    if topology is None and not any(kinds.kind_of(n).name == "serviceWithBuffer" for n in nodes):
        return None, nodes
    paths: dict[str, Path] = {name: ("nodes", i) for i, name in ctx.node_names.items()}
    declared = list(ctx.node_names.values())
    if topology is not None and bins is not None:
        topology, file_nodes, file_origins = load_files(topology, series_files, bins, set(declared), ctx)
        nodes = [*nodes, *file_nodes]
        declared += [n.id for n in file_nodes]
        ctx.origins.update(file_origins)
    lowered = lower(topology, nodes, exprs, declared, paths, bins, ctx)
    ctx.origins.update(lowered.origins)
    return lowered.topology, lowered.nodes


def _classes(data: dict[Any, Any], ctx: _Ctx, nodes: list[Any], exprs: dict[str, Expr]
             ) -> tuple[tuple[FlowClass, ...], tuple[Arrival, ...], list[Any]]:
    """The classes and traffic read; routers applied and every node's class parts added (``model.decompose``)."""
    classes = read_classes(data.get("classes"), ctx)
    arrivals = read_traffic(data.get("traffic"), classes, [n.id for n in nodes], ctx)
    routers = [n for n in nodes if isinstance(n, RouterNode)]
    if not arrivals and not routers:
        return classes, arrivals, nodes
    index = {name: i for i, name in ctx.node_names.items()}
    for k, n in enumerate(nodes):
        if isinstance(n, RouterNode) and n.id in index:  # where it is written, for warnings after evaluation
            line, _ = ctx.smap.find(("nodes", index[n.id]))
            nodes[k] = dataclasses.replace(n, line=line, file=ctx.source)

    def where(node_id: str) -> Path:
        return ("nodes", index[node_id]) if node_id in index else ctx.origins.get(node_id, ())

    dec = decompose(nodes, exprs, classes, arrivals, where, ctx)
    for route in (r for n in routers for r in n.routes):  # a target's own expression is no longer read
        exprs.pop(route.target, None)
        ctx.outlines.pop(route.target, None)
        ctx.texts.pop(route.target, None)
    ctx.origins.update(dec.origins)
    return classes, arrivals, dec.nodes


def _provenance(data: dict[Any, Any], ctx: _Ctx) -> Provenance | None:
    if "provenance" not in data:
        return None
    try:
        return provenance_from_mapping(data["provenance"], "provenance")
    except ModelValidationError as exc:
        for p in exc.problems:
            ctx.error(("provenance",), p.message if p.path == "provenance" else f"{p.path}: {p.message}")
        return None


def is_window_form(data: dict[Any, Any]) -> bool:
    """
    The reference's fixture form (``engine-head.md`` §10): ``window`` instead of
    ``grid``, a topology whose series come from files, ``variables: []`` and
    ``constraints: []``; no ``nodes``, and topology nodes without a kind (services).
    """
    return "window" in data and "grid" not in data


def _top_level_keys(data: dict[Any, Any], ctx: _Ctx, window: bool = False) -> None:
    for key in data:
        if key in TOP_LEVEL_KEYS:
            continue
        if window and key in WINDOW_KEYS:
            if key != "window" and data[key] not in (None, [], {}):
                ctx.warn((key,), f"top-level '{key}' of the window form is ignored (FlowTime reads "
                         f"{'topology.constraints' if key == 'constraints' else 'no variables'})", key=True)
            continue
        if key in ("arrivals", "route"):
            ctx.error((key,), f"top-level '{key}' is not supported; define nodes in the 'nodes' list instead", key=True)
            continue
        hint = suggest(str(key), TOP_LEVEL_KEYS)
        ctx.warn((key,), f"unknown top-level key '{key}' is ignored{hint}", key=True)


def _schema_version(data: dict[Any, Any], ctx: _Ctx) -> None:
    if "schemaVersion" not in data:
        ctx.error(("schemaVersion",), "schemaVersion is required: add `schemaVersion: 1` at the top")
        return
    v = data["schemaVersion"]
    if isinstance(v, str) and re.fullmatch(r"[0-9]{1,9}", v.strip()):
        v = int(v)
    if not isinstance(v, int) or isinstance(v, bool):
        ctx.error(("schemaVersion",), f"schemaVersion must be the integer 1, got {type_name(v)}")
    elif v != 1:
        ctx.error(("schemaVersion",), f"schemaVersion must be 1 (the only version this engine reads), got {v}")


def _int_field(ctx: _Ctx, grid: dict[Any, Any], key: str, lo: int, hi: int, limit_name: str = "",
               section: str = "grid") -> int | None:
    if key not in grid:
        ctx.error((section,), f"{section}.{key} is required")
        return None
    v = grid[key]
    if isinstance(v, float) and v.is_integer():
        v = int(v)
    if not isinstance(v, int) or isinstance(v, bool):
        ctx.error((section, key), f"{key} must be a whole number between {lo} and {hi}, got {type_name(v)}")
        return None
    if not lo <= v <= hi:
        extra = f" (limit {limit_name})" if limit_name else ""
        ctx.error((section, key), f"{key} must be between {lo} and {hi}{extra}, got {v}")
        return None
    return v


def convert_bin_minutes(minutes: int, max_bin_size: int = 1000) -> tuple[int, BinUnit] | None:
    """
    The largest unit that divides ``minutes`` evenly, with binSize <= max.

    >>> convert_bin_minutes(1440), convert_bin_minutes(90), convert_bin_minutes(120)
    ((1, <BinUnit.DAYS: 'days'>), (90, <BinUnit.MINUTES: 'minutes'>), (2, <BinUnit.HOURS: 'hours'>))
    """
    for unit in (BinUnit.WEEKS, BinUnit.DAYS, BinUnit.HOURS, BinUnit.MINUTES):
        if minutes % unit.minutes == 0 and minutes // unit.minutes <= max_bin_size:
            return minutes // unit.minutes, unit
    return None


def _grid(data: dict[Any, Any], ctx: _Ctx, section: str = "grid") -> Grid | None:
    """The grid (or, in the window form, the ``window``: the same keys, with ``startTimeUtc``)."""
    if section not in data:
        ctx.error(("grid",), "grid is required, e.g. `grid: {bins: 24, binSize: 1, binUnit: hours}`")
        return None
    g = data[section]
    if not isinstance(g, dict):
        ctx.error((section,), f"{section} must be a mapping with bins, binSize and binUnit, got {type_name(g)}")
        return None
    lim = ctx.limits
    bins = _int_field(ctx, g, "bins", 1, lim.max_bins, "max_bins", section)
    if "binMinutes" in g:
        bm = g["binMinutes"]
        if not isinstance(bm, int) or isinstance(bm, bool) or bm < 1:
            ctx.error(("grid", "binMinutes"), f"binMinutes must be a whole number >= 1, got {type_name(bm)}")
            return None
        conv = convert_bin_minutes(bm, lim.max_bin_size)
        if conv is None:
            ctx.error(("grid", "binMinutes"), f"binMinutes {bm} cannot be written as binSize <= "
                      f"{lim.max_bin_size} of minutes, hours, days or weeks")
            return None
        size, unit = conv
        if "binSize" in g or "binUnit" in g:
            ctx.error(("grid", "binMinutes"), "use either binMinutes (deprecated) or binSize/binUnit, not both",
                      key=True)
            return None
        ctx.warn(("grid", "binMinutes"), f"binMinutes is deprecated; read as binSize: {size}, binUnit: {unit.value}"
                 f" — write that instead", key=True)
        return Grid(bins, size, unit) if bins is not None else None
    size_v = _int_field(ctx, g, "binSize", 1, lim.max_bin_size, section=section)
    unit_v: BinUnit | None = None
    if "binUnit" not in g:
        ctx.error((section,), f"{section}.binUnit is required (minutes, hours, days or weeks)")
    else:
        raw = g["binUnit"]
        try:
            unit_v = BinUnit(str(raw).strip().lower()) if isinstance(raw, str) else None
        except ValueError:
            unit_v = None
        if unit_v is None:
            hint = suggest(str(raw).lower(), [u.value for u in BinUnit])
            ctx.error((section, "binUnit"), f"binUnit must be one of minutes, hours, days, weeks, got "
                      f"{type_name(raw)}{hint}")
    for key in g:
        # startTimeUtc: the window form's and the reference's retry fixtures' name for start (both unused)
        if key not in ("bins", "binSize", "binUnit", "binMinutes", "start", "startTimeUtc"):
            ctx.warn((section, key), f"unknown {section} key '{key}' is ignored", key=True)
    if bins is None or size_v is None or unit_v is None:
        return None
    return Grid(bins, size_v, unit_v)


def _valid_bins(data: dict[Any, Any], limits: Limits, section: str = "grid") -> int | None:
    g = data.get(section)
    b = g.get("bins") if isinstance(g, dict) else None
    return b if isinstance(b, int) and not isinstance(b, bool) and 1 <= b <= limits.max_bins else None


def _nodes(data: dict[Any, Any], ctx: _Ctx, bins: int | None) -> tuple[list[Any], dict[str, Expr]]:
    """The nodes (each read by its kind's entry in the kind table) and the expressions parsed on the way."""
    raw = data.get("nodes")
    if raw is None:
        return [], {}
    if isinstance(raw, dict):
        ctx.error(("nodes",), "nodes must be a list of node mappings (`- id: demand` ...), got a mapping")
        return [], {}
    if not isinstance(raw, list):
        ctx.error(("nodes",), f"nodes must be a list of node mappings, got {type_name(raw)}")
        return [], {}
    if len(raw) > ctx.limits.max_nodes:
        raise LimitExceeded(f"{ctx.source}: model has {len(raw)} nodes; the limit is {ctx.limits.max_nodes}",
                            limit_name="max_nodes")
    ctx.raw_nodes = raw
    _check_work(raw, ctx, bins)
    table = kinds.kinds()
    default = next((k for k in table.values() if k.default), None)
    default_name = default.name if default else None
    nodes: list[Any] = []
    exprs: dict[str, Expr] = {}
    outlines = ctx.outlines
    first_seen: dict[str, int] = {}
    match = NODE_ID.match
    src = _NodeSource(ctx, bins)  # pointed at each node in turn
    for i, item in enumerate(raw):
        if not isinstance(item, dict):
            ctx.error(("nodes", i), f"each node must be a mapping with id and kind, got {type_name(item)}")
            continue
        node_id = item.get("id")
        # An ASCII identifier of at most 128 characters is an id NODE_ID accepts (and is checked faster).
        if not isinstance(node_id, str) or not (
                (node_id.isascii() and node_id.isidentifier() and len(node_id) <= 128) or match(node_id)):
            if not isinstance(node_id, str) or not node_id.strip():
                ctx.error(("nodes", i), "node is missing its `id` (a name such as `demand`)")
            else:
                ctx.error(("nodes", i, "id"), f"node id {node_id!r} must start with a letter or '_' and contain "
                          "only letters, digits, '_', '.' or '-' (at most 128 characters)")
            continue
        if node_id in first_seen:
            line, _ = ctx.smap.find(("nodes", first_seen[node_id]))
            ctx.error(("nodes", i, "id"), f"duplicate node id '{node_id}' (first defined on line {line})")
            continue
        first_seen[node_id] = i
        name = item.get("kind", default_name)
        spec = table.get(name) if isinstance(name, str) else None
        if spec is None or not spec.written:
            names = tuple(k for k, v in table.items() if v.written)
            ctx.error(("nodes", i, "kind"), f"unknown node kind {name!r}{suggest(str(name), names)}; expected one "
                      f"of {', '.join(names)}")
            continue
        if not spec.fields.issuperset(item):
            for key in item:
                if key not in spec.fields and not (spec.name == "expr" and key == "expression"):
                    ctx.warn(("nodes", i, key), f"field '{key}' is not used by {spec.name} nodes and is ignored",
                             key=True)
        title = item.get("title")
        desc = item.get("description")
        # src.point(...), inline: this loop runs once per node of the largest models
        src.path = ("nodes", i)
        src.node_id = node_id
        src.title = title if isinstance(title, str) else None
        src.description = desc if isinstance(desc, str) else None
        src.ast = src.outline = None
        node = spec.parse(item, src)
        if node is not None:
            nodes.append(node)
            if src.ast is not None:
                exprs[node_id] = src.ast
                if src.outline is not None:
                    outlines[node_id] = src.outline
    return nodes, exprs


class _NodeSource:
    """The loader's side of ``kinds.NodeSource``: one node's fields, located in the text (one node at a time)."""

    def __init__(self, ctx: _Ctx, bins: int | None) -> None:
        self.ctx = ctx
        self.bins = bins
        self.max_nesting = ctx.limits.max_expression_nesting
        self.max_length = ctx.limits.max_expression_length
        self.point((), "", None, None)

    def point(self, path: Path, node_id: str, title: str | None, description: str | None) -> None:
        """Read the node at ``path`` next."""
        self.path = path
        self.node_id = node_id
        self.title = title
        self.description = description
        self.ast: Expr | None = None  # the node's expression, as the last call to ``expression`` parsed it
        self.outline: Outline | None = None

    def _at(self, field: str | tuple[str | int, ...]) -> Path:
        return (*self.path, *((field,) if isinstance(field, str) else field))

    def error(self, field: str | tuple[str | int, ...], message: str, *, key: bool = False) -> None:
        self.ctx.error(self._at(field), message, key=key)

    def warn(self, field: str | tuple[str | int, ...], message: str, *, key: bool = False) -> None:
        self.ctx.warn(self._at(field), message, key=key)

    def numbers(self, field: str | tuple[str | int, ...], values: list[Any], what: str) -> np.ndarray | None:
        return _number_array(values, self._at(field), self.ctx, what)

    def expression(self, field: str, text: str) -> Expr | None:
        if not self.ctx.parse_expressions:
            return _UNPARSED
        where = (*self.path, field)
        try:
            ast, outline = parse_with_outline(text, self.max_nesting, self.max_length)
        except ExpressionError as exc:
            ctx = self.ctx
            block = _block_scalar_start(ctx, where)
            if block is not None:
                ctx.error_at(where, str(exc), block[0], block[1] + exc.column - 1)
            else:
                ctx.error(where, str(exc), column_offset=_quote_offset(ctx, where, exc.column))
            return None
        self.ast, self.outline = ast, outline
        self.ctx.texts[self.node_id] = (where, text)
        return ast


_UNPARSED = Num(0.0)  # what ``expression`` answers when expressions are left as text (``self.ast`` stays None)


def _check_work(raw: list[Any], ctx: _Ctx, bins: int | None) -> None:
    """Refuse, before any array is built, a model whose values or expressions are over the limits."""
    lim = ctx.limits
    if lim.max_cells is not None and bins is not None and len(raw) * bins > lim.max_cells:
        raise LimitExceeded(
            f"{ctx.source}: {len(raw)} nodes x {bins} bins = {len(raw) * bins} values; the limit is "
            f"{lim.max_cells} (max_cells): use fewer bins or nodes", limit_name="max_cells")
    if lim.max_expression_total is not None:
        total = sum(len(item["expr"]) for item in raw if isinstance(item, dict) and isinstance(item.get("expr"), str))
        if total > lim.max_expression_total:
            raise LimitExceeded(
                f"{ctx.source}: the expressions hold {total} characters together; the limit is "
                f"{lim.max_expression_total} (max_expression_total)", limit_name="max_expression_total")


_YAML11_FLOAT = re.compile(r"^[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)$")


def _number_array(values: list[Any], path: Path, ctx: _Ctx, what: str) -> np.ndarray | None:
    # YAML 1.1 reads `3e1` (no dot) as text; YAML 1.2 and every user read a number.
    if any(isinstance(v, str) for v in values):
        values = [float(v) if isinstance(v, str) and _YAML11_FLOAT.match(v) else v for v in values]
    try:
        if any(isinstance(v, bool) or not isinstance(v, int | float) for v in values):
            raise TypeError
        arr = np.array(values, dtype=np.float64)
    except (TypeError, ValueError, OverflowError):
        for j, v in enumerate(values):
            if not is_number(v):
                ctx.error((*path, j), f"{what} must be numbers; item {j} is {type_name(v)}")
                return None
        ctx.error(path, f"{what} must be numbers")
        return None
    bad = np.flatnonzero(~np.isfinite(arr))
    if bad.size:
        ctx.error((*path, int(bad[0])), f"{what} must be finite numbers; item {int(bad[0])} is {arr[bad[0]]}")
        return None
    arr.flags.writeable = False
    return arr


def _block_scalar_start(ctx: _Ctx, path: Path) -> tuple[int, int] | None:
    """(line, column) where a block scalar's text starts, or None for other styles."""
    line, col = ctx.smap.find(path)
    if line is None or col is None or ctx.text_line(line)[col - 1 : col] not in ("|", ">"):
        return None
    nxt = ctx.text_line(line + 1)
    return line + 1, len(nxt) - len(nxt.lstrip()) + 1


def _quote_offset(ctx: _Ctx, path: Path, column: int) -> int:
    """File column offset of expression column ``column`` (1-based) from the value's mark."""
    line, col = ctx.smap.find(path)
    if line is None or col is None:
        return 0
    quoted = ctx.text_line(line)[col - 1 : col] in ("'", '"')
    return column if quoted else column - 1


def _outputs(data: dict[Any, Any], ctx: _Ctx, ids: list[str]) -> list[Output]:
    raw = data.get("outputs")
    if raw is None:
        return []
    if not isinstance(raw, list):
        ctx.error(("outputs",), f"outputs must be a list of {{series, as}} mappings, got {type_name(raw)}")
        return []
    if len(raw) > ctx.limits.max_outputs:
        raise LimitExceeded(f"{ctx.source}: {len(raw)} outputs; the limit is {ctx.limits.max_outputs}",
                            limit_name="max_outputs")
    known = set(ids)
    out: list[Output] = []
    names: dict[str, int] = {}
    for i, item in enumerate(raw):
        path: Path = ("outputs", i)
        if isinstance(item, str):
            item = {"series": item}
        if not isinstance(item, dict):
            ctx.error(path, f"each output must be a mapping with `series`, got {type_name(item)}")
            continue
        series = item.get("series")
        if not isinstance(series, str) or not series.strip():
            ctx.error(path, "output needs `series`: a node id, `*` or a prefix such as `queue_*` or `queue/*`")
            continue
        as_ = item.get("as")
        if as_ is not None and not isinstance(as_, str):
            ctx.error((*path, "as"), f"`as` must be a file name, got {type_name(as_)}")
            continue
        for key in item:
            if key not in ("series", "as", "id", "description"):
                ctx.warn((*path, key), f"output field '{key}' is ignored", key=True)
        if "*" in series:
            if as_ is not None:
                ctx.error((*path, "as"), "`as` names one file and cannot be used with a wildcard series")
                continue
            pattern = output_pattern(series)
            if not any(pattern.match(n) for n in ids):
                ctx.warn((*path, "series"), f"output pattern '{series}' matches no node")
        elif series not in known:
            hint = suggest(series, ids)
            if ctx.lenient_outputs:
                ctx.warn((*path, "series"), f"output names unknown node '{series}'{hint}; skipped (lenient outputs)")
            else:
                ctx.error((*path, "series"), f"output names unknown node '{series}'{hint} (the reference skips "
                          "such outputs; --lenient-outputs or ?lenientOutputs=true does the same, with a warning)")
            continue
        if as_ is not None:
            if not OUTPUT_NAME.match(as_) or ".." in as_:
                ctx.error((*path, "as"), f"`as` must be a plain file name (letters, digits, '_', '-', '.'), "
                          f"got {as_!r}")
                continue
            if as_ in names:
                ctx.error((*path, "as"), f"two outputs are both named '{as_}'")
                continue
            names[as_] = i
        out.append(Output(series, as_))
    return out


def _rng(data: dict[Any, Any], ctx: _Ctx) -> Rng | None:
    raw = data.get("rng")
    if raw is None:
        return None
    if not isinstance(raw, dict):
        ctx.error(("rng",), f"rng must be a mapping such as `{{kind: pcg32, seed: 42}}`, got {type_name(raw)}")
        return None
    kind = raw.get("kind", "pcg32")
    if not isinstance(kind, str) or kind.lower() != "pcg32":
        ctx.error(("rng", "kind"), f"rng.kind must be pcg32, got {type_name(kind)}")
        return None
    seed = raw.get("seed")
    if isinstance(seed, str) and re.fullmatch(r"-?[0-9]{1,20}", seed.strip()):
        seed = int(seed)
    if seed is not None and (not isinstance(seed, int) or isinstance(seed, bool)):
        ctx.error(("rng", "seed"), f"rng.seed must be a whole number, got {type_name(seed)}")
        return None
    if isinstance(seed, int) and not -(2**63) <= seed < 2**64:
        ctx.error(("rng", "seed"), "rng.seed must fit in 64 bits")
        return None
    return Rng(kind="pcg32", seed=seed)


def _metadata(data: dict[Any, Any], ctx: _Ctx) -> Metadata:
    raw = data.get("metadata")
    if raw is None:
        return Metadata()
    if not isinstance(raw, dict):
        ctx.warn(("metadata",), f"metadata must be a mapping; ignored ({type_name(raw)})")
        return Metadata()
    title = raw.get("title")
    desc = raw.get("description")
    raw_tags = raw.get("tags")
    if title is not None and not isinstance(title, str):
        ctx.warn(("metadata", "title"), "metadata.title should be text; converted")
        title = str(title)
    if desc is not None and not isinstance(desc, str):
        desc = str(desc)
    tags: tuple[str, ...] = ()
    if isinstance(raw_tags, list):
        tags = tuple(str(t) for t in raw_tags)
    elif isinstance(raw_tags, str):  # "a, b" or "[a, b]"
        tags = tuple(t.strip() for t in raw_tags.strip("[]").split(",") if t.strip())
    elif raw_tags is not None:
        ctx.warn(("metadata", "tags"), f"metadata.tags should be a list of text; ignored ({type_name(raw_tags)})")
    return Metadata(title=title, description=desc, tags=tags)


def _analyse(nodes: list[Any], exprs: dict[str, Expr], ctx: _Ctx) -> Analysis:
    """Analyse the nodes once; every issue located in the text (the caret under the expression)."""
    # Every node of the document loaded and none added: the declared ids are the nodes' own.
    declared = None if len(nodes) == len(ctx.raw_nodes) and not ctx.origins else \
        [*ctx.node_names.values(), *ctx.origins]
    analysis = analyse_nodes(nodes, exprs, declared=declared, outlines=ctx.outlines)
    raw_index = {name: i for i, name in ctx.node_names.items()} if analysis.issues else {}

    def located_at(node: str) -> Path:
        if node in ctx.origins:  # a node FlowTime added: at the topology node it stands for
            return ctx.origins[node]
        return ("nodes", raw_index.get(node, 0))

    for issue in analysis.issues:
        if issue.what == "cycle":
            ctx.error(located_at(issue.node), f"{issue.message}; each node reads the next in the same bin. "
                      "Read the past with SHIFT(x, 1) somewhere on the loop")
            continue
        if issue.node not in ctx.texts:  # a kind that lowers to an expression has no text to point into
            ctx.error(located_at(issue.node), issue.message)
            continue
        where, text = ctx.texts[issue.node]
        ctx.error(where, _located(issue.message, text, issue.column),
                  column_offset=_quote_offset(ctx, where, issue.column))
    return analysis


def _located(message: str, expr: str, column: int) -> str:
    caret = " " * (column - 1) + "^"
    if len(expr) > 120:
        return f"{message} (at column {column})"
    return f"{message}\n    {expr}\n    {caret}"


def load_error_problems(exc: Exception) -> list[Problem]:
    """Problems of a loader exception, for reports that never raise."""
    if isinstance(exc, ModelSyntaxError | ModelValidationError):
        return list(exc.problems)
    return [Problem("", str(exc))]
