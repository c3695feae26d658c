"""
Model -> Graph: the evaluation plan, built once and reused for every evaluation.

Building is separate from executing: everything that can be checked is checked
by the loader; here the expressions (already parsed) are arranged in evaluation
order and feedback loops are grouped into components.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from flowtime.errors import ModelValidationError, Problem
from flowtime.expr.parser import parse_expression
from flowtime.expr.syntax import Expr
from flowtime.model.deps import analyse, expression_issues, references_with_lag
from flowtime.model.schema import ConstNode, ExprNode, Grid, Model, PmfNode

AnyNode = ConstNode | ExprNode | PmfNode


@dataclass
class Graph:
    """
    A compiled model.

    >>> from flowtime.model.load import load_model
    >>> m = load_model("schemaVersion: 1\\ngrid: {bins: 2, binSize: 1, binUnit: hours}\\n"
    ...                "nodes: [{id: b, kind: expr, expr: a * 2}, {id: a, values: [1, 2]}]").model
    >>> g = compile_model(m)
    >>> g.order, g.edges()
    (['a', 'b'], [('a', 'b')])
    """

    model: Model
    order: list[str]
    nodes: dict[str, AnyNode]
    asts: dict[str, Expr]
    inputs: dict[str, list[str]]
    lags: dict[str, dict[str, int]]
    components: list[list[str]] = field(default_factory=list)
    output_ids: list[str] = field(default_factory=list)
    # Compiled evaluation code, built on first evaluation (see engine.evaluate).
    cache: dict[str, object] = field(default_factory=dict, repr=False, compare=False)

    @property
    def grid(self) -> Grid:
        return self.model.grid

    def edges(self) -> list[tuple[str, str]]:
        """(input, node) pairs, in evaluation order of the reading node."""
        return [(src, n) for n in self.order for src in self.inputs[n]]

    def describe(self) -> dict[str, object]:
        comp = {m: i for i, c in enumerate(self.components) for m in c}
        return {
            "nodes": [
                {"id": n, "kind": self.nodes[n].kind, "inputs": self.inputs[n],
                 **({"expr": node.expr} if isinstance(node := self.nodes[n], ExprNode) else {}),
                 **({"feedback": comp[n]} if n in comp else {})}
                for n in self.model.node_ids
            ],
            "edges": [{"from": a, "to": b, "lag": self.lags[b].get(a, 0)} for a, b in self.edges()],
            "order": self.order,
            "outputs": self.output_ids,
            "feedback": self.components,
        }


def resolve_outputs(model: Model, order: list[str]) -> list[str]:
    """
    Node ids to write, in output order: every node (evaluation order) when the
    model lists none; wildcards expand in declaration order; duplicates dropped.
    """
    if not model.outputs:
        return list(order)
    ids = model.node_ids
    out: dict[str, None] = {}
    for o in model.outputs:
        if o.is_wildcard:
            pat = re.compile("^" + ".*".join(re.escape(p) for p in o.series.split("*")) + "$")
            for n in ids:
                if pat.match(n):
                    out.setdefault(n, None)
        else:
            out.setdefault(o.series, None)
    return list(out)


def compile_model(model: Model) -> Graph:
    """Arrange a validated model for evaluation."""
    nodes: dict[str, AnyNode] = {n.id: n for n in model.nodes}
    asts: dict[str, Expr] = {}
    lags: dict[str, dict[str, int]] = {}
    problems: list[Problem] = []
    for n in model.nodes:
        if isinstance(n, ExprNode):
            # Models built in code skip the loader: check what it would have checked.
            ast = n._ast if n._ast is not None else parse_expression(n.expr)
            for issue in expression_issues(ast):
                problems.append(Problem(f"nodes.{n.id}.expr", f"{issue.message} (column {issue.column})"))
            refs = references_with_lag(ast)
            for name in refs:
                if name not in nodes:
                    problems.append(Problem(f"nodes.{n.id}.expr", f"unknown node '{name}'"))
            asts[n.id] = ast
            lags[n.id] = {k: v for k, v in refs.items() if k in nodes}
        else:
            lags[n.id] = {}
    if problems:
        raise ModelValidationError(problems)
    dg = analyse(model.node_ids, lags)
    if dg.cycles:
        raise ModelValidationError(
            [Problem(f"nodes.{c[0]}", "cycle without delay: " + " -> ".join(c)) for c in dg.cycles]
        )
    return Graph(
        model=model,
        order=dg.order,
        nodes=nodes,
        asts=asts,
        inputs=dg.inputs,
        lags=lags,
        components=dg.components,
        output_ids=resolve_outputs(model, dg.order),
    )
