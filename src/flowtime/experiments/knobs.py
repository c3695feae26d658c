"""
What a what-if session offers to change: its *knobs*, discovered from a model.

Discovery goes through ``experiments.parameters`` - the same targets an
experiment spec names, resolved by the same ``resolve`` - so a slider and a
sweep change a model in exactly one way. A knob's ``id`` is its target:

* ``topology.<Node>.capacity|parallelism|wipLimit|initialDepth`` for every
  topology field the model gives a value (a const node or a number);
* ``router.<Router>.<target>`` for every weight route of a router;
* ``<node>`` for every other const node (the model's inputs).

A flat input is set by value; a profile (a const whose bins differ) is scaled
(``mode: scale``, a factor of 1 to start), never flattened - the reference
flattens it. A knob the plan holds as a const is changed with ``set=``; the
rest (router weights, a numeric parallelism) are model edits and re-plan
(``replans``). Slider ranges come from the current value (``slider``).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from flowtime.errors import ExperimentError
from flowtime.experiments.parameters import TOPOLOGY_FIELDS, Target, resolve
from flowtime.experiments.spec import Parameter
from flowtime.model.kinds import is_internal
from flowtime.model.routers import RouterNode
from flowtime.model.schema import ConstNode, Model
from flowtime.records import record

UNITS = {"capacity": "entities/bin", "parallelism": "servers", "wipLimit": "entities", "initialDepth": "entities",
         "routerWeight": "weight", "scale": "×", "const": ""}
_WHOLE = frozenset({"parallelism", "wipLimit"})  # counted in whole units: integer steps


@record
class Knob:
    """One parameter of a what-if session, with a slider's range."""

    id: str
    kind: str  # const, capacity, parallelism, wipLimit, initialDepth, routerWeight
    target: str
    mode: str  # value or scale
    value: float  # the model's own value (a factor of 1 for scale)
    min: float
    max: float
    step: float
    unit: str
    label: str
    replans: bool  # a model edit: the session plans the edited model (cached), not set=

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "kind": self.kind, "target": self.target, "mode": self.mode, "value": self.value,
                "min": self.min, "max": self.max, "step": self.step, "unit": self.unit, "label": self.label,
                "replans": self.replans}


def slider(value: float, whole: bool = False) -> tuple[float, float, float]:
    """
    (min, max, step) around a current value: 0 to three times it (10 for 0; a
    negative value mirrored), in about 200 steps of a power of ten.

    >>> slider(20.0), slider(0.0), slider(0.5), slider(3.0, whole=True), slider(-4.0)
    ((0.0, 60.0, 0.1), (0.0, 10.0, 0.01), (0.0, 1.5, 0.001), (0.0, 9.0, 1.0), (-12.0, 0.0, 0.01))
    """
    low, high = (0.0, 3.0 * value) if value > 0 else (3.0 * value, 0.0) if value < 0 else (0.0, 10.0)
    step = 10.0 ** math.floor(math.log10((high - low) / 200.0))
    if whole:
        step = max(1.0, step)
        high = float(math.ceil(high))
    return low, high, step


def _flat(values: Any) -> bool:
    return bool(values.size) and bool((values == values[0]).all())


def _knob(target: Target, kind: str, label: str) -> Knob:
    if target.node is not None:
        assert target.base is not None
        value = float(target.base[0])
    else:
        value = float(target.edit_base)
    if target.mode == "scale":
        return Knob(target.target, kind, target.target, "scale", 1.0, 0.0, 3.0, 0.01, UNITS["scale"],
                    f"{label} (× profile)", target.node is None)
    low, high, step = slider(value, kind in _WHOLE)
    return Knob(target.target, kind, target.target, "value", value, low, high, step, UNITS[kind], label,
                target.node is None)


def _resolved(model: Model, target: str, data: Callable[[], Any]) -> Target | None:
    """The target in value mode, turned to scale mode for a profile; None when the model has no such value."""
    try:
        got = resolve(model, [Parameter(target=target)], data)[0]
    except ExperimentError:
        return None
    if got.node is not None and got.base is not None and not got.first_bin and not _flat(got.base):
        return resolve(model, [Parameter(target=target, mode="scale")], data)[0]
    return got


def discover(model: Model, data: Callable[[], Any]) -> list[Knob]:
    """
    Every knob of ``model``: topology fields first (in topology order), then
    router weights, then the const nodes no topology field already names.
    ``data`` gives the model's YAML data (``parameters.resolve`` reads it for edits).
    """
    knobs: list[Knob] = []
    claimed: set[str] = set()
    for t in model.topology.nodes if model.topology is not None else ():
        for field in TOPOLOGY_FIELDS:
            got = _resolved(model, f"topology.{t.id}.{field}", data)
            # An edit of a field the model leaves out (no WIP limit, an empty start) has no value to move.
            if got is None or got.node in claimed or (got.edit is not None and field != "parallelism"):
                continue
            if got.node is not None:
                claimed.add(got.node)
            knobs.append(_knob(got, field, f"{t.id} {field}"))
    for r in (n for n in model.nodes if isinstance(n, RouterNode)):
        for route in r.routes:
            if not route.by_class:
                got = _resolved(model, f"router.{r.id}.{route.target}", data)
                if got is not None:
                    knobs.append(_knob(got, "routerWeight", f"{r.id} → {route.target} weight"))
    for n in model.nodes:
        if isinstance(n, ConstNode) and not is_internal(n.id) and n.id not in claimed:
            got = _resolved(model, n.id, data)
            if got is not None:
                knobs.append(_knob(got, "const", n.title or n.id))
    return knobs
