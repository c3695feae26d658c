"""
Flow classes (``classes``/``traffic``) and routers: per-class series lowered to hidden expression nodes.

Values are hand-computed; the property checks that per-class parts add up to
the total for random class-aware models (the decomposition's invariant, 0021).
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from flowtime.engine import compile_model, evaluate
from flowtime.engine.plan import plan
from flowtime.errors import ModelValidationError
from flowtime.model.diff import diff_models
from flowtime.model.hashing import model_hash
from flowtime.model.load import load_model

HEAD = "schemaVersion: 1\ngrid: {bins: 4, binSize: 1, binUnit: hours}\n"
CLASSES = """classes: [{id: Order}, {id: Refund}]
traffic:
  arrivals:
    - {nodeId: ingest, classId: Order, pattern: {kind: constant, ratePerBin: 20}}
    - {nodeId: ingest, classId: Refund, pattern: {kind: constant, ratePerBin: 5}}
"""


def _model(nodes: str, extra: str = CLASSES) -> str:
    return HEAD + extra + "nodes:\n" + nodes


SIMPLE = _model("  - {id: ingest, kind: const, values: [10, 10, 10, 10]}\n"
                "  - {id: served, kind: expr, expr: ingest * 0.8}\n")


def test_class_parts_are_hidden_nodes_read_through_results_classes() -> None:
    results = evaluate(load_model(SIMPLE).model)
    assert results.shown == ["ingest", "served"]
    assert results.output_ids == ["ingest", "served"]
    assert list(results.classes) == ["ingest", "served"]
    assert list(results.classes["served"]) == ["Order", "Refund"]  # declared order
    np.testing.assert_allclose(results.classes["served"]["Order"], [6.4] * 4)
    np.testing.assert_allclose(results.classes["served"]["Refund"], [1.6] * 4)


def test_overrides_and_batches_reach_the_class_parts() -> None:
    p = plan(load_model(SIMPLE).model)
    edited = p.evaluate(set={"ingest": 20.0})
    np.testing.assert_allclose(edited.classes["served"]["Order"], [12.8] * 4)  # 20 * 0.8 * 20/25
    many = p.evaluate_many(sets=[{"ingest": 5.0}, {"ingest": 50.0}])
    np.testing.assert_allclose(many["served#class#Refund"][:, 0], [0.8, 8.0])  # x * 0.8 * 5/25


def test_nodes_no_class_reaches_get_no_parts() -> None:
    text = _model("  - {id: ingest, kind: const, values: 10}\n  - {id: other, kind: const, values: 3}\n"
                  "  - {id: scaled, kind: expr, expr: other * 2}\n  - {id: mixed, kind: expr, expr: ingest + other}\n")
    results = evaluate(load_model(text).model)
    assert set(results.classes) == {"ingest", "mixed"}
    # a class-less addend is shared by the class mix: 13 = Order 13 * 0.8, Refund 13 * 0.2
    np.testing.assert_allclose(results.classes["mixed"]["Order"], [10.4] * 4)
    np.testing.assert_allclose(results.classes["mixed"]["Refund"], [2.6] * 4)


def test_min_takes_the_mix_of_its_winner() -> None:
    text = HEAD + """classes: [{id: A}, {id: B}]
traffic:
  arrivals:
    - {nodeId: a, classId: A}
    - {nodeId: b, classId: B}
nodes:
  - {id: a, kind: const, values: [1, 5, 2, 9]}
  - {id: b, kind: const, values: [4, 3, 2, 1]}
  - {id: low, kind: expr, expr: "MIN(a, b) * 10"}
"""
    results = evaluate(load_model(text).model)
    np.testing.assert_allclose(results["low"], [10, 30, 20, 10])
    # the first argument equal to the result wins a tie (bin 2)
    np.testing.assert_allclose(results.classes["low"]["A"], [10, 0, 20, 0])
    np.testing.assert_allclose(results.classes["low"]["B"], [0, 30, 0, 10])


def test_the_model_hash_and_diff_see_classes_and_traffic() -> None:
    a = load_model(SIMPLE).model
    b = load_model(SIMPLE.replace("ratePerBin: 5", "ratePerBin: 15")).model
    plain = load_model(HEAD + "nodes:\n  - {id: ingest, kind: const, values: 10}\n").model
    assert model_hash(a) != model_hash(b)
    assert "classes" in a.canonical() and "classes" not in plain.canonical()
    changes = [(c.where, c.detail) for c in diff_models(a, b)]
    assert ("traffic", "Order at ingest (20/bin), Refund at ingest (5/bin) -> "
                       "Order at ingest (20/bin), Refund at ingest (15/bin)") in changes
    assert all("#" not in where for where, _ in changes)


# -- routers ---------------------------------------------------------------------------------------

ROUTED = HEAD + """classes: [{id: Alpha}, {id: Beta}]
traffic:
  arrivals:
    - {nodeId: source, classId: Alpha, pattern: {kind: constant, ratePerBin: 40}}
    - {nodeId: source, classId: Beta, pattern: {kind: constant, ratePerBin: 60}}
nodes:
  - {id: source, kind: const, values: 100}
  - id: splitter
    kind: router
    inputs: {queue: source}
    routes:
      - {target: airport, classes: [Alpha]}
ROUTES
  - {id: airport, kind: expr, expr: "0"}
  - {id: general, kind: expr, expr: "0"}
  - {id: after, kind: expr, expr: "general * 2 + airport"}
"""


def test_downstream_nodes_read_the_routed_flow_and_its_classes() -> None:
    results = evaluate(load_model(ROUTED.replace("ROUTES", "      - {target: general, weight: 1}")).model)
    np.testing.assert_allclose(results["after"], [160] * 4)  # 60 * 2 + 40
    np.testing.assert_allclose(results.classes["after"]["Alpha"], [40] * 4)
    np.testing.assert_allclose(results.classes["after"]["Beta"], [120] * 4)
    assert results.warnings == []


def test_a_class_without_a_route_is_warned_after_evaluation_at_the_router() -> None:
    text = ROUTED.replace("ROUTES\n", "")
    results = evaluate(load_model(text, "routed.yaml").model)
    codes = sorted(w.message.split(":", 1)[0] for w in results.warnings)
    assert codes == ["router_class_leakage", "router_missing_class_route"]
    missing = next(w for w in results.warnings if w.message.startswith("router_missing_class_route"))
    assert (missing.path, missing.line, missing.source, missing.severity) == ("nodes.splitter", 10, "routed.yaml",
                                                                            "warning")
    assert "Beta" in missing.message
    np.testing.assert_allclose(results["general"], [0] * 4)  # not a target: its own 0


def test_a_target_that_computed_something_is_warned_about() -> None:
    text = ROUTED.replace("ROUTES\n", "").replace('{id: airport, kind: expr, expr: "0"}',
                                                  "{id: airport, kind: expr, expr: source * 3}")
    loaded = load_model(text, "routed.yaml")
    (warning,) = loaded.warnings
    assert warning.line == 15 and warning.path == "nodes.airport"
    assert "target of router splitter" in warning.message
    np.testing.assert_allclose(evaluate(loaded.model)["airport"], [40] * 4)


def test_a_class_route_from_a_source_without_classes_is_an_error() -> None:
    text = HEAD + """classes: [{id: Alpha}]
nodes:
  - {id: source, kind: const, values: 100}
  - {id: airport, kind: expr, expr: "0"}
  - id: splitter
    kind: router
    inputs: {queue: source}
    routes:
      - {target: airport, classes: [Alpha]}
"""
    with pytest.raises(ModelValidationError) as info:
        load_model(text, "m.yaml")
    (problem,) = info.value.problems
    assert problem.line == 11 and problem.path == "nodes.splitter.routes[0].classes"
    assert "carries no classes" in problem.message


def test_a_route_weight_that_is_not_positive_everywhere_splits_by_what_is_given() -> None:
    # W = 3 + 1: the weights are shares of what the class route leaves (60 of Beta)
    text = ROUTED.replace("ROUTES", "      - {target: general, weight: 3}\n      - {target: spare, weight: 1}") \
        + "  - {id: spare, kind: const, values: 0}\n"
    results = evaluate(load_model(text).model)
    np.testing.assert_allclose(results["general"], [45] * 4)
    np.testing.assert_allclose(results["spare"], [15] * 4)
    np.testing.assert_allclose(results.classes["spare"]["Beta"], [15] * 4)
    assert "Alpha" not in results.classes["spare"]


# -- the invariant: parts add up to the total ------------------------------------------------------

_LEAVES = ("s1", "s2", "k")


def _tree(depth: int, names: tuple[str, ...], *, shifts: bool) -> st.SearchStrategy[str]:
    leaf = st.one_of(st.sampled_from(names), st.sampled_from(["2", "0.5", "3"]))
    if depth == 0:
        return leaf
    sub = _tree(depth - 1, names, shifts=shifts)
    forms = [
        st.tuples(sub, st.sampled_from(["+", "-", "*", "/"]), sub).map(lambda t: f"({t[0]} {t[1]} {t[2]})"),
        st.tuples(st.sampled_from(["MIN", "MAX"]), st.lists(sub, min_size=2, max_size=3)).map(
            lambda t: f"{t[0]}({', '.join(t[1])})"),
        st.tuples(sub, sub, sub, sub).map(lambda t: f"IF({t[0]} > {t[1]}, {t[2]}, {t[3]})"),
        sub.map(lambda s: f"ABS({s})"),
        sub.map(lambda s: f"-{s}"),
    ]
    if shifts:
        forms += [sub.map(lambda s: f"SHIFT({s}, 1)"), sub.map(lambda s: f"CONV({s}, [0.5, 0.5])")]
    return st.one_of(leaf, *forms)


@st.composite
def class_models(draw: st.DrawFn, *, shifts: bool = True) -> str:
    values = st.lists(st.integers(1, 50), min_size=5, max_size=5)
    nodes = [f"  - {{id: s1, kind: const, values: {draw(values)}}}",
             f"  - {{id: s2, kind: const, values: {draw(values)}}}",
             f"  - {{id: k, kind: const, values: {draw(values)}}}"]
    names = _LEAVES
    for i in range(draw(st.integers(1, 4))):
        nodes.append(f"  - {{id: n{i}, kind: expr, expr: '{draw(_tree(2, names, shifts=shifts))}'}}")
        names = (*names, f"n{i}")
    if shifts and draw(st.booleans()):  # a per-class backlog through a feedback loop
        nodes.append("  - {id: q, kind: expr, expr: 'MAX(0, SHIFT(q, 1) + n0 - k)'}")
    rates = draw(st.lists(st.integers(1, 9), min_size=2, max_size=2))
    return ("schemaVersion: 1\ngrid: {bins: 5, binSize: 1, binUnit: hours}\n"
            "classes: [{id: A}, {id: B}, {id: C}]\ntraffic:\n  arrivals:\n"
            f"    - {{nodeId: s1, classId: A, pattern: {{ratePerBin: {rates[0]}}}}}\n"
            f"    - {{nodeId: s1, classId: B, pattern: {{ratePerBin: {rates[1]}}}}}\n"
            "    - {nodeId: s2, classId: C}\n"
            "nodes:\n" + "\n".join(nodes) + "\n")


def _gaps(text: str) -> list[str]:
    results = evaluate(compile_model(load_model(text).model))
    bad = []
    for node, parts in results.classes.items():
        total = results[node]
        stack = np.stack(list(parts.values()))
        ok = np.isfinite(total) & np.isfinite(stack).all(axis=0)
        scale = np.maximum.reduce([np.ones_like(total), np.abs(total), np.abs(stack).max(axis=0)])
        close = np.abs(stack.sum(axis=0) - total) <= 1e-9 * scale
        no_class = (stack == 0).all(axis=0)  # flow no class carries (module docstring of model.decompose)
        if not (close | no_class | ~ok).all():
            bad.append(node)
    return bad


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(class_models())
def test_class_parts_add_up_to_the_total_wherever_a_class_carries_flow(text: str) -> None:
    assert _gaps(text) == []


def test_a_queue_backlog_is_split_per_class_and_adds_up() -> None:
    text = HEAD + """classes: [{id: A}, {id: B}]
traffic:
  arrivals:
    - {nodeId: in_a, classId: A}
    - {nodeId: in_b, classId: B}
nodes:
  - {id: in_a, kind: const, values: [6, 0, 6, 0]}
  - {id: in_b, kind: const, values: [4, 8, 0, 0]}
  - {id: arrivals, kind: expr, expr: in_a + in_b}
  - {id: served, kind: const, values: 5}
topology:
  nodes:
    - id: Hub
      kind: serviceWithBuffer
      semantics: {arrivals: arrivals, served: served}
      initialCondition: {queueDepth: 2}
"""
    results = evaluate(load_model(text).model)
    parts = results.classes["hub_queue"]
    np.testing.assert_allclose(parts["A"] + parts["B"], results["hub_queue"], rtol=1e-12)
    np.testing.assert_allclose(parts["A"], [4.2, 2.8, 6.05, 3.3], rtol=1e-12)
