"""
The ``classes`` and ``traffic`` sections: which flow classes a model names and where they arrive.

``classes: [{id, displayName?, description?}]`` declares the classes;
``traffic: {arrivals: [{nodeId, classId, pattern: {kind, ratePerBin?, rate?}}]}``
says which class arrives at which node, and at what rate - the rate only
decides each class's share of a node several classes arrive at (the node's own
series is the total, ``engine-head.md`` §6). What the classes compute is
``model.decompose``; this module reads and checks the two sections.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from typing import Any

from flowtime.expr.functions import suggest
from flowtime.model.nodes import is_number, type_name
from flowtime.model.topology import Path, Reporter
from flowtime.records import record

# A class id becomes part of hidden node ids (``N#class#C``) and of file names (``N@N@C.csv``).
CLASS_ID = re.compile(r"^[^\W\d][\w.\-]{0,63}\Z")
PATTERN_KINDS = ("constant", "poisson")


@record
class FlowClass:
    id: str
    display_name: str | None = None
    description: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "displayName": self.display_name, "description": self.description}


@record
class Arrival:
    """Class ``class_id`` arrives at node ``node_id``; ``rate`` is its weight among the node's classes."""

    node_id: str
    class_id: str
    kind: str = "constant"
    rate: float | None = None  # ratePerBin (constant) or rate (poisson); None: weight 1

    @property
    def weight(self) -> float:
        return 1.0 if self.rate is None else self.rate

    def to_json(self) -> dict[str, Any]:
        return {"nodeId": self.node_id, "classId": self.class_id, "kind": self.kind, "rate": self.rate}


def read_classes(raw: Any, at: Reporter) -> tuple[FlowClass, ...]:
    """The declared classes (each problem reported at its item)."""
    if raw is None:
        return ()
    if not isinstance(raw, list):
        at.error(("classes",), f"classes must be a list of {{id, displayName?, description?}}, got {type_name(raw)}")
        return ()
    out: list[FlowClass] = []
    seen: dict[str, int] = {}
    for i, item in enumerate(raw):
        path: Path = ("classes", i)
        if isinstance(item, str):
            item = {"id": item}
        if not isinstance(item, dict):
            at.error(path, f"each class must be a mapping with `id`, got {type_name(item)}")
            continue
        cid = item.get("id")
        if not isinstance(cid, str) or not CLASS_ID.match(cid):
            at.error((*path, "id") if "id" in item else path,
                     f"class id must start with a letter and hold only letters, digits, '_', '.' or '-', got "
                     f"{type_name(cid)}")
            continue
        if cid in seen:
            at.error((*path, "id"), f"duplicate class id '{cid}' (also item {seen[cid]} of classes)")
            continue
        seen[cid] = i
        for key in item:
            if key not in ("id", "displayName", "description"):
                at.warn((*path, key), f"class field '{key}' is ignored", key=True)
        name, desc = item.get("displayName"), item.get("description")
        out.append(FlowClass(cid, name if isinstance(name, str) else None, desc if isinstance(desc, str) else None))
    return tuple(out)


def read_traffic(raw: Any, classes: Sequence[FlowClass], node_ids: Sequence[str], at: Reporter,
                 ) -> tuple[Arrival, ...]:
    """The arrivals of ``traffic``: each names an existing node and a declared class."""
    if raw is None:
        return ()
    if not isinstance(raw, dict):
        at.error(("traffic",), f"traffic must be a mapping with `arrivals`, got {type_name(raw)}")
        return ()
    for key in raw:
        if key != "arrivals":
            at.warn(("traffic", key), f"traffic field '{key}' is ignored", key=True)
    items = raw.get("arrivals", [])
    if not isinstance(items, list):
        at.error(("traffic", "arrivals"), f"traffic.arrivals must be a list, got {type_name(items)}")
        return ()
    class_ids = [c.id for c in classes]
    known = set(node_ids)
    out: list[Arrival] = []
    for i, item in enumerate(items):
        path: Path = ("traffic", "arrivals", i)
        if not isinstance(item, dict):
            at.error(path, f"each arrival must be a mapping {{nodeId, classId, pattern}}, got {type_name(item)}")
            continue
        node, cid = item.get("nodeId"), item.get("classId")
        ok = True
        if not isinstance(node, str) or node not in known:
            ok = False
            if not isinstance(node, str):
                at.error((*path, "nodeId") if "nodeId" in item else path,
                         f"arrival needs `nodeId` naming a node, got {type_name(node)}")
            else:
                at.error((*path, "nodeId"), f"traffic arrival names unknown node '{node}'"
                         f"{suggest(node, tuple(node_ids))}")
        if not isinstance(cid, str) or cid not in class_ids:
            ok = False
            if not class_ids:
                at.error((*path, "classId") if "classId" in item else path,
                         "traffic arrivals need declared classes: add a top-level `classes:` list")
            elif not isinstance(cid, str):
                at.error((*path, "classId") if "classId" in item else path,
                         f"arrival needs `classId`, one of {', '.join(class_ids)}")
            else:
                at.error((*path, "classId"), f"traffic arrival names undeclared class '{cid}'"
                         f"{suggest(cid, tuple(class_ids))}; declared: {', '.join(class_ids)}")
        pattern = _pattern(item.get("pattern"), (*path, "pattern"), at)
        for key in item:
            if key not in ("nodeId", "classId", "pattern"):
                at.warn((*path, key), f"arrival field '{key}' is ignored", key=True)
        if ok and pattern is not None:
            out.append(Arrival(node, cid, *pattern))  # type: ignore[arg-type]
    return tuple(out)


def _pattern(raw: Any, path: Path, at: Reporter) -> tuple[str, float | None] | None:
    if raw is None:
        return "constant", None
    if not isinstance(raw, dict):
        at.error(path, f"pattern must be a mapping {{kind, ratePerBin?}}, got {type_name(raw)}")
        return None
    kind = raw.get("kind", "constant")
    if kind not in PATTERN_KINDS:
        at.error((*path, "kind"), f"pattern kind must be constant or poisson, got {type_name(kind)}")
        return None
    rate: float | None = None
    for key in ("ratePerBin", "rate"):
        if key not in raw:
            continue
        v = raw[key]
        if not is_number(v) or not math.isfinite(float(v)) or float(v) < 0:
            at.error((*path, key), f"{key} must be a number >= 0, got {type_name(v)}")
            return None
        if rate is None:
            rate = float(v)
    for key in raw:
        if key not in ("kind", "ratePerBin", "rate"):
            at.warn((*path, key), f"pattern field '{key}' is ignored", key=True)
    return str(kind), rate
