"""
What-if overrides: new values for a model's const nodes, without editing its YAML.

``apply_overrides(model, {"capacity": 20, "arrivals": [1, 2, 3]})`` returns a
new model in which those const nodes hold the given values (one number means
every bin, a list gives one value per bin). Everything else is unchanged, so
the result is exactly the model one would get by editing the file - and has
its hash. Unknown nodes, nodes that are not const and wrong lengths are
problems naming the node, collected and raised together.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from flowtime.errors import ModelValidationError, Problem
from flowtime.expr.functions import suggest
from flowtime.model.schema import ConstNode, Model
from flowtime.records import derived

Overrides = dict[str, float | list[float]]


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    number = float(value)
    return number if math.isfinite(number) else None


def _nodes_by_id(model: Model) -> dict[str, Any]:
    """The model's nodes by id (the first of an id, as ``Model.node``), kept with the model: a warm
    ``evaluate(set=)`` should not scan the nodes (0029)."""
    kept = derived(model)
    got: dict[str, Any] | None = kept.get("nodes by id")
    if got is None:
        got = {}
        for n in model.nodes:
            got.setdefault(n.id, n)
        kept["nodes by id"] = got
    return got


def normalise(overrides: Mapping[str, Any], bins: int, model: Model, *, origin: str = "set") -> Overrides:
    """Checked overrides as plain JSON data (floats, or lists of floats), in the order given."""
    problems: list[Problem] = []
    out: Overrides = {}
    by_id = _nodes_by_id(model)
    for name, value in overrides.items():
        path = f"{origin}.{name}"
        node = by_id.get(str(name))
        if node is None:
            problems.append(Problem(path, f"unknown node '{name}'{suggest(str(name), model.node_ids)}; --set takes "
                                          "a const node's id"))
            continue
        if not isinstance(node, ConstNode):
            article = "an" if node.kind == "expr" else "a"
            problems.append(Problem(path, f"node '{name}' is {article} {node.kind} node; only const nodes can be "
                                          "set (their values are the model's inputs)"))
            continue
        scalar = _number(value)
        if scalar is not None:
            out[str(name)] = scalar
            continue
        if isinstance(value, np.ndarray) and value.ndim == 1 and value.dtype.kind in "fiu":
            # checked as a whole: an experiment sets 10,000 profiles, and a value at a time was 5x the run
            if value.size != bins:
                problems.append(Problem(path, f"gives {value.size} values but grid.bins is {bins}; give one "
                                              "number (every bin) or one value per bin"))
            elif not np.isfinite(value).all():
                at = int(np.flatnonzero(~np.isfinite(value))[0])
                problems.append(Problem(path, f"item {at} is {float(value[at])!r}; values must be finite numbers"))
            else:
                out[str(name)] = value.astype(np.float64).tolist()
            continue
        if isinstance(value, list | tuple):
            numbers = [_number(v) for v in value]
            bad = next((i for i, v in enumerate(numbers) if v is None), None)
            if bad is not None:
                problems.append(Problem(path, f"item {bad} is {value[bad]!r}; values must be finite numbers"))
            elif len(numbers) != bins:
                problems.append(Problem(path, f"gives {len(numbers)} values but grid.bins is {bins}; give one "
                                              "number (every bin) or one value per bin"))
            else:
                out[str(name)] = [float(v) for v in numbers if v is not None]
            continue
        problems.append(Problem(path, f"value {value!r} is not a number or a list of numbers"))
    if problems:
        raise ModelValidationError(problems, "the overrides")
    return out


def apply_overrides(model: Model, overrides: Mapping[str, Any] | None, *,
                    origin: str = "set") -> tuple[Model, Overrides]:
    """
    (the model with ``overrides`` applied, the checked overrides).

    >>> from flowtime.model.load import load_model
    >>> m = load_model("schemaVersion: 1\\ngrid: {bins: 3, binSize: 1, binUnit: hours}\\n"
    ...                "nodes: [{id: cap, values: 5}, {id: x, kind: expr, expr: cap * 2}]").model
    >>> edited, given = apply_overrides(m, {"cap": [1, 2, 3]})
    >>> edited.node("cap").values.tolist(), given
    ([1.0, 2.0, 3.0], {'cap': [1.0, 2.0, 3.0]})
    """
    if not overrides:
        return model, {}
    bins = model.grid.bins
    given = normalise(overrides, bins, model, origin=origin)
    nodes = []
    for node in model.nodes:
        if node.id in given and isinstance(node, ConstNode):
            value = given[node.id]
            arr = np.full(bins, value, dtype=np.float64) if isinstance(value, float) else np.array(value, np.float64)
            arr.flags.writeable = False
            node = dataclasses.replace(node, values=arr)
        nodes.append(node)
    return dataclasses.replace(model, nodes=tuple(nodes)), given
