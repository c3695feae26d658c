"""
Sinks: where flow leaves the model (``kind: sink`` or ``nodeRole: sink``).

FlowTime computes no queue for a sink, and completes its ``served`` as the
reference's Sim does (``SinkNodeSynthesizer``, ``engine-head.md`` §7):

* ``arrivals`` is required;
* no ``served`` but ``errors``: a derived ``{snake}_served = MAX(0, arrivals - errors)``
  is added and becomes ``served``;
* neither: ``served`` is ``arrivals``;
* ``served`` without ``errors`` must be the same series as ``arrivals``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from flowtime.expr.syntax import BinOp, Call, Num, Ref
from flowtime.model.queues import DerivedNode
from flowtime.model.topology import Path, Reporter, SeriesRef, TopologyNode
from flowtime.records import record


def is_sink(t: TopologyNode) -> bool:
    return t.kind == "sink" or (t.role or "").strip().lower() == "sink"


@record
class SinkServed:
    """What the sinks add: derived served series, and each sink's ``served`` as it is written back."""

    nodes: list[DerivedNode]
    served: dict[str, SeriesRef]  # topology id -> its served reference (only where FlowTime chose it)


def sink_served(tnodes: Sequence[TopologyNode], known: set[str], taken: set[str],
                snake: Callable[[str], str], at: Reporter) -> SinkServed:
    """Complete every sink's ``served``; ``known`` and ``taken`` (lower-cased) gain the ids added."""
    nodes: list[DerivedNode] = []
    served: dict[str, SeriesRef] = {}
    for t in tnodes:
        if not is_sink(t):
            continue
        here: Path = ("topology", "nodes", t.index)
        how = "kind: sink" if t.kind == "sink" else "nodeRole: sink"
        arrivals, given, errors = t.ref("arrivals"), t.ref("served"), t.ref("errors")
        if arrivals is None:
            at.error((*here, "semantics") if t.semantics else here,
                     f"topology node '{t.id}' is a sink ({how}) and must define semantics.arrivals", key=True)
            continue
        if given is None and errors is None:
            served[t.id] = arrivals
        elif given is None and errors is not None:
            name = f"{snake(t.id)}_served"
            if name in known or name.lower() in taken:
                at.error(here, f"the series '{name}' FlowTime adds as the served series of sink '{t.id}' is already "
                         "a node; rename that node, or give the sink semantics.served")
                continue
            a, e = _producer(arrivals, t), _producer(errors, t)
            known.add(name)
            taken.add(name.lower())
            served[t.id] = SeriesRef(name, "node", name)
            if a is None or e is None or a not in known or e not in known:
                continue  # an unreadable input is reported with the other references
            nodes.append(DerivedNode(name, Call("MAX", (Num(0.0), BinOp("-", Ref(a), Ref(e)))), "served", t.id))
        elif given is not None and errors is None and not _same(given, arrivals, t):
            at.error((*here, "semantics", "served"), f"topology node '{t.id}' is a sink ({how}) and must map "
                     f"semantics.served to the same series as semantics.arrivals ('{arrivals.text}'), got "
                     f"'{given.text}'; leave served out, or give errors (served is then arrivals - errors)")
    return SinkServed(nodes, served)


def _producer(ref: SeriesRef, t: TopologyNode) -> str | None:
    if ref.form == "self":
        return t.id
    return ref.node if ref.form in ("node", "series") else None


def _same(a: SeriesRef, b: SeriesRef, t: TopologyNode) -> bool:
    if a.form in ("file", "class") or b.form in ("file", "class"):
        return a.text.strip() == b.text.strip()
    return _producer(a, t) == _producer(b, t)
