"""Sinks (``model/sinks.py``): no queue, served completed as the reference's Sim does, located problems."""

from __future__ import annotations

import pytest

import flowtime
from flowtime.errors import ModelValidationError
from flowtime.model.load import load_model

HEAD = "schemaVersion: 1\ngrid: {bins: 3, binSize: 1, binUnit: hours}\n"
INPUTS = "nodes:\n  - {id: arrivals, values: [5, 3, 1]}\n  - {id: errors, values: [1, 4, 1]}\n"


def _sink(semantics: str, extra: str = "", kind: str = "sink", more_nodes: str = "") -> str:
    return (HEAD + INPUTS + more_nodes + "topology:\n  nodes:\n"
            f"    - id: CityCenter\n      kind: {kind}\n      semantics: {{{semantics}}}\n" + extra)


def test_the_served_series_is_written_back_into_the_topology() -> None:
    loaded = load_model(_sink("arrivals: arrivals, errors: errors"))
    node = loaded.model.topology.node("CityCenter")
    assert node.ref("served").node == "city_center_served"
    assert flowtime.evaluate(loaded.model).series["city_center_served"].tolist() == [4.0, 0.0, 0.0]


def test_a_sink_without_served_or_errors_serves_its_arrivals() -> None:
    loaded = load_model(_sink("arrivals: series:arrivals"))
    assert loaded.model.topology.node("CityCenter").ref("served").text == "series:arrivals"
    assert loaded.warnings == []
    assert flowtime.evaluate(loaded.model).output_ids == ["arrivals", "errors"]


def test_self_is_the_same_series_as_the_topology_node_id() -> None:
    more = "  - {id: CityCenter, values: [1, 1, 1]}\n"
    loaded = load_model(_sink("arrivals: CityCenter, served: self", more_nodes=more))
    assert loaded.warnings == []


def test_served_and_errors_together_are_taken_as_given() -> None:
    loaded = load_model(_sink("arrivals: arrivals, served: errors, errors: errors"))
    assert loaded.model.topology.node("CityCenter").ref("served").node == "errors"
    assert "city_center_served" not in flowtime.evaluate(loaded.model).series


def test_a_queue_kind_with_the_sink_role_computes_no_queue_and_says_why_its_limit_is_unused() -> None:
    loaded = load_model(_sink("arrivals: arrivals", "      nodeRole: Sink\n      wipLimit: 3\n",
                              kind="serviceWithBuffer"), "m.yaml")
    assert [w.message for w in loaded.warnings] == [
        "topology node 'CityCenter': wipLimit is not applied because it is a sink (FlowTime computes no queue for "
        "a sink)"]
    assert "city_center_queue" not in flowtime.evaluate(loaded.model).series


def test_a_served_name_that_is_already_a_node_is_a_located_error() -> None:
    more = "  - {id: city_center_served, values: [0, 0, 0]}\n"
    with pytest.raises(ModelValidationError) as info:
        load_model(_sink("arrivals: arrivals, errors: errors", more_nodes=more), "m.yaml")
    assert "topology.nodes.CityCenter" in str(info.value)
    assert ("the series 'city_center_served' FlowTime adds as the served series of sink 'CityCenter' is already "
            "a node") in str(info.value)


def test_an_unknown_errors_series_is_reported_once() -> None:
    with pytest.raises(ModelValidationError) as info:
        load_model(_sink("arrivals: arrivals, errors: errs"), "m.yaml")
    assert str(info.value).startswith("1 error in m.yaml:")
    assert "errors names unknown node 'errs'" in str(info.value)
