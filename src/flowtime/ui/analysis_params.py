"""
What an experiment form offers for one model: the parameter targets it can vary and the series it can measure.

The Engine resolves and checks every target when the experiment is posted
(``experiments.parameters``); this module only *suggests*, from the model the UI
already holds, with the shared model loader (``flowtime.model``, no engine):
const nodes, the topology fields that name a const or hold a number
(``topology.<Node>.capacity|parallelism|wipLimit|initialDepth``) and routers'
weight routes. Each suggestion carries the value the model gives it now (a
profile's mean), from which the form proposes a range. A model the loader
refuses (a ``file:`` series the UI cannot read, say) gives no suggestions; the
fields stay free text.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from flowtime.errors import FlowTimeError
from flowtime.model.kinds import is_internal
from flowtime.model.load import load_model
from flowtime.model.routers import RouterNode
from flowtime.model.schema import ConstNode, Model
from flowtime.model.topology import SeriesRef


@dataclass(frozen=True)
class Target:
    """A parameter target the form offers, with the model's current value (``None``: not a number here)."""

    target: str
    label: str
    base: float | None


@dataclass(frozen=True)
class ModelChoices:
    targets: tuple[Target, ...]
    series: tuple[str, ...]  # what metrics, capture and fit may name
    grid: dict[str, Any] | None  # {bins, binSize, binUnit}: clock time on the result charts


def _mean(node: ConstNode) -> float:
    return float(node.values.mean()) if node.values.size else 0.0


def _topology_targets(model: Model, consts: dict[str, ConstNode]) -> list[Target]:
    out: list[Target] = []
    for t in model.topology.nodes if model.topology is not None else ():
        for field in ("capacity", "parallelism"):
            v = (t.semantics or {}).get(field)
            if isinstance(v, SeriesRef) and v.node in consts:
                out.append(Target(f"topology.{t.id}.{field}", f"{t.id} {field} ({v.node})", _mean(consts[v.node])))
            elif field == "parallelism" and isinstance(v, int | float):
                out.append(Target(f"topology.{t.id}.{field}", f"{t.id} {field}", float(v)))
        if t.wip_limit is not None:
            out.append(Target(f"topology.{t.id}.wipLimit", f"{t.id} WIP limit", float(t.wip_limit)))
        elif t.wip_limit_series in consts:
            out.append(Target(f"topology.{t.id}.wipLimit", f"{t.id} WIP limit", _mean(consts[t.wip_limit_series])))
        if t.initial is not None:
            out.append(Target(f"topology.{t.id}.initialDepth", f"{t.id} initial queue depth", float(t.initial)))
    return out


def _router_targets(model: Model) -> list[Target]:
    return [Target(f"router.{n.id}.{r.target}", f"{n.id} weight to {r.target}", 1.0 if r.weight is None else r.weight)
            for n in model.nodes if isinstance(n, RouterNode) for r in n.routes if not r.by_class]


def model_choices(model_text: str, series: tuple[str, ...] = ()) -> ModelChoices:
    """
    The suggestions for ``model_text``; ``series`` (a run's series ids, derived metrics included) come first.

    >>> c = model_choices("schemaVersion: 1\\ngrid: {bins: 2, binSize: 1, binUnit: hours}\\n"
    ...                   "nodes:\\n  - {id: a, kind: const, values: [1, 3]}\\n  - {id: b, kind: expr, expr: a * 2}\\n")
    >>> [(t.target, t.base) for t in c.targets], c.series, c.grid
    ([('a', 2.0)], ('a', 'b'), {'bins': 2, 'binSize': 1, 'binUnit': 'hours'})
    """
    try:
        loaded = load_model(model_text, "experiment model")
    except FlowTimeError:
        return ModelChoices((), series, None)
    model = loaded.model
    consts = {n.id: n for n in model.nodes if isinstance(n, ConstNode) and not is_internal(n.id)}
    targets = [Target(c.id, c.title or c.id, _mean(c)) for c in consts.values()]
    targets += _topology_targets(model, consts) + _router_targets(model)
    ids = tuple(n.id for n in model.nodes if not is_internal(n.id))
    grid = {"bins": model.grid.bins, "binSize": model.grid.bin_size, "binUnit": model.grid.bin_unit.value}
    return ModelChoices(tuple(targets), tuple(dict.fromkeys((*series, *ids))), grid)
