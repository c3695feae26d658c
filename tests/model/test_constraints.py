"""
Shared capacity (``topology.constraints``): allocations lowered to expressions, so overrides and
batched scenarios see them; located warnings and errors; names that avoid the author's.
"""

from __future__ import annotations

import numpy as np
import pytest

import flowtime
from flowtime.errors import ModelValidationError
from flowtime.model.load import load_model

HEAD = "schemaVersion: 1\ngrid: {bins: 3, binSize: 1, binUnit: hours}\n"


def _model(constraint: str = "{id: pool, semantics: {served: capacity}}", extra_nodes: str = "",
           kind_b: str = "serviceWithBuffer", member_b: str = "[pool]") -> str:
    return (HEAD + "nodes:\n  - {id: demand_a, values: [60, 20, 0]}\n  - {id: demand_b, values: [20, 20, 0]}\n"
            "  - {id: capacity, values: [40, 40, 40]}\n  - {id: served, values: [0, 0, 0]}\n" + extra_nodes
            + "topology:\n  nodes:\n"
            "    - id: A\n      kind: serviceWithBuffer\n      constraints: [pool]\n"
            "      semantics: {arrivals: demand_a, served: served}\n"
            f"    - id: B\n      kind: {kind_b}\n      constraints: {member_b}\n"
            "      semantics: {arrivals: demand_b, served: served}\n"
            f"  constraints:\n    - {constraint}\n")


def test_capacity_is_shared_in_proportion_to_demand_and_can_be_overridden() -> None:
    p = flowtime.plan(load_model(_model()).model)
    r = p.evaluate()
    # bin 0: 60 + 20 > 40 -> 30 and 10; bin 1: 40 <= 40 -> as asked; bin 2: no demand -> 0
    assert r["a_capped_pool"].tolist() == [30, 20, 0]
    assert r["b_capped_pool"].tolist() == [10, 20, 0]
    assert r["a_queue"].tolist() == [30, 50, 50]
    wider = p.evaluate(set={"capacity": 80})
    assert wider["a_capped_pool"].tolist() == [60, 20, 0]
    assert wider["a_queue"].tolist() == [60, 80, 80]
    sets = [{"capacity": 0}, {"demand_b": [60, 0, 0]}]
    many = p.evaluate_many(sets=sets)
    for k, given in enumerate(sets):
        alone = p.evaluate(set=given)
        for name in ("a_capped_pool", "b_capped_pool", "a_queue", "b_queue"):
            assert np.array_equal(many[name][k], alone[name])
    assert many["a_queue"][0].tolist() == [0, 0, 0]
    assert many["b_capped_pool"][1].tolist() == [20, 0, 0]  # 40 * 60 / 120


def test_a_service_member_gets_its_allocation_series_without_a_queue() -> None:
    r = flowtime.evaluate(load_model(_model(kind_b="service")).model)
    assert r["b_capped_pool"].tolist() == [10, 20, 0]
    assert "b_queue" not in r.series


def test_the_constraint_arrivals_naming_no_series_is_a_located_warning() -> None:
    loaded = load_model(_model("{id: pool, semantics: {arrivals: total_demand, served: capacity}}"), "m.yaml")
    assert len(loaded.warnings) == 1
    w = loaded.warnings[0]
    assert "constraint_missing_arrivals" in w.message and "'total_demand'" in w.message
    assert w.line == 19


def test_a_constraint_nobody_lists_is_warned_about() -> None:
    loaded = load_model(_model(member_b="[]").replace("constraints: [pool]", "constraints: []"), "m.yaml")
    assert any("constraint 'pool' has no members" in w.message for w in loaded.warnings)
    assert not any("capped" in n for n in loaded.model.node_ids)


def test_a_duplicate_constraint_id_is_a_located_error() -> None:
    text = _model() + "    - {id: pool, semantics: {served: capacity}}\n"
    with pytest.raises(ModelValidationError) as info:
        load_model(text, "m.yaml")
    assert "duplicate constraint id 'pool'" in str(info.value)
    assert "m.yaml, line 20" in str(info.value)


def test_the_allocation_name_avoids_a_node_of_the_same_name() -> None:
    loaded = load_model(_model(extra_nodes="  - {id: a_capped_pool, values: [1, 1, 1]}\n"))
    r = flowtime.evaluate(loaded.model)
    assert r["a_capped_pool"].tolist() == [1, 1, 1]
    assert r["a_capped_pool_1"].tolist() == [30, 20, 0]
    assert r["a_queue"].tolist() == [30, 50, 50]


def test_a_queue_node_reading_another_inflow_is_not_capped_and_says_so() -> None:
    text = _model(extra_nodes="  - {id: bq, kind: serviceWithBuffer, inflow: capacity, outflow: served}\n").replace(
        "semantics: {arrivals: demand_b, served: served}", "semantics: {arrivals: demand_b, served: served, "
        "queueDepth: bq}")
    loaded = load_model(text, "m.yaml")
    assert any("its queue 'bq' reads inflow 'capacity'" in w.message for w in loaded.warnings)
    assert flowtime.evaluate(loaded.model)["bq"].tolist() == [40, 80, 120]
