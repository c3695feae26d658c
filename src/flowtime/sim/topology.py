"""
The shape of a validated model, read without executing it: who reads whom
(with SHIFT lags), which nodes are outputs, and an evaluation order.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from flowtime.expr.parser import parse_expression
from flowtime.expr.syntax import Expr
from flowtime.model.deps import analyse, references_with_lag
from flowtime.model.schema import ExprNode, Model


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

    inputs: dict[str, dict[str, int]]
    outputs: tuple[str, ...]
    order: tuple[str, ...]
    kinds: dict[str, str]
    asts: dict[str, Expr] = field(default_factory=dict)  # parsed expressions of expr nodes

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
    inputs: dict[str, dict[str, int]] = {}
    asts: dict[str, Expr] = {}
    for node in model.nodes:
        if isinstance(node, ExprNode):
            # The loader keeps each parsed expression on its node; parse only if it did not.
            ast = node._ast if node._ast is not None else parse_expression(node.expr)
            asts[node.id] = ast
            inputs[node.id] = dict(references_with_lag(ast))
        else:
            inputs[node.id] = {}
    ids = model.node_ids
    return Topology(
        inputs=inputs,
        outputs=tuple(output_ids(model)),
        order=tuple(analyse(ids, inputs).order),
        kinds={n.id: n.kind for n in model.nodes},
        asts=asts,
    )


def output_ids(model: Model) -> list[str]:
    """Node ids named by the outputs, wildcards expanded, declaration order."""
    ids = model.node_ids
    chosen: set[str] = set()
    for out in model.outputs:
        if out.is_wildcard:
            pattern = re.compile("^" + ".*".join(re.escape(p) for p in out.series.split("*")) + "$")
            chosen.update(n for n in ids if pattern.match(n))
        elif out.series in ids:
            chosen.add(out.series)
    return [n for n in ids if n in chosen]
