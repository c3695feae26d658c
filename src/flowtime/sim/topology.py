"""
The shape of a validated model for Sim's quality checks and previews: its model
graph (``flowtime.model.graph``, the loader's own analysis - nothing is parsed or
ordered again here) seen as who reads whom and which nodes are declared outputs.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from flowtime.expr.syntax import Expr
from flowtime.model.graph import ModelGraph, graph_of
from flowtime.model.schema import Model


@dataclass(frozen=True)
class Topology:
    """
    Edges of a model: ``inputs[n]`` maps each node ``n`` reads to its lag.

    >>> from flowtime.model.load import load_model
    >>> m = load_model("schemaVersion: 1\\ngrid: {bins: 2, binSize: 1, binUnit: hours}\\n"
    ...                "nodes: [{id: a, kind: const, values: [1, 2]},"
    ...                " {id: q, kind: expr, expr: 'SHIFT(q, 1) + a'}]\\n"
    ...                "outputs: [{series: q}]\\n").model
    >>> t = topology(m)
    >>> t.inputs, t.outputs, t.order
    ({'a': {}, 'q': {'q': 1, 'a': 0}}, ('q',), ('a', 'q'))
    """

    inputs: Mapping[str, Mapping[str, int]]
    outputs: tuple[str, ...]
    order: tuple[str, ...]
    kinds: dict[str, str]
    asts: Mapping[str, Expr] = field(default_factory=dict)  # every computed node's expression
    graph: ModelGraph | None = None

    def readers(self) -> dict[str, list[str]]:
        """For each node, the nodes that read it (declaration order)."""
        out: dict[str, list[str]] = {n: [] for n in self.inputs}
        for node, ins in self.inputs.items():
            for src in ins:
                out[src].append(node)
        return out

    def reaching_outputs(self) -> set[str]:
        """Nodes whose values flow (directly or not) into some output."""
        seen = set(self.outputs)
        stack = list(self.outputs)
        while stack:
            for src in self.inputs.get(stack.pop(), {}):
                if src not in seen:
                    seen.add(src)
                    stack.append(src)
        return seen


def topology(model: Model) -> Topology:
    graph = graph_of(model)
    return Topology(
        inputs=graph.lags,
        outputs=tuple(output_ids(model, graph)),
        order=graph.order,
        kinds={n.id: n.kind for n in model.nodes},
        asts=graph.exprs,
        graph=graph,
    )


def output_ids(model: Model, graph: ModelGraph | None = None) -> list[str]:
    """The node ids the model's outputs name (declaration order); none when it declares no outputs."""
    if not model.outputs:
        return []
    chosen = set((graph or graph_of(model)).outputs)
    return [n for n in model.node_ids if n in chosen]
