"""
Parameters -> what each point changes in the model.

A parameter's ``target`` resolves (``resolve``) to one of two things:

* a **const node** the engine takes through ``set=`` (no re-planning): the node
  itself, the node a topology node's ``capacity`` or ``parallelism`` names, the
  ``{base}_wip_limit`` const a numeric ``wipLimit`` becomes, or the hidden
  ``Q#seed`` holding a queue's initial depth in bin 0;
* a **model edit**, for what the loader compiles into the plan rather than into
  a const node: a router's route weight, and a ``wipLimit``, ``initialDepth`` or
  numeric ``parallelism`` the model gives no const for. Points sharing their
  edits share one edited model text (``edited_text``), planned once.

* a **template parameter** (``template.<name>``, when the model is a Sim template's): the
  evaluator renders the model again for each distinct value (``experiments.sources``).

``mode: value`` puts the number in every bin (an initial depth: in bin 0);
``mode: scale`` multiplies the target's whole profile by the factor - a
profile is never flattened (the reference's defect). ``to_sets`` turns a
``(n, p)`` matrix of points into per-point ``set=`` dicts, one column at a time.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
import yaml

from flowtime.errors import ExperimentError, Problem
from flowtime.experiments.sources import ENGINE_TAKES_MODELS, TEMPLATE_PREFIX
from flowtime.experiments.spec import Parameter
from flowtime.expr.functions import suggest
from flowtime.model.kinds import is_internal
from flowtime.model.queues import QueueNode, seed_id
from flowtime.model.routers import RouterNode
from flowtime.model.schema import ConstNode, Model
from flowtime.model.topology import SeriesRef, TopologyNode
from flowtime.records import record

Array = npt.NDArray[np.float64]
TOPOLOGY_FIELDS = ("capacity", "parallelism", "wipLimit", "initialDepth")


@record
class Target:
    """Where parameter ``index`` lands: a const ``node`` (with its profile ``base``) or a model ``edit``."""

    index: int
    target: str
    mode: str
    node: str | None = None
    base: Array | None = None  # the const's profile (for scale mode)
    first_bin: bool = False  # an initial depth: the value in bin 0, zero after
    edit: tuple[str | int, ...] | None = None  # a path into the model's YAML data
    edit_base: float = 0.0  # the number at that path in the model (for scale mode)
    template: str | None = None  # a template parameter: each distinct value renders the model again


def _const(model: Model, node_id: str) -> ConstNode | None:
    for n in model.nodes:
        if n.id == node_id:
            return n if isinstance(n, ConstNode) else None
    return None


def _queue_of(model: Model, t: TopologyNode) -> QueueNode | None:
    ref = t.ref("queueDepth")
    for n in model.nodes:
        if isinstance(n, QueueNode) and (n.origin == t.id or (ref is not None and n.id == ref.node)):
            return n
    return None


def _topology(model: Model, p: Parameter, i: int, data: Any) -> Target | str:
    parts = p.target.split(".")
    tids = [t.id for t in model.topology.nodes] if model.topology is not None else []
    if len(parts) != 3 or parts[2] not in TOPOLOGY_FIELDS:
        return f"a topology target is topology.<NodeId>.<{'|'.join(TOPOLOGY_FIELDS)}>, got '{p.target}'"
    tid, field = parts[1], parts[2]
    if tid not in tids:
        return f"no topology node '{tid}'{suggest(tid, tids)}"
    t = model.topology.node(tid) if model.topology is not None else None
    assert t is not None
    here = ("topology", "nodes", tids.index(tid))
    if field in ("capacity", "parallelism"):
        v = (t.semantics or {}).get(field)
        if isinstance(v, SeriesRef):
            node = _const(model, v.node)
            if node is None:
                return (f"topology node '{tid}' takes its {field} from '{v.node}', which is not a const node; vary "
                        f"the const nodes '{v.node}' is computed from")
            return Target(i, p.target, p.mode, node=node.id, base=node.values)
        if field == "parallelism" and isinstance(v, float):
            return Target(i, p.target, p.mode, edit=(*here, "semantics", "parallelism"), edit_base=v)
        return f"topology node '{tid}' has no semantics.{field}"
    q = _queue_of(model, t)
    if q is None:
        return f"topology node '{tid}' has no queue FlowTime computes, so it has no {field}"
    if field == "wipLimit":
        if q.wip_limit_series is not None:
            node = _const(model, q.wip_limit_series)
            if node is None:
                return f"topology node '{tid}' takes its WIP limit from '{q.wip_limit_series}', not a const node"
            return Target(i, p.target, p.mode, node=node.id, base=node.values)
        if q.wip_limit is not None:
            node = _const(model, q.series_names()["wip_limit"])
            assert node is not None
            return Target(i, p.target, p.mode, node=node.id, base=node.values)
        if not _has_topology_node(data, here):
            return f"topology node '{tid}' has no wipLimit"
        if p.mode == "scale":
            return f"topology node '{tid}' has no wipLimit to scale; use mode: value"
        return Target(i, p.target, p.mode, edit=(*here, "wipLimit"))
    seed = _const(model, seed_id(q))
    if seed is not None:
        return Target(i, p.target, p.mode, node=seed.id, base=seed.values, first_bin=True)
    if p.mode == "scale":
        return f"topology node '{tid}' starts empty: an initial depth of 0 scales to 0; use mode: value"
    return Target(i, p.target, p.mode, edit=(*here, "initialCondition", "queueDepth"))


def _has_topology_node(data: Any, here: tuple[str | int, ...]) -> bool:
    try:
        return isinstance(data["topology"]["nodes"][here[2]], dict)
    except (KeyError, IndexError, TypeError):
        return False


def _router(model: Model, p: Parameter, i: int, data: Any) -> Target | str:
    parts = p.target.split(".", 2)
    routers = [n for n in model.nodes if isinstance(n, RouterNode)]
    ids = [r.id for r in routers]
    if len(parts) != 3:
        return f"a router target is router.<RouterId>.<target node>, got '{p.target}'"
    r = next((x for x in routers if x.id == parts[1]), None)
    if r is None:
        return f"no router '{parts[1]}'{suggest(parts[1], ids)}"
    targets = [x.target for x in r.routes if not x.by_class]
    if parts[2] not in targets:
        return (f"router '{r.id}' has no weight route to '{parts[2]}'{suggest(parts[2], targets)}"
                + ("" if targets else " (its routes are all by class)"))
    k = next(j for j, x in enumerate(r.routes) if x.target == parts[2])
    items = data.get("nodes", []) if isinstance(data, dict) else []
    at = next(j for j, n in enumerate(items) if isinstance(n, dict) and n.get("id") == r.id)
    prefix: tuple[str | int, ...] = ("nodes", at, "router") if r.wrapped else ("nodes", at)
    weight = r.routes[k].weight
    return Target(i, p.target, p.mode, edit=(*prefix, "routes", k, "weight"),
                  edit_base=1.0 if weight is None else weight)


def _template(p: Parameter, i: int, names: Sequence[str] | None) -> Target | str:
    name = p.target[len(TEMPLATE_PREFIX):]
    if names is None:
        return f"'{p.target}' is a template parameter, but this experiment has no template: {ENGINE_TAKES_MODELS}"
    if name not in names:
        return f"the template has no parameter '{name}'{suggest(name, list(names))}"
    if p.mode == "scale":
        return f"a template parameter takes mode: value (the template's '{name}' is rendered with each value)"
    return Target(i, p.target, p.mode, template=name)


def resolve(model: Model, parameters: Sequence[Parameter], data: Callable[[], Any],
            template_names: Sequence[str] | None = None) -> list[Target]:
    """
    Each parameter's target, every problem at once. ``data`` gives the model's YAML data, for edits (parsed
    only when a target needs it: most experiments set const nodes). ``template_names``: the parameters of
    the template the model was rendered from (None: the model is not a template's).
    """
    problems: list[Problem] = []
    out: list[Target] = []
    seen: dict[tuple[Any, ...], int] = {}
    ids = [n.id for n in model.nodes if not is_internal(n.id)]
    for i, p in enumerate(parameters):
        got: Target | str
        if p.target.startswith(TEMPLATE_PREFIX):
            got = _template(p, i, template_names)
        elif p.target.startswith("topology."):
            got = _topology(model, p, i, data())
        elif p.target.startswith("router."):
            got = _router(model, p, i, data())
        else:
            node = next((n for n in model.nodes if n.id == p.target), None)
            if node is None:
                got = f"unknown node '{p.target}'{suggest(p.target, ids)}"
            elif not isinstance(node, ConstNode):
                got = (f"node '{p.target}' is a {node.kind} node; a parameter targets a const node (the model's "
                       "inputs), a topology field or a router weight")
            else:
                got = Target(i, p.target, p.mode, node=node.id, base=node.values)
        if isinstance(got, str):
            problems.append(Problem(f"parameters[{i}].target", got))
            continue
        key = (got.node,) if got.node is not None else ("template", got.template) if got.template else ("edit",
                                                                                                     got.edit)
        if key in seen:
            problems.append(Problem(f"parameters[{i}].target", f"changes what parameters[{seen[key]}] changes"))
            continue
        seen[key] = i
        out.append(got)
    if problems:
        raise ExperimentError(problems)
    return out


def to_sets(targets: Sequence[Target], points: Array) -> list[dict[str, Any]]:
    """Per point, the ``set=`` overrides of the const targets (``points``: ``(n, len(targets))``)."""
    n = points.shape[0]
    sets: list[dict[str, Any]] = [{} for _ in range(n)]
    for j, t in enumerate(targets):
        if t.node is None:
            continue
        column = points[:, j]
        if t.mode == "value" and not t.first_bin:
            for k, v in enumerate(column.tolist()):
                sets[k][t.node] = v
            continue
        assert t.base is not None
        if t.mode == "scale":
            profiles = column[:, None] * t.base[None, :]
        else:  # an initial depth: the number in bin 0
            profiles = np.zeros((n, t.base.size))
            profiles[:, 0] = column
        for k in range(n):
            sets[k][t.node] = profiles[k]  # an array: set= checks it whole (model.overrides)
    return sets


def edits_of(targets: Sequence[Target], points: Array) -> list[tuple[float, ...]]:
    """Per point, the numbers its model edits write (empty tuples when no target is an edit)."""
    cols = [j for j, t in enumerate(targets) if t.edit is not None]
    if not cols:
        return [()] * points.shape[0]
    values = np.stack([points[:, j] * (targets[j].edit_base if targets[j].mode == "scale" else 1.0)
                       for j in cols], axis=1)
    return [tuple(row) for row in values.tolist()]


def edited_text(data: Any, targets: Sequence[Target], values: tuple[float, ...]) -> str:
    """The model's YAML with each edit target's path holding its value (``values`` in ``edits_of`` order)."""
    out = copy.deepcopy(data)
    for t, v in zip([t for t in targets if t.edit is not None], values, strict=True):
        assert t.edit is not None
        here: Any = out
        for key in t.edit[:-1]:
            if isinstance(key, str) and isinstance(here, dict) and key not in here:
                here[key] = {}
            here = here[key]
        here[t.edit[-1]] = v
    return yaml.safe_dump(out, sort_keys=False, allow_unicode=True)
