"""
Queues (``serviceWithBuffer``): the node kind and its lowering to expressions.

A queue's depth is ``Q[t] = max(0, Q[t-1] + in[t] - out[t] - loss[t])`` with
``Q[-1]`` its initial depth and every non-finite input read as 0; a dispatch
schedule releases ``out`` only on dispatch bins (capped by a capacity series);
a WIP limit caps the depth and sends the excess to overflow - recorded as loss,
or added to another queue's inflow. (``../shared/spec/engine-head.md`` §4.)

Nothing here is computed by hand: a queue lowers to expressions over other
nodes, so the plan, feedback loops, compiled kernels, ``evaluate(set=)`` and
``evaluate_many`` treat it like any expression (0018). The depth is

    MIN(MAX(0, SHIFT(Q, 1) + Q#seed + IN - OUT - LOSS), Q_wip_limit)

which is ``Q[t-1] + in - out - loss`` bit for bit: ``SHIFT`` gives 0 before the
first bin and the hidden const ``Q#seed`` holds the initial depth in bin 0 and
0 after it (left out when the depth starts at 0). A non-finite input is read
as 0 by ``IF(x - x == 0, x, 0)`` (``x - x`` is NaN exactly when x is not
finite); inputs that are const or pmf nodes are finite already and read as
they are. The companion series a queue brings with it (``companions``):

* ``Q#seed``, ``Q#gate`` - hidden const series (``#`` is never in an author's
  id), not written as outputs;
* ``{base}_gated_outflow`` - the outflow the dispatch schedule lets through;
* ``{base}_wip_limit`` - the limit (a const for a number, so ``set=`` can try
  another; ``MAX(0, v)`` with non-finite read as 0 for a series);
* ``{base}_overflow`` - the excess ``Q#raw - Q``; with a limit the depth is
  ``MIN(Q#raw, limit)`` and the hidden ``Q#raw = MAX(0, sum)`` is the uncapped
  depth, a member of the queue's feedback loop (so the sum is computed once, in
  the loop, and the overflow is one vector subtraction after it). ``raw - MIN(raw,
  limit)`` is ``MAX(0, raw - limit)`` bit for bit: both are ``raw - limit`` when
  raw exceeds the limit and +0 otherwise (raw and the limit are finite and >= 0).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import numpy.typing as npt

from flowtime.expr.syntax import BinOp, Call, Expr, Num, Ref, to_text
from flowtime.model.kinds import INTERNAL, NodeKind, NodeSource, register
from flowtime.model.nodes import is_number, type_name
from flowtime.model.schema import ConstNode
from flowtime.records import record


@record
class DispatchSchedule:
    """Release on bins ``phase, phase + period, ...`` (phase already reduced modulo period)."""

    period: int
    phase: int = 0
    capacity: str | None = None  # a series capping the outflow on dispatch bins
    kind: str = "time-based"

    def gate(self, bins: int) -> npt.NDArray[np.float64]:
        # A period or phase past the grid releases as one equal to the grid's length would; clamping keeps
        # a huge author-given number (10**30) out of int64 arithmetic.
        period, phase = min(self.period, max(bins, 1)), min(self.phase, bins)
        t = np.arange(bins)
        g: npt.NDArray[np.float64] = ((t >= phase) & ((t - phase) % period == 0)).astype(np.float64)
        g.flags.writeable = False
        return g

    def to_json(self) -> dict[str, Any]:
        return {"kind": self.kind, "periodBins": self.period, "phaseOffset": self.phase,
                "capacitySeries": self.capacity}


@record
class QueueNode:
    """A queue's depth series and what it is computed from (names of other nodes)."""

    id: str
    inflow: str
    outflow: str
    loss: str | None = None
    kind: str = "serviceWithBuffer"
    initial: float = 0.0
    dispatch: DispatchSchedule | None = None
    wip_limit: float | None = None
    wip_limit_series: str | None = None  # wins over wip_limit
    overflow_into: str | None = None  # the queue node receiving the overflow; None: lost
    extra_inflows: tuple[str, ...] = ()  # overflow series of other queues, added to the inflow
    base: str = ""  # stem of the companion series' names (snake case of the topology id)
    finite: frozenset[str] = frozenset()  # inputs known to be finite (const, pmf): read as they are
    origin: str | None = None  # the topology node this queue belongs to
    title: str | None = None
    description: str | None = None

    @property
    def stem(self) -> str:
        return self.base or self.id

    @property
    def has_limit(self) -> bool:
        return self.wip_limit is not None or self.wip_limit_series is not None

    def series_names(self) -> dict[str, str]:
        """The visible companion series, by role: ``gated_outflow``, ``wip_limit``, ``overflow``."""
        out: dict[str, str] = {}
        if self.dispatch is not None:
            out["gated_outflow"] = f"{self.stem}_gated_outflow"
        if self.has_limit:
            out["wip_limit"] = f"{self.stem}_wip_limit"
            out["overflow"] = f"{self.stem}_overflow"
        return out

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"id": self.id, "kind": "serviceWithBuffer", "inflow": self.inflow,
                               "outflow": self.outflow, "loss": self.loss, "initial": self.initial}
        if self.dispatch is not None:
            out["dispatchSchedule"] = self.dispatch.to_json()
        if self.has_limit:
            out["wipLimit"] = self.wip_limit
            out["wipLimitSeries"] = self.wip_limit_series
            out["wipOverflow"] = self.overflow_into
        if self.extra_inflows:
            out["extraInflows"] = list(self.extra_inflows)
        return out


@record
class DerivedNode:
    """A series FlowTime adds for a higher-level node (a queue's overflow...): an expression tree."""

    id: str
    tree: Expr
    role: str
    origin: str
    kind: str = "derived"
    written_always: bool = False  # an output even when the model's outputs do not name it (edge series, 0022)

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "kind": "derived", "role": self.role, "of": self.origin, "expr": to_text(self.tree)}


# -- lowering ------------------------------------------------------------------------------------


def _read(name: str, finite: frozenset[str]) -> Expr:
    """``name`` as a queue reads it: non-finite values as 0."""
    r = Ref(name)
    if name in finite:
        return r
    return Call("IF", (BinOp("==", BinOp("-", r, r), Num(0.0)), r, Num(0.0)))


def _sum(node: QueueNode) -> Expr:
    """``SHIFT(Q, 1) [+ seed] + IN - OUT [- LOSS]``, left to right as the definition adds them."""
    e: Expr = Call("SHIFT", (Ref(node.id), Num(1.0)))
    if node.initial != 0.0:
        e = BinOp("+", e, Ref(seed_id(node)))
    inflow = _read(node.inflow, node.finite)
    for extra in node.extra_inflows:  # the target's inflow is its arrivals plus the overflow routed in
        inflow = BinOp("+", inflow, Ref(extra))
    e = BinOp("+", e, inflow)
    gated = node.series_names().get("gated_outflow")
    e = BinOp("-", e, Ref(gated) if gated else _read(node.outflow, node.finite))
    if node.loss is not None:
        e = BinOp("-", e, _read(node.loss, node.finite))
    return e


def queue_expression(node: QueueNode) -> Expr:
    if node.has_limit:
        return Call("MIN", (Ref(raw_id(node)), Ref(node.series_names()["wip_limit"])))
    return Call("MAX", (Num(0.0), _sum(node)))


def seed_id(node: QueueNode) -> str:
    return f"{node.id}{INTERNAL}seed"


def raw_id(node: QueueNode) -> str:
    return f"{node.id}{INTERNAL}raw"


def gate_id(node: QueueNode) -> str:
    return f"{node.id}{INTERNAL}gate"


def companions(node: QueueNode, bins: int) -> list[Any]:
    """The nodes a queue's expression reads besides its inputs (see the module docstring)."""
    out: list[Any] = []
    names = node.series_names()
    origin = node.origin or node.id
    if node.initial != 0.0:
        seed = np.zeros(bins, dtype=np.float64)
        seed[0] = node.initial
        seed.flags.writeable = False
        out.append(ConstNode(seed_id(node), seed, description=f"initial depth of {node.id}"))
    if node.dispatch is not None:
        d = node.dispatch
        out.append(ConstNode(gate_id(node), d.gate(bins), description=f"dispatch bins of {node.id}"))
        released: Expr = Ref(node.outflow)
        if d.capacity is not None:
            capped = Call("MIN", (Ref(node.outflow), Ref(d.capacity)))
            if d.capacity in node.finite:
                released = capped
            else:  # a non-finite capacity caps nothing
                cap = Ref(d.capacity)
                released = Call("IF", (BinOp("==", BinOp("-", cap, cap), Num(0.0)), capped, released))
        gated: Expr = Call("IF", (Ref(gate_id(node)), released, Num(0.0)))
        if not (node.outflow in node.finite and (d.capacity is None or d.capacity in node.finite)):
            # gated first, then read as the queue reads it (MIN(inf, cap) is cap, not 0)
            out.append(DerivedNode(f"{node.id}{INTERNAL}released", gated, "released", origin))
            gated = _read(f"{node.id}{INTERNAL}released", frozenset())
        out.append(DerivedNode(names["gated_outflow"], gated, "gated_outflow", origin))
    if node.has_limit:
        if node.wip_limit_series is not None:
            limit: Any = DerivedNode(names["wip_limit"], Call("MAX", (Num(0.0), _read(node.wip_limit_series,
                                                                                       node.finite))),
                                     "wip_limit", origin)
        else:
            assert node.wip_limit is not None
            full = np.full(bins, node.wip_limit, dtype=np.float64)
            full.flags.writeable = False
            limit = ConstNode(names["wip_limit"], full, description=f"WIP limit of {origin}")
        out.append(limit)
        out.append(DerivedNode(raw_id(node), Call("MAX", (Num(0.0), _sum(node))), "raw_depth", origin))
        out.append(DerivedNode(names["overflow"], BinOp("-", Ref(raw_id(node)), Ref(node.id)), "overflow", origin))
    return out


# -- the explicit form in nodes[] ----------------------------------------------------------------

QUEUE_FIELDS = frozenset({"id", "kind", "title", "description", "inflow", "outflow", "loss", "dispatchSchedule"})


def read_schedule(raw: Any, src: Any, field: tuple[str | int, ...]) -> DispatchSchedule | None:
    """A ``dispatchSchedule`` mapping; ``src`` reports at paths below ``field``."""
    if not isinstance(raw, dict):
        src.error(field, f"dispatchSchedule must be a mapping {{periodBins, phaseOffset?, capacitySeries?}}, got "
                  f"{type_name(raw)}")
        return None
    for key in raw:
        if key not in ("kind", "periodBins", "phaseOffset", "capacitySeries"):
            src.warn((*field, key), f"dispatchSchedule field '{key}' is not known and is ignored", key=True)
    kind = raw.get("kind", "time-based")
    if kind == "periodic":
        src.warn((*field, "kind"), "dispatchSchedule kind 'periodic' is read as 'time-based' (the only kind)")
    elif kind != "time-based":
        src.error((*field, "kind"), f"dispatchSchedule kind {type_name(kind)} is not supported; the kind is "
                  "'time-based'")
        return None
    period = raw.get("periodBins")
    if isinstance(period, float) and period.is_integer():
        period = int(period)
    if not isinstance(period, int) or isinstance(period, bool) or period <= 0:
        src.error((*field, "periodBins") if "periodBins" in raw else field,
                  f"dispatchSchedule.periodBins must be a whole number > 0, got {type_name(period)}")
        return None
    phase = raw.get("phaseOffset", 0)
    if isinstance(phase, float) and phase.is_integer():
        phase = int(phase)
    if not isinstance(phase, int) or isinstance(phase, bool):
        src.error((*field, "phaseOffset"), f"dispatchSchedule.phaseOffset must be a whole number, got "
                  f"{type_name(phase)}")
        return None
    cap = raw.get("capacitySeries")
    if cap is not None and (not isinstance(cap, str) or not cap.strip()):
        src.error((*field, "capacitySeries"), f"capacitySeries must name a node, got {type_name(cap)}")
        return None
    return DispatchSchedule(period, phase % period, cap.strip() if isinstance(cap, str) else None)


def read_limit(raw: Any, src: Any, field: tuple[str | int, ...]) -> float | None:
    if not is_number(raw) or not math.isfinite(float(raw)) or float(raw) < 0:
        src.error(field, f"wipLimit must be a number >= 0, got {type_name(raw)}")
        return None
    return float(raw)


def parse_queue(item: dict[str, Any], src: NodeSource) -> QueueNode | None:
    refs: dict[str, str] = {}
    ok = True
    for key in ("inflow", "outflow", "loss"):
        v = item.get(key)
        if v is None:
            if key != "loss":
                src.error((), f"serviceWithBuffer node '{src.node_id}' needs `inflow` and `outflow` (node ids); "
                          f"`{key}` is missing")
                ok = False
            continue
        if not isinstance(v, str) or not v.strip():
            src.error(key, f"{key} must name a node, got {type_name(v)}")
            ok = False
            continue
        refs[key] = v.strip()
    schedule = None
    if "dispatchSchedule" in item:
        schedule = read_schedule(item["dispatchSchedule"], src, ("dispatchSchedule",))
        ok = ok and schedule is not None
    if not ok:
        return None
    return QueueNode(src.node_id, refs["inflow"], refs["outflow"], refs.get("loss"), dispatch=schedule,
                     title=src.title, description=src.description)


def _not_written(item: dict[str, Any], src: NodeSource) -> None:
    src.error("kind", "derived nodes are made by FlowTime (a queue's overflow, ...); use an expr node")


def _tree(node: DerivedNode) -> Expr:
    return node.tree


QUEUE = register(NodeKind("serviceWithBuffer", QueueNode, QUEUE_FIELDS, parse_queue, queue_expression))
DERIVED = register(NodeKind("derived", DerivedNode, frozenset({"id", "kind"}), _not_written, _tree, written=False))
