"""
The schema tier of validation: is the document the right shape, before anything is resolved?

``check_shape`` runs the first half of the loader (``model.load``) over the
parsed YAML - top-level keys, ``schemaVersion``, the grid, every node read by
its kind's entry (required fields, types, one value per bin), the topology's
own structure, classes, outputs, rng and metadata - with the same located
messages, and stops there. What it leaves to the compile tier: expression
syntax (an ``expr`` is only required to be text), references between nodes,
cycles, topology lowering (queues, routers, constraints), ``file:`` series,
traffic's node names and which nodes outputs name. A document that compiles
always passes this tier (tests/model/test_shape.py walks the examples).
"""

from __future__ import annotations

from typing import Any

from flowtime.errors import LimitExceeded, Problem
from flowtime.gcpause import paused_gc
from flowtime.model.classes import read_classes
from flowtime.model.limits import DEFAULT_LIMITS, Limits
from flowtime.model.load import (
    _Ctx,
    _grid,
    _metadata,
    _nodes,
    _provenance,
    _rng,
    _schema_version,
    _top_level_keys,
    _valid_bins,
    is_window_form,
)
from flowtime.model.nodes import type_name
from flowtime.model.topology import read_topology
from flowtime.model.yamltext import parse_yaml


def check_shape(text: str, source: str = "<string>", *, limits: Limits = DEFAULT_LIMITS) -> list[Problem]:
    """
    Every shape problem of model ``text`` (errors and warnings, located and sorted);
    an empty list or only warnings means the document has the right shape.
    ``ModelSyntaxError`` for text that is not YAML and ``LimitExceeded`` for input
    over ``limits``, as ``load_model`` raises them.

    >>> check_shape("schemaVersion: 1\\ngrid: {bins: 2, binSize: 1, binUnit: hours}\\n"
    ...             "nodes:\\n  - {id: b, kind: expr, expr: 'nope(('}\\n")
    []
    >>> [(p.path, p.line) for p in check_shape("grid: {bins: 0, binSize: 1, binUnit: hours}\\n")]
    [('schemaVersion', 1), ('grid.bins', 1)]
    """
    if len(text) > limits.max_model_bytes:
        raise LimitExceeded(f"{source}: model text is {len(text)} bytes; the limit is {limits.max_model_bytes}",
                            limit_name="max_model_bytes")
    with paused_gc():
        return _check(text, source, limits)


def _check(text: str, source: str, limits: Limits) -> list[Problem]:
    data, smap = parse_yaml(text, source, max_nodes=limits.max_yaml_nodes)
    ctx = _Ctx(source, smap, limits)
    ctx.text = text
    ctx.parse_expressions = False
    if data is None:
        ctx.error((), "model is empty; expected a mapping with schemaVersion, grid and nodes")
        return ctx.problems
    if not isinstance(data, dict):
        ctx.error((), f"the top level must be a mapping (schemaVersion, grid, nodes, ...), got {type_name(data)}")
        return ctx.problems
    _provenance(data, ctx)
    window = is_window_form(data)
    _top_level_keys(data, ctx, window)
    if not window or "schemaVersion" in data:
        _schema_version(data, ctx)
    section = "window" if window else "grid"
    grid = _grid(data, ctx, section)
    _nodes(data, ctx, grid.bins if grid else _valid_bins(data, ctx.limits, section))
    if "topology" in data:
        raw = data["topology"]
        if isinstance(raw, dict) and isinstance(raw.get("nodes"), list):
            ctx.topology_names = {i: t["id"] for i, t in enumerate(raw["nodes"])
                                  if isinstance(t, dict) and isinstance(t.get("id"), str)}
        read_topology(raw, ctx, "service" if window else None)
    read_classes(data.get("classes"), ctx)
    _traffic(data.get("traffic"), ctx)
    _outputs(data.get("outputs"), ctx)
    _rng(data, ctx)
    _metadata(data, ctx)
    return sorted(ctx.problems, key=Problem.sort_key)


def _traffic(raw: Any, ctx: _Ctx) -> None:
    # The arrivals' node and class names are references: compile checks them (``classes.read_traffic``).
    if raw is None:
        return
    if not isinstance(raw, dict):
        ctx.error(("traffic",), f"traffic must be a mapping with `arrivals`, got {type_name(raw)}")
    elif not isinstance(raw.get("arrivals", []), list):
        ctx.error(("traffic", "arrivals"), f"traffic.arrivals must be a list, got {type_name(raw['arrivals'])}")


def _outputs(raw: Any, ctx: _Ctx) -> None:
    # Which node an output names is a reference (topology adds nodes): compile checks it.
    if raw is None:
        return
    if not isinstance(raw, list):
        ctx.error(("outputs",), f"outputs must be a list of {{series, as}} mappings, got {type_name(raw)}")
        return
    for i, item in enumerate(raw):
        if isinstance(item, str):
            continue
        if not isinstance(item, dict):
            ctx.error(("outputs", i), f"each output must be a mapping with `series`, got {type_name(item)}")
        elif not isinstance(item.get("series"), str) or not item["series"].strip():
            ctx.error(("outputs", i), "output needs `series`: a node id, `*` or a prefix such as `queue_*`")
        elif item.get("as") is not None and not isinstance(item["as"], str):
            ctx.error(("outputs", i, "as"), f"`as` must be a file name, got {type_name(item['as'])}")

