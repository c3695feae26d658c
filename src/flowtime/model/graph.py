"""
The model graph: a model analysed once - expressions, references with their
SHIFT lags, evaluation order, feedback loops and the series to write.

The loader builds it while it checks the model (its problems, located, are the
loader's); Sim reads it for quality checks and previews, the engine plans from
it. Nothing downstream parses an expression or orders nodes again.
``graph_of(model)`` returns the graph of any model: the loader's, or one built
on first use for a model made in code (and checked as the loader would).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from flowtime.errors import ModelValidationError, Problem
from flowtime.expr.functions import suggest
from flowtime.expr.shapes import Outline
from flowtime.expr.syntax import Expr, Ref, walk
from flowtime.model import kinds
from flowtime.model.deps import (
    DependencyGraph,
    analyse,
    expression_issues,
    outline_references,
    references_with_lag,
)
from flowtime.model.schema import Model, Output
from flowtime.records import derived, record


@record
class GraphIssue:
    """
    A problem found while analysing: ``what`` is ``expression`` (an unknown
    function, a wrong argument count, a bad lag), ``reference`` (an unknown
    node) or ``cycle`` (a loop without delay, ``cycle`` the nodes on it).
    """

    node: str
    what: str
    message: str
    column: int = 1
    cycle: tuple[str, ...] = ()


@record
class ModelGraph:
    """
    A model and everything known about its structure.

    >>> from flowtime.model.load import load_model
    >>> g = graph_of(load_model("schemaVersion: 1\\ngrid: {bins: 2, binSize: 1, binUnit: hours}\\n"
    ...                         "nodes: [{id: b, kind: expr, expr: 'a * 2 + SHIFT(b, 1)'}, "
    ...                         "{id: a, values: [1, 2]}]").model)
    >>> g.order, g.lags["b"], g.components, g.outputs
    (('a', 'b'), {'a': 0, 'b': 1}, (('b',),), ('a', 'b'))
    """

    model: Model
    exprs: Mapping[str, Expr]  # every node that is computed from others, as an expression
    lags: Mapping[str, Mapping[str, int]]  # node -> each node it reads -> the smallest SHIFT lag
    inputs: Mapping[str, tuple[str, ...]]  # node -> the nodes it reads, in first-use order
    order: tuple[str, ...]  # evaluation order (a feedback loop's members together)
    components: tuple[tuple[str, ...], ...]  # feedback loops, each in its per-bin order
    outputs: tuple[str, ...]  # the series to write, in output order

    @property
    def grid(self) -> Any:
        return self.model.grid

    def node(self, node_id: str) -> Any:
        return self.nodes[node_id]

    @functools.cached_property
    def nodes(self) -> dict[str, Any]:
        """Nodes by id (declaration order)."""
        return {n.id: n for n in self.model.nodes}

    def edges(self) -> list[tuple[str, str]]:
        """(input, node) pairs, in evaluation order of the reading node."""
        return [(src, n) for n in self.order for src in self.inputs[n]]

    def component_of(self) -> dict[str, int]:
        return {m: i for i, c in enumerate(self.components) for m in c}

    def readers(self) -> dict[str, list[str]]:
        """For each node, the nodes that read it (declaration order)."""
        out: dict[str, list[str]] = {n: [] for n in self.inputs}
        for node in self.model.node_ids:
            for src in self.inputs[node]:
                out[src].append(node)
        return out

    def reaching(self, targets: Iterable[str]) -> set[str]:
        """The nodes whose values flow (directly or not) into ``targets``, the targets included."""
        seen = set(targets)
        stack = list(seen)
        while stack:
            for src in self.inputs.get(stack.pop(), ()):
                if src not in seen:
                    seen.add(src)
                    stack.append(src)
        return seen

    def describe(self) -> dict[str, object]:
        """Nodes, edges (with lags), order, outputs and loops as plain JSON data."""
        comp = self.component_of()
        nodes = []
        for n in self.model.nodes:
            entry: dict[str, object] = {"id": n.id, "kind": n.kind, "inputs": list(self.inputs[n.id])}
            if hasattr(n, "expr"):
                entry["expr"] = n.expr
            if n.id in comp:
                entry["feedback"] = comp[n.id]
            nodes.append(entry)
        return {
            "nodes": nodes,
            "edges": [{"from": a, "to": b, "lag": self.lags[b].get(a, 0)} for a, b in self.edges()],
            "order": list(self.order),
            "outputs": list(self.outputs),
            "feedback": [list(c) for c in self.components],
        }


def output_pattern(series: str) -> re.Pattern[str]:
    """
    The node ids an output's ``series`` names: itself, or a ``*`` wildcard -
    ours (``queue_*``, ``*``) or the reference's ``prefix/*``, every id that
    starts with ``prefix`` (a node id never holds ``/``, 0019).

    >>> bool(output_pattern("queue_*").match("queue_2")), bool(output_pattern("q").match("qq"))
    (True, False)
    >>> [bool(output_pattern("queue/*").match(n)) for n in ("queue_a", "queue", "my_queue")]
    [True, True, False]
    """
    if series.endswith("/*"):
        series = series[:-2] + "*"
    return re.compile("^" + ".*".join(re.escape(p) for p in series.split("*")) + r"\Z")


def resolve_outputs(outputs: Sequence[Output], ids: Sequence[str], order: Sequence[str],
                    always: Sequence[str] = ()) -> tuple[str, ...]:
    """
    Node ids to write, in output order: every node (evaluation order) when the
    model lists none; wildcards expand in declaration order; duplicates dropped;
    then ``always`` (the edge series) when the outputs did not name them.
    Nodes FlowTime made for its own use (``kinds.is_internal``) are never written.
    """
    if not outputs:
        return tuple(n for n in order if not kinds.is_internal(n))
    out: dict[str, None] = {}
    for o in outputs:
        if o.is_wildcard:
            pattern = output_pattern(o.series)
            for n in ids:
                if pattern.match(n) and not kinds.is_internal(n):
                    out.setdefault(n, None)
        elif o.series in ids:
            out.setdefault(o.series, None)
    for n in always:
        out.setdefault(n, None)
    return tuple(out)


def ref_column(e: Expr, name: str) -> int:
    """The column of the first reference to ``name`` in ``e``."""
    for n in walk(e):
        if isinstance(n, Ref) and n.name == name:
            return n.column
    return 1


@record
class Analysis:
    """What ``analyse_nodes`` found: the expressions, the lags, the order and loops, and the issues."""

    exprs: dict[str, Expr]
    lags: dict[str, dict[str, int]]
    dependencies: DependencyGraph
    issues: tuple[GraphIssue, ...]


def analyse_nodes(nodes: Sequence[Any], exprs: Mapping[str, Expr] | None = None,
                  declared: Iterable[str] | None = None,
                  outlines: Mapping[str, Outline] | None = None) -> Analysis:
    """
    Analyse nodes once (expressions given in ``exprs`` where already parsed).
    ``declared`` are every node id of the document, nodes that failed to load
    included, so that a reference to a broken node is not also called unknown.
    ``outlines`` are the parser's outlines of expressions in ``exprs``
    (``parse_with_outline``): where one settles the references, the tree is not walked.
    """
    all_exprs = kinds.expressions(nodes, dict(exprs or {}))
    outlines = outlines or {}
    ids = [n.id for n in nodes]
    parsed = set(ids)
    declared_ids = list(dict.fromkeys(declared)) if declared is not None else ids
    known = set(declared_ids)
    # A name that is a node here is known, so its reads need no other check.
    exact = known.issuperset(parsed)
    issues: list[GraphIssue] = []
    lags: dict[str, dict[str, int]] = {}
    for node_id in ids:
        outline = outlines.get(node_id)
        if outline is not None and not outline[0]:  # calls nothing: every name is read at lag 0
            refs = dict.fromkeys(outline[1], 0)
            if exact and parsed.issuperset(refs):
                lags[node_id] = refs
                continue
        else:
            if node_id not in all_exprs:
                lags[node_id] = {}
                continue
            maybe = outline_references(*outline) if outline is not None else None
            if maybe is None:
                e = all_exprs[node_id]
                issues.extend(GraphIssue(node_id, "expression", i.message, i.column) for i in expression_issues(e))
                maybe = references_with_lag(e)
            refs = maybe
        if not known.issuperset(refs):
            e = all_exprs[node_id]
            for name in refs:
                if name not in known:
                    issues.append(GraphIssue(node_id, "reference",
                                             f"unknown node '{name}'{suggest(name, declared_ids)}",
                                             ref_column(e, name)))
        lags[node_id] = refs if parsed.issuperset(refs) else {k: v for k, v in refs.items() if k in parsed}
    dg = analyse(ids, lags, within=True)  # every node has its lags, filtered to the nodes
    issues.extend(GraphIssue(c[0], "cycle", "cycle without delay: " + " -> ".join(c), 1, tuple(c)) for c in dg.cycles)
    return Analysis(all_exprs, lags, dg, tuple(issues))


def graph_from(model: Model, analysis: Analysis) -> ModelGraph:
    """The graph of ``model`` from its analysis (which must have found no issues)."""
    dg = analysis.dependencies
    return ModelGraph(
        model=model,
        exprs=analysis.exprs,
        lags=analysis.lags,
        inputs=dg.inputs,
        order=tuple(dg.order),
        components=tuple(tuple(c) for c in dg.components),
        outputs=resolve_outputs(model.outputs, model.node_ids, dg.order,
                                [n.id for n in model.nodes if getattr(n, "written_always", False)]),
    )


def build_graph(model: Model, exprs: Mapping[str, Expr] | None = None) -> tuple[ModelGraph | None, list[GraphIssue]]:
    """The graph of ``model`` and no issues, or None and every issue found."""
    analysis = analyse_nodes(model.nodes, exprs)
    if analysis.issues:
        return None, list(analysis.issues)
    return graph_from(model, analysis), []


def remember(graph: ModelGraph) -> ModelGraph:
    """Keep ``graph`` as its model's graph (the loader's analysis; a model made in code is analysed on first use)."""
    kept: ModelGraph = derived(graph.model).setdefault("graph", graph)
    return kept


def graph_of(model: Model) -> ModelGraph:
    """The graph of ``model``; ``ModelValidationError`` naming each problem for an invalid model made in code."""
    cached: ModelGraph | None = derived(model).get("graph")
    if cached is not None:
        return cached
    graph, issues = build_graph(model)
    if graph is None:
        raise ModelValidationError([issue_problem(i) for i in issues])
    return remember(graph)


def issue_problem(issue: GraphIssue) -> Problem:
    """A graph issue as a problem without a file location (for models made in code)."""
    if issue.what == "cycle":
        return Problem(f"nodes.{issue.node}", issue.message)
    return Problem(f"nodes.{issue.node}.expr", f"{issue.message} (column {issue.column})")
