"""The model graph's fast paths (parser outlines, the acyclic order) give what the full analysis gives."""

from __future__ import annotations

from pathlib import Path
from unittest import mock

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from flowtime.errors import ModelValidationError
from flowtime.expr.parser import parse_with_outline
from flowtime.model import deps, graph
from flowtime.model.load import load_model
from flowtime.series_files import beside

ROOT = Path(__file__).parents[2]
MODELS = sorted([*ROOT.glob("tests/cases/*/model.yaml"), *ROOT.glob("examples/*.yaml")])


def _graph_facts(g: graph.ModelGraph) -> tuple[object, ...]:
    return (dict(g.exprs), {k: dict(v) for k, v in g.lags.items()}, dict(g.inputs), g.order, g.components, g.outputs)


@pytest.mark.parametrize("path", MODELS, ids=lambda p: p.parent.name if p.name == "model.yaml" else p.stem)
def test_the_loaders_graph_equals_a_graph_built_without_outlines(path: Path) -> None:
    model = load_model(path.read_text(encoding="utf-8"), str(path), series_files=beside(path)).model
    rebuilt, issues = graph.build_graph(model)
    assert not issues and rebuilt is not None
    assert _graph_facts(graph.graph_of(model)) == _graph_facts(rebuilt)


@pytest.mark.parametrize(
    "text",
    ["MIN(a, b) * 0.5 + a", "SHIFT(q, 1) + MAX(0, q - d)", "2 * 3", "-x + x", "FOO(a)", "MIN()", "POW(a)",
     "SHIFT(a, -1)", "SHIFT(a, b)", "CLAMP(a, 0, 1) + ABS(b)"],
)
def test_outline_references_agree_with_walking_the_tree_or_defer_to_it(text: str) -> None:
    tree, outline = parse_with_outline(text)
    assert outline is not None
    refs = deps.outline_references(*outline)
    if refs is None:
        assert "SHIFT" in text or deps.expression_issues(tree)
    else:
        assert not deps.expression_issues(tree)
        assert list(refs.items()) == list(deps.references_with_lag(tree).items())


def _without_outlines(text: str, *limits: int) -> tuple[object, None]:
    return parse_with_outline(text, *limits)[0], None


@pytest.mark.parametrize(
    "exprs",
    [("a + c * 2", "POW(b) + zz", "SHIFT(d, 1) + FOO(a)"), ("SHIFT(a, -1) + c", "b + MIN()", "MAX(a, d) * e"),
     ("b", "c", "a + SHIFT(d, 1)")],
)
def test_outlined_and_walked_expressions_report_the_same_problems(exprs: tuple[str, str, str]) -> None:
    text = ("schemaVersion: 1\ngrid: {bins: 2, binSize: 1, binUnit: hours}\nnodes:\n  - {id: a, values: [1, 2]}\n"
            + "".join(f"  - {{id: {n}, kind: expr, expr: '{e}'}}\n" for n, e in zip("bcd", exprs, strict=True)))
    with pytest.raises(ModelValidationError) as fast:
        load_model(text)
    with mock.patch("flowtime.model.load.parse_with_outline", _without_outlines), \
            pytest.raises(ModelValidationError) as walked:
        load_model(text)
    assert str(fast.value) == str(walked.value)
    assert "line" in str(fast.value)


def _slow_analyse(ids: list[str], lags: dict[str, dict[str, int]]) -> deps.DependencyGraph:
    with mock.patch.object(deps, "_acyclic_order", lambda *_: None), \
            mock.patch.object(deps, "_declared_order_is_kahns", lambda *_: False):
        return deps.analyse(ids, lags)


@settings(max_examples=200, deadline=None)
@given(st.integers(1, 12).flatmap(lambda n: st.tuples(
    st.just(n), st.lists(st.tuples(st.integers(0, n - 1), st.integers(0, n - 1), st.integers(0, 2)), max_size=3 * n))))
def test_the_acyclic_order_is_the_order_the_full_analysis_gives(
    graph_spec: tuple[int, list[tuple[int, int, int]]],
) -> None:
    n, edges = graph_spec
    ids = [f"n{i}" for i in range(n)][::-1]
    lags: dict[str, dict[str, int]] = {i: {} for i in ids}
    for reader, read, lag in edges:
        lags[f"n{reader}"].setdefault(f"n{read}", lag)
    lags["n0"]["ghost"] = 0  # a name that is no node is no input
    fast, slow = deps.analyse(ids, lags), _slow_analyse(ids, lags)
    assert (fast.order, fast.inputs, fast.components, fast.cycles) == (
        slow.order, slow.inputs, slow.components, slow.cycles)
    within = deps.analyse(ids, {i: {k: v for k, v in lag.items() if k in ids} for i, lag in lags.items()}, within=True)
    assert (within.order, within.inputs, within.components, within.cycles) == (
        slow.order, slow.inputs, slow.components, slow.cycles)


def test_loaded_expression_nodes_are_the_nodes_their_class_makes() -> None:
    """The loader makes ExprNodes without calling __init__: same fields, same order, same pickles."""
    import pickle

    from flowtime.model.schema import ExprNode

    text = ("schemaVersion: 1\ngrid: {bins: 1, binSize: 1, binUnit: hours}\nnodes:\n  - {id: a, values: [1]}\n"
            "  - {id: b, kind: expr, expr: 'a * 2', title: B}\n")
    node = load_model(text).model.node("b")
    made = ExprNode("b", "a * 2", title="B")
    assert node == made and list(vars(node).items()) == list(vars(made).items())
    assert pickle.dumps(node) == pickle.dumps(made)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.lists(st.integers(0, 10**6), max_size=3), min_size=1, max_size=15), st.integers(0, 3))
def test_a_model_written_inputs_first_is_ordered_as_declared_when_kahn_says_so(
    reads: list[list[int]], sources: int
) -> None:
    """Node j reads earlier nodes only (a few sources first): the shortcut and Kahn's FIFO order agree."""
    ids = [f"n{j}" for j in range(sources + len(reads))]
    lags: dict[str, dict[str, int]] = {i: {} for i in ids}
    for j, picks in enumerate(reads, start=sources):
        if j:
            lags[ids[j]] = {ids[p % j]: 0 for p in picks}
    index = {n: i for i, n in enumerate(ids)}
    inputs = {n: tuple(lags[n]) for n in ids}
    kahn = deps._acyclic_order(ids, inputs, index)
    if deps._declared_order_is_kahns(inputs, index):
        assert kahn == ids
    slow = _slow_analyse(ids, lags)
    fast = deps.analyse(ids, lags, within=True)
    assert (fast.order, fast.inputs, fast.components, fast.cycles) == (
        slow.order, slow.inputs, slow.components, slow.cycles)


def test_the_declared_order_shortcut_is_taken_for_a_chain_and_not_for_a_late_source() -> None:
    chain = {"a": (), "b": (), "c": ("a",), "d": ("c", "b")}
    index = {n: i for i, n in enumerate(chain)}
    assert deps._declared_order_is_kahns(chain, index)
    late = {"a": (), "b": ("a",), "c": ()}  # Kahn: a, c, b
    assert not deps._declared_order_is_kahns(late, {n: i for i, n in enumerate(late)})
    assert deps.analyse(list(late), {k: dict.fromkeys(v, 0) for k, v in late.items()}).order == ["a", "c", "b"]
