"""
Template terms -> model terms, after substitution (decision 0023).

What the reference's later templates carry that a model does not, and what
generation makes of it:

* ``window: {start, timezone}`` - checked (UTC, offset 0) and dropped;
  ``start`` becomes ``grid.start`` when the grid has none.
* node ``source`` (a telemetry binding) - dropped.
* node ``dependencies`` - must list exactly the ids the node's expression
  reads; then dropped.
* a pmf node with ``profile`` - becomes a const node ``E[pmf] * weight[t]``
  (``flowtime.sim.profiles``); what it was is returned as a note for the
  provenance, since model nodes carry no metadata.
* ``semantics_outputs`` appends an output for every series the topology's
  semantics name (the reference's ``EnsureSemanticsOutputs``), read from the
  *loaded* model so the queues and sink series the engine adds are named as
  the engine named them. Queue and sink synthesis stay the engine's
  (``model.synthesis``, ``model.sinks``): the Sim does not add them again.

Every problem is collected with its body path; the caller locates them in
the template.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from flowtime.errors import ExpressionError
from flowtime.expr.parser import parse_expression
from flowtime.expr.syntax import Ref, walk
from flowtime.model import kinds
from flowtime.model.graph import output_pattern
from flowtime.model.schema import Model
from flowtime.model.yamltext import Path
from flowtime.sim import profiles

# The reference's EnsureSemanticsOutputs order, per topology node.
SEMANTICS_OUTPUT_FIELDS = ("arrivals", "served", "errors", "attempts", "failures", "retryEcho", "queueDepth",
                           "capacity", "externalDemand", "processingTimeMsSum", "servedCount")
_TEMPLATE_NODE_KEYS = ("source", "dependencies", "profile")
_PMF_SUM_TOLERANCE = 1e-6


@dataclass
class Lowered:
    """The model data, a note per profiled node (for the provenance) and the problems found."""

    data: dict[str, Any]
    profiles: dict[str, dict[str, Any]] = field(default_factory=dict)
    problems: list[tuple[Path, str]] = field(default_factory=list)


def lower(body: dict[str, Any]) -> Lowered:
    """The substituted template ``body`` as model data (a new dict; ``body`` is not changed)."""
    out = Lowered(dict(body))
    _window(out)
    nodes = body.get("nodes")
    if isinstance(nodes, list):
        bins = _bins(body)
        out.data["nodes"] = [_node(n, i, bins, out) if isinstance(n, dict) else n for i, n in enumerate(nodes)]
    return out


def _bins(body: dict[str, Any]) -> int | None:
    grid = body.get("grid")
    b = grid.get("bins") if isinstance(grid, dict) else None
    return b if isinstance(b, int) and not isinstance(b, bool) and b >= 1 else None


def _window(out: Lowered) -> None:
    if "window" not in out.data:
        return
    window = out.data.pop("window")
    if not isinstance(window, dict):
        out.problems.append((("window",), "window must be a mapping: {start: 2025-01-01T00:00:00Z, timezone: UTC}"))
        return
    tz = window.get("timezone")
    if tz is not None and (not isinstance(tz, str) or tz.strip().upper() != "UTC"):
        out.problems.append((("window", "timezone"), f"window.timezone must be UTC, got {tz!r}"))
    if "start" not in window:
        return
    start = utc_start(window["start"])
    if start is None:
        out.problems.append((("window", "start"), "window.start must be an ISO-8601 UTC time with offset 0, like "
                             f"2025-01-01T00:00:00Z; got {_shown(window['start'])}"))
        return
    grid = out.data.get("grid")
    if isinstance(grid, dict) and grid.get("start") in (None, ""):
        out.data["grid"] = {**grid, "start": start}


def utc_start(raw: Any) -> str | None:
    """
    ``raw`` as ``yyyy-MM-ddTHH:mm:ssZ`` when it is a UTC time (offset 0), else None.

    >>> utc_start("2025-01-01T00:00:00Z"), utc_start("2025-01-01T02:00:00+02:00"), utc_start("2025-01-01")
    ('2025-01-01T00:00:00Z', None, None)
    """
    if isinstance(raw, datetime):
        moment = raw  # YAML reads an unquoted timestamp as a datetime
    elif isinstance(raw, str) and "T" in raw:
        try:
            moment = datetime.fromisoformat(raw.strip())
        except ValueError:
            return None
    else:
        return None
    offset = moment.utcoffset()
    if offset is None or offset.total_seconds() != 0:
        return None
    moment = moment.astimezone(UTC)
    text = moment.strftime("%Y-%m-%dT%H:%M:%S")
    if moment.microsecond:
        text += f".{moment.microsecond:06d}".rstrip("0")
    return text + "Z"


def _shown(raw: Any) -> str:
    return raw.isoformat() if isinstance(raw, datetime) else repr(raw)


def _node(node: dict[str, Any], i: int, bins: int | None, out: Lowered) -> dict[str, Any]:
    here: Path = ("nodes", i)
    node_id = node.get("id")
    if "dependencies" in node:
        _dependencies(node, here, out)
    if "profile" not in node:
        return {k: v for k, v in node.items() if k not in _TEMPLATE_NODE_KEYS}
    if str(node.get("kind", "const")).strip().lower() != "pmf":
        out.problems.append(((*here, "profile"), f"node '{node_id}': profile is only for pmf nodes"))
        return {k: v for k, v in node.items() if k not in _TEMPLATE_NODE_KEYS}
    if bins is None:  # the loader reports the grid
        return {k: v for k, v in node.items() if k not in ("source", "dependencies")}
    expected = _expected(node.get("pmf"), (*here, "pmf"), str(node_id), out)
    try:
        profile = profiles.resolve(node["profile"], bins)
    except profiles.ProfileProblem as exc:
        where = (*here, "profile", exc.field) if exc.field else (*here, "profile")
        out.problems.append((where, f"node '{node_id}': {exc}"))
        return {k: v for k, v in node.items() if k not in _TEMPLATE_NODE_KEYS}
    if expected is None:
        return {k: v for k, v in node.items() if k not in _TEMPLATE_NODE_KEYS}
    shaped: dict[str, Any] = {"id": node_id, "kind": "const"}
    if node.get("title") is not None:
        shaped["title"] = node["title"]
    shaped["description"] = node.get("description") or (
        f"pmf expected value {_number(expected)} shaped by the {profile.kind} profile"
        + (f" '{profile.name}'" if profile.name else ""))
    shaped["values"] = [expected * w for w in profile.weights]
    out.profiles[str(node_id)] = {"origin.kind": "pmf", "profile.kind": profile.kind,
                                  "profile.name": profile.name, "pmf.expected": expected}
    return shaped


def _number(x: float) -> str:
    return str(int(x)) if x == int(x) else repr(x)


def _expected(raw: Any, here: Path, node_id: str, out: Lowered) -> float | None:
    """E[pmf] of a ``{values, probabilities}`` (or ``{value: p}``) pmf; probabilities are normalised when their
    sum is off 1 (the reference's PmfNode)."""
    pairs: list[tuple[Any, Any]] = []
    if isinstance(raw, dict) and "values" in raw and isinstance(raw.get("values"), list) \
            and isinstance(raw.get("probabilities"), list) and len(raw["values"]) == len(raw["probabilities"]):
        pairs = list(zip(raw["values"], raw["probabilities"], strict=True))
    elif isinstance(raw, dict) and "values" not in raw and "probabilities" not in raw:
        pairs = list(raw.items())
    numbers = [(_float(v), _float(p)) for v, p in pairs]
    if not numbers or any(v is None or p is None for v, p in numbers):
        out.problems.append((here, f"node '{node_id}': a profiled pmf needs pmf.values and pmf.probabilities: "
                             "lists of numbers of the same length"))
        return None
    clean = [(v, p) for v, p in numbers if v is not None and p is not None]
    if any(p < 0 for _, p in clean) or sum(p for _, p in clean) <= 0:
        out.problems.append((here, f"node '{node_id}': pmf probabilities must be >= 0 with a positive sum"))
        return None
    total = 0.0
    for _, p in clean:
        total += p
    expected = 0.0
    for v, p in clean:
        expected += v * p
    return expected if abs(total - 1.0) <= _PMF_SUM_TOLERANCE else expected / total


def _float(x: Any) -> float | None:
    if isinstance(x, bool):
        return None
    if isinstance(x, int | float) and math.isfinite(x):
        return float(x)
    if isinstance(x, str):
        try:
            v = float(x)
        except ValueError:
            return None
        return v if math.isfinite(v) else None
    return None


def _dependencies(node: dict[str, Any], here: Path, out: Lowered) -> None:
    node_id = node.get("id")
    listed = node["dependencies"]
    if not isinstance(listed, list) or not all(isinstance(d, str) for d in listed):
        out.problems.append(((*here, "dependencies"), f"node '{node_id}': dependencies must be a list of node ids"))
        return
    reads: list[str] = []
    expr = node.get("expr")
    if isinstance(expr, str):
        try:
            tree = parse_expression(expr)
        except ExpressionError:
            return  # the loader reports the expression itself
        for n in walk(tree):
            if isinstance(n, Ref) and n.name not in reads:
                reads.append(n.name)
    if set(listed) != set(reads):
        missing = [r for r in reads if r not in listed]
        extra = [d for d in listed if d not in reads]
        why = "; ".join(part for part in (
            f"missing {', '.join(missing)}" if missing else "",
            f"not read: {', '.join(extra)}" if extra else "") if part)
        out.problems.append(((*here, "dependencies"), f"node '{node_id}': dependencies must list exactly the ids "
                             f"its expression reads ({', '.join(reads) or 'none'}); {why}"))


def semantics_outputs(model: Model, outputs: list[Any]) -> list[dict[str, str]]:
    """
    The outputs to append so every series a topology node's semantics names
    is an output (in topology order, then ``SEMANTICS_OUTPUT_FIELDS`` order),
    unless an output (a wildcard included) already names it. ``file:`` and
    per-class references name no node and are skipped. Nothing is added to a
    model without outputs: it writes every series already.
    """
    if model.topology is None or not outputs:
        return []
    patterns = [output_pattern(str(o["series"])) for o in outputs if isinstance(o, dict) and "series" in o]
    ids = set(model.node_ids)
    added: list[dict[str, str]] = []
    seen: set[str] = set()
    for t in model.topology.nodes:
        for name in SEMANTICS_OUTPUT_FIELDS:
            ref = t.ref(name)
            if ref is None or ref.form in ("file", "class"):
                continue
            series = t.id if ref.form == "self" else ref.node
            if series in seen or series not in ids or kinds.is_internal(series):
                continue
            seen.add(series)
            if not any(p.match(series) for p in patterns):
                added.append({"series": series})
    return added
