"""
Routers (``kind: router``): a source's flow split among target nodes, by class or by weight.

A router reads one source (``inputs.queue``) and sends it along ``routes``:
each class route takes the source's flow of its classes, then the weight
routes share what is left by ``w / W`` (``engine-head.md`` §5). Both written
forms are read: the reference's C# one (``inputs``/``routes`` on the node) and
its Rust one (the same under ``router:``).

The router's own series is its source (as in C#). Each target's series is
*replaced* by the flow routed into it; ``model.decompose`` writes that flow as
an expression over the source and its per-class series, so the routing is part
of the one plan (no second evaluation pass, 0021). After evaluation
``router_warnings`` reports classes a router drops.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import field
from typing import Any

import numpy as np
import numpy.typing as npt

import flowtime.model.queues  # noqa: F401 - serviceWithBuffer registers first: kind lists keep one order
from flowtime.errors import Problem
from flowtime.expr.syntax import Expr, Ref
from flowtime.model.kinds import NodeKind, NodeSource, register
from flowtime.model.nodes import is_number, type_name
from flowtime.records import record

LEAKAGE_TOLERANCE = 1e-6


@record
class Route:
    target: str
    classes: tuple[str, ...] = ()
    weight: float | None = None

    @property
    def by_class(self) -> bool:
        return bool(self.classes)

    def to_json(self) -> dict[str, Any]:
        return {"target": self.target, "classes": list(self.classes), "weight": self.weight}


@record
class RouterNode:
    id: str
    source: str
    routes: tuple[Route, ...]
    kind: str = "router"
    wrapped: bool = False  # the Rust form: fields under `router:` (where to point at them)
    title: str | None = None
    description: str | None = None
    # Where the node is written, for warnings after evaluation (not part of what is computed).
    line: int | None = field(default=None, compare=False)
    file: str | None = field(default=None, compare=False)

    def fraction(self, route: Route) -> float:
        """A weight route's share of what the class routes leave (missing weight 1; W <= 0: equal shares)."""
        weighted = [r for r in self.routes if not r.by_class]
        total = sum(1.0 if r.weight is None else r.weight for r in weighted)
        if total <= 0:
            return 1.0 / len(weighted)
        return (1.0 if route.weight is None else route.weight) / total

    def claimed(self) -> tuple[str, ...]:
        """The classes its class routes take, in order."""
        return tuple(dict.fromkeys(c for r in self.routes for c in r.classes))

    def field_path(self, *field: str | int) -> tuple[str | int, ...]:
        return ("router", *field) if self.wrapped else field

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "kind": "router", "inputs": {"queue": self.source},
                "routes": [r.to_json() for r in self.routes]}


def parse_router(item: dict[str, Any], src: NodeSource) -> RouterNode | None:
    body: Any = item
    prefix: tuple[str | int, ...] = ()
    if "router" in item:
        body, prefix = item["router"], ("router",)
        if not isinstance(body, dict):
            src.error("router", f"router must be a mapping with inputs and routes, got {type_name(body)}")
            return None
        for key in body:
            if key not in ("inputs", "routes"):
                src.warn(("router", key), f"router field '{key}' is ignored", key=True)
    inputs = body.get("inputs")
    queue = inputs.get("queue") if isinstance(inputs, dict) else None
    ok = True
    if not isinstance(queue, str) or not queue.strip():
        at: tuple[str | int, ...] = prefix
        if inputs is not None:
            at = (*prefix, "inputs", "queue") if isinstance(inputs, dict) and "queue" in inputs else (*prefix, "inputs")
        src.error(at, f"router '{src.node_id}' needs `inputs: {{queue: <node>}}` naming the node whose flow it "
                  f"routes")
        ok = False
    raw = body.get("routes")
    routes: list[Route] = []
    if not isinstance(raw, list) or not raw:
        src.error((*prefix, "routes") if "routes" in body else prefix,
                  f"router '{src.node_id}' needs at least one route ({{target, classes?, weight?}})")
        return None
    for i, r in enumerate(raw):
        here: tuple[str | int, ...] = (*prefix, "routes", i)
        if not isinstance(r, dict):
            src.error(here, f"each route must be a mapping {{target, classes?, weight?}}, got {type_name(r)}")
            ok = False
            continue
        target = r.get("target")
        if not isinstance(target, str) or not target.strip():
            src.error((*here, "target") if "target" in r else here,
                      f"route {i} of router '{src.node_id}' needs a `target` node")
            ok = False
            continue
        classes = r.get("classes", [])
        if isinstance(classes, str):
            classes = [classes]
        if not isinstance(classes, list) or not all(isinstance(c, str) for c in classes):
            src.error((*here, "classes"), f"route classes must be a list of class ids, got {type_name(classes)}")
            ok = False
            continue
        weight = r.get("weight")
        if weight is not None and not is_number(weight):
            src.error((*here, "weight"), f"route weight must be a number, got {type_name(weight)}")
            ok = False
            continue
        if not classes and (weight is None or float(weight) <= 0):
            src.error(here, f"route {i} of router '{src.node_id}' (target '{target}') needs `classes` or a "
                      "positive `weight`")
            ok = False
            continue
        for key in r:
            if key not in ("target", "classes", "weight"):
                src.warn((*here, key), f"route field '{key}' is ignored", key=True)
        routes.append(Route(target.strip(), tuple(classes), None if weight is None else float(weight)))
    if not ok:
        return None
    assert isinstance(queue, str)
    return RouterNode(src.node_id, queue.strip(), tuple(routes), wrapped=bool(prefix), title=src.title,
                      description=src.description)


def router_expression(node: RouterNode) -> Expr:
    return Ref(node.source)


def router_warnings(routers: Sequence[RouterNode], series: Mapping[str, npt.NDArray[np.float64]],
                    parts: Mapping[str, Mapping[str, npt.NDArray[np.float64]]]) -> list[Problem]:
    """
    ``router_missing_class_route`` (no weight route takes what the class routes
    leave, and some class is left) and ``router_class_leakage`` (a class's routed
    flow differs from its source's), from the evaluated per-class series.
    """
    out: list[Problem] = []
    for r in routers:
        src = parts.get(r.source, {})
        if not src:
            continue
        weighted = [x for x in r.routes if not x.by_class]
        claimed = set(r.claimed())
        where = f"nodes.{r.id}"
        left = [c for c in src if c not in claimed and np.any(np.abs(src[c]) > LEAKAGE_TOLERANCE)]
        if not weighted and left:
            bins = np.flatnonzero(np.abs(src[left[0]]) > LEAKAGE_TOLERANCE)[:5].tolist()
            out.append(Problem(where, f"router_missing_class_route: router '{r.id}' has no route for class(es) "
                               f"{', '.join(left)} of '{r.source}' and no weight route (bins {bins})",
                               line=r.line, severity="warning", source=r.file))
        for c, flow in src.items():
            routed = np.zeros_like(flow)
            for x in r.routes:
                if c in x.classes:
                    routed = routed + flow
                elif not x.by_class and c not in claimed:
                    routed = routed + flow * r.fraction(x)
            gap = np.abs(routed - flow)
            if np.any(gap > LEAKAGE_TOLERANCE):
                bins = np.flatnonzero(gap > LEAKAGE_TOLERANCE)[:5].tolist()
                out.append(Problem(where, f"router_class_leakage: router '{r.id}' routes {float(routed.sum()):g} "
                                   f"of class {c}, whose source '{r.source}' holds {float(flow.sum()):g} (bins "
                                   f"{bins})", line=r.line, severity="warning", source=r.file))
    return out


ROUTER_FIELDS = frozenset({"id", "kind", "title", "description", "inputs", "routes", "router", "metadata"})
ROUTER = register(NodeKind("router", RouterNode, ROUTER_FIELDS, parse_router, router_expression))
