"""
The plan: built once, evaluated many times - with new const values, other seeds,
or K scenarios in one pass - always giving what a fresh, separate evaluation of
the edited model gives, bit for bit.
"""

from __future__ import annotations

import json
import traceback
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st
from tests.engine.oracle import same_bits
from tests.engine.test_waves import meshes
from tests.fuzz.harness import fuzz_settings
from tests.strategies import models

import flowtime
from flowtime.engine import plan
from flowtime.errors import EvaluationError, ModelValidationError
from flowtime.expr.syntax import BinOp, Expr, Num, Ref
from flowtime.model import kinds
from flowtime.model.hashing import model_hash
from flowtime.model.load import load_model
from flowtime.records import record

HEAD = "schemaVersion: 1\ngrid: {bins: 4, binSize: 1, binUnit: hours}\nnodes:\n"
QUEUE = HEAD + ("  - {id: arrivals, values: [5, 10, 0, 8]}\n  - {id: capacity, values: 4}\n"
                "  - {id: backlog, kind: expr, expr: 'MAX(0, SHIFT(backlog, 1) + arrivals - capacity)'}\n"
                "  - {id: noise, kind: pmf, pmf: {values: [0, 1, 2], probabilities: [0.25, 0.5, 0.25]}}\n"
                "  - {id: load, kind: expr, expr: 'backlog + noise'}\n")


def test_one_plan_serves_every_evaluation_of_its_model() -> None:
    model = load_model(QUEUE).model
    p = flowtime.plan(model)
    assert flowtime.plan(model) is p and plan(p) is p
    assert p.evaluate()["backlog"].tolist() == [1, 7, 3, 7]
    assert p.evaluate(set={"capacity": 6})["backlog"].tolist() == [0, 4, 0, 2]
    assert p.evaluate(set={"arrivals": [0, 0, 0, 9]})["backlog"].tolist() == [0, 0, 0, 5]
    assert p.evaluate()["backlog"].tolist() == [1, 7, 3, 7]  # nothing of an override stays behind
    results = p.evaluate(set={"capacity": 6})
    assert list(results.series) == results.order == p.order  # every node, in evaluation order, nothing else
    assert all(not a.flags.writeable for a in results.series.values())


def test_a_model_no_longer_used_is_freed_with_its_graph_and_plans() -> None:
    import gc
    import pickle
    import weakref

    model = load_model(QUEUE).model
    results = flowtime.plan(model).evaluate(set={"capacity": 6})
    flowtime.plan(model, jit=False).evaluate()
    again = pickle.loads(pickle.dumps(model))  # the cache is not pickled: the copy plans afresh
    assert again == model and flowtime.plan(again) is not flowtime.plan(model)
    assert same_bits(flowtime.plan(again).evaluate(set={"capacity": 6})["backlog"], results["backlog"])
    gone = weakref.ref(model)
    del model, results, again
    gc.collect()
    assert gone() is None


def test_set_errors_name_the_node_and_what_is_expected() -> None:
    p = flowtime.plan(load_model(QUEUE).model)
    with pytest.raises(ModelValidationError) as info:
        p.evaluate(set={"backlog": 1, "capacity": [1, 2], "capacty": 3})
    assert sorted(x.path for x in info.value.problems) == ["set.backlog", "set.capacity", "set.capacty"]
    assert "did you mean `capacity`" in str(info.value) and "grid.bins is 4" in str(info.value)


def test_evaluate_many_gives_each_scenario_as_a_row() -> None:
    p = flowtime.plan(load_model(QUEUE).model)
    many = p.evaluate_many(seeds=[1, 2, 3], sets=[{"capacity": 4}, {"capacity": 6}, {}], sample_pmf=True)
    assert many["backlog"].shape == (3, 4)
    assert many["backlog"].tolist() == [[1, 7, 3, 7], [0, 4, 0, 2], [1, 7, 3, 7]]
    assert many["arrivals"].shape == (3, 4)  # a node no scenario varies is one series, shown per scenario
    for k, seed in enumerate([1, 2, 3]):
        alone = p.evaluate(seed=seed, sample_pmf=True, set=[{"capacity": 4}, {"capacity": 6}, {}][k])
        assert all(same_bits(many.scenario(k)[n], alone[n]) for n in alone.order)
    with pytest.raises(ModelValidationError, match="gives 2 scenarios but the other list gives 3"):
        p.evaluate_many(seeds=[1, 2], sets=[{}, {}, {}])


def _perturbed(text: str, data: st.DataObject) -> tuple[dict[str, Any], str]:
    """New values for the model's const nodes, and the YAML of the model edited to hold them."""
    doc = json.loads(text) if text.lstrip().startswith("{") else yaml.safe_load(text)
    bins = doc["grid"]["bins"]
    overrides: dict[str, Any] = {}
    for node in doc["nodes"]:
        if node["kind"] == "const" and data.draw(st.booleans()):
            value = data.draw(st.one_of(
                st.sampled_from([0.0, -1.5, 2.0, 1e3]),
                st.lists(st.sampled_from([0.0, -0.0, 1.0, 7.25, -3.0, 1e-9]), min_size=bins, max_size=bins)))
            overrides[node["id"]] = value
            node["values"] = value if isinstance(value, list) else [value] * bins
    return overrides, json.dumps(doc)


@fuzz_settings(150)
@given(st.one_of(meshes(), models()), st.data())
def test_set_equals_loading_the_edited_yaml_bit_for_bit(text: str, data: st.DataObject) -> None:
    overrides, edited = _perturbed(text, data)
    p = flowtime.plan(load_model(text).model)
    got = p.evaluate(seed=5, set=overrides)
    want = flowtime.evaluate(load_model(edited).model, seed=5)
    assert all(same_bits(got[n], want[n]) for n in want.order)
    assert got.model is not None and model_hash(got.model) == model_hash(load_model(edited).model)


@fuzz_settings(120)
@given(st.one_of(meshes(), models()), st.data())
def test_evaluate_many_equals_separate_evaluations_bit_for_bit(text: str, data: st.DataObject) -> None:
    """Loops step K lanes together and PMF nodes draw per seed: every row is its own evaluation."""
    k = data.draw(st.integers(1, 5))
    seeds = data.draw(st.lists(st.integers(0, 2**64 - 1), min_size=k, max_size=k))
    sets = [_perturbed(text, data)[0] for _ in range(k)]
    sample = data.draw(st.booleans())
    p = flowtime.plan(load_model(text).model)
    many = p.evaluate_many(seeds=seeds, sets=sets, sample_pmf=sample)
    for i in range(k):
        alone = p.evaluate(seed=seeds[i], set=sets[i], sample_pmf=sample)
        row = many.scenario(i)
        for n in alone.order:
            assert same_bits(row[n], alone[n]), (i, n, row[n], alone[n])
            assert same_bits(many[n][i], alone[n])


def test_an_evaluation_error_names_the_node_its_inputs_and_the_operation(monkeypatch: pytest.MonkeyPatch) -> None:
    from flowtime.expr import functions as fx

    def broken(x: Any) -> Any:
        raise ValueError("refused")

    monkeypatch.setitem(fx.FUNCTIONS, "SQRT", fx.Function("SQRT", 1, 1, broken, fx.s_sqrt, "SQRT(x)"))
    p = flowtime.plan(load_model(HEAD + "  - {id: a, values: [1, 2, 3, 4]}\n"
                                 "  - {id: fine, kind: expr, expr: 'a * 2'}\n"
                                 "  - {id: root, kind: expr, expr: 'SQRT(fine) + 1'}\n").model)
    with pytest.raises(EvaluationError) as info:
        p.evaluate()
    assert info.value.node_id == "root"
    assert "ValueError: refused; inputs: fine (4,) 2..8" in str(info.value)
    assert "(computing f0 = SQRT(fine))" in str(info.value)
    shown = "".join(traceback.format_exception(info.value.__cause__))
    assert "in broken" in shown  # the function's own frame is kept
    listing = p.source()
    assert "fine: fine = a * 2.0" in listing and "root: f0 = SQRT(fine)" in listing
    assert "root: root = f0 + 1.0" in listing


# -- a node kind added from outside: one schema class, a parse and an expression ---------------


@record
class ScaleNode:
    id: str
    of: str
    factor: float
    kind: str = "scale"

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "kind": "scale", "of": self.of, "factor": self.factor}


def _parse_scale(item: dict[str, Any], src: kinds.NodeSource) -> ScaleNode | None:
    of, factor = item.get("of"), item.get("factor", 1.0)
    if not isinstance(of, str):
        src.error((), f"scale node '{src.node_id}' needs `of`: the node it scales")
        return None
    if isinstance(factor, bool) or not isinstance(factor, int | float):
        src.error("factor", "factor must be a number")
        return None
    return ScaleNode(src.node_id, of, float(factor))


def _scale_expression(node: ScaleNode) -> Expr:
    return BinOp("*", Ref(node.of), Num(node.factor))


@dataclass
class _Registered:
    kind: kinds.NodeKind


@pytest.fixture
def scale_kind() -> Any:
    kind = kinds.register(kinds.NodeKind("scale", ScaleNode, frozenset({"id", "kind", "of", "factor"}),
                                         _parse_scale, _scale_expression))
    yield _Registered(kind)
    kinds.unregister("scale")


def test_a_node_kind_registered_from_outside_works_end_to_end(scale_kind: Any, tmp_path: Any) -> None:
    from flowtime.artifacts.registry import Registry
    from flowtime.artifacts.writer import write_run

    text = HEAD + ("  - {id: demand, values: [1, 2, 3, 4]}\n"
                   "  - {id: doubled, kind: scale, of: demand, factor: 2}\n"
                   "  - {id: queue, kind: expr, expr: 'SHIFT(queue, 1) + doubled'}\n")
    loaded = load_model(text)
    graph = loaded.graph
    assert graph.lags["doubled"] == {"demand": 0} and graph.order == ("demand", "doubled", "queue")
    results = flowtime.plan(loaded.model).evaluate(set={"demand": 10})
    assert results["doubled"].tolist() == [20, 20, 20, 20] and results["queue"].tolist() == [20, 40, 60, 80]
    record_ = write_run(loaded, results, tmp_path)
    Registry(tmp_path).register(record_)
    assert (record_.path / "series" / "doubled@DOUBLED@DEFAULT.csv").read_text().splitlines()[1] == "0,20"
    # its problems are located like any other node's
    with pytest.raises(ModelValidationError) as info:
        load_model(HEAD + "  - {id: d, kind: scale, factor: x}\n  - {id: e, kind: scale, of: nope}\n")
    messages = sorted((p.path, p.line, p.message) for p in info.value.problems)
    assert messages == [("nodes.d", 4, "scale node 'd' needs `of`: the node it scales"),
                        ("nodes.e", 5, "unknown node 'nope'")]


def test_unknown_kinds_list_the_registered_ones(scale_kind: Any) -> None:
    with pytest.raises(ModelValidationError,
                       match="expected one of const, expr, pmf, serviceWithBuffer, router, scale"):
        load_model(HEAD + "  - {id: d, kind: scael, of: x}\n")
    assert "scale" in kinds.names()
    np.testing.assert_array_equal(flowtime.evaluate(load_model(
        HEAD + "  - {id: a, values: 3}\n  - {id: b, kind: scale, of: a, factor: -1}\n").model)["b"], [-3] * 4)


def test_a_model_made_in_code_keeps_its_values_when_the_callers_array_changes() -> None:
    from flowtime.model.schema import BinUnit, ConstNode, ExprNode, Grid, Model

    arrivals = np.array([1.0, 2.0, 3.0])
    model = Model(grid=Grid(bins=3, bin_size=1, bin_unit=BinUnit.HOURS),
                  nodes=(ConstNode(id="a", values=arrivals), ExprNode(id="b", kind="expr", expr="a * 2")))
    before = flowtime.plan(model).evaluate()["b"].tolist()
    arrivals[:] = 100.0  # the caller's array, not the model's
    assert flowtime.plan(model).evaluate()["b"].tolist() == before == [2.0, 4.0, 6.0]
    assert not model.nodes[0].values.flags.writeable
