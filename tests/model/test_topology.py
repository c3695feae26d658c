"""
The topology section: references, synthesis and naming, located problems, and
queues that work through every path of the plan (set=, evaluate_many, compiled loops).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import flowtime
from flowtime.errors import ModelValidationError
from flowtime.model.load import load_model
from flowtime.model.synthesis import snake_case
from flowtime.model.topology import parse_ref

HEAD = "schemaVersion: 1\ngrid: {bins: 4, binSize: 1, binUnit: hours}\n"
INPUTS = ("nodes:\n  - {id: arrivals, values: [10, 10, 10, 10]}\n  - {id: served, values: [3, 3, 3, 3]}\n")


def _queue(extra: str = "", node_id: str = "Queue", kind: str = "serviceWithBuffer", more_nodes: str = "") -> str:
    return (HEAD + INPUTS + more_nodes + "topology:\n  nodes:\n"
            f"    - id: {node_id}\n      kind: {kind}\n      semantics: {{arrivals: arrivals, served: served}}\n"
            + extra)


@pytest.mark.parametrize(("text", "form", "node", "class_id"), [
    ("served", "node", "served", None),
    ("series:served", "series", "served", None),
    ("served@VIP", "class", "served", "VIP"),
    ("self", "self", "", None),
    ("file:data/arrivals.csv", "file", "", None),
])
def test_every_reference_form_is_read(text: str, form: str, node: str, class_id: str | None) -> None:
    ref = parse_ref(text)
    assert ref is not None
    assert (ref.form, ref.node, ref.class_id) == (form, node, class_id)


def test_snake_case_follows_the_reference_compiler() -> None:
    assert [snake_case(x) for x in ("HubQueue", "DLQ", "HTTPService", "hub_queue", "Hub Queue")] == [
        "hub_queue", "d_l_q", "h_t_t_p_service", "hub_queue", "hub_queue"]


def test_a_synthesized_queue_is_named_after_the_node_and_written_back() -> None:
    model = load_model(_queue(node_id="HubQueue")).model
    assert "hub_queue_queue" in model.node_ids
    assert model.topology.node("HubQueue").ref("queueDepth").node == "hub_queue_queue"


def test_a_taken_queue_name_gets_a_suffix() -> None:
    more = "  - {id: queue_queue, values: 1}\n  - {id: Queue_Queue_1, values: 2}\n"
    model = load_model(_queue(more_nodes=more)).model
    assert model.topology.node("Queue").ref("queueDepth").node == "queue_queue_2"  # names compared ignoring case
    assert flowtime.evaluate(model)["queue_queue_2"].tolist() == [7, 14, 21, 28]


def test_queue_depth_self_and_a_new_name_are_synthesized_and_a_node_is_used_as_it_is() -> None:
    assert "queue_queue" in load_model(_queue().replace("served: served}", "served: served, queueDepth: self}")
                                       ).model.node_ids
    named = load_model(_queue().replace("served: served}", "served: served, queueDepth: depth}")).model
    assert flowtime.evaluate(named)["depth"].tolist() == [7, 14, 21, 28]
    existing = _queue(more_nodes="  - {id: depth, values: 1}\n").replace("served: served}",
                                                                         "served: served, queueDepth: depth}")
    model = load_model(existing).model
    assert flowtime.evaluate(model)["depth"].tolist() == [1, 1, 1, 1]
    assert "queue_queue" not in model.node_ids


def test_only_queue_like_kinds_get_a_queue() -> None:
    assert load_model(_queue(kind="dlq")).model.node_ids[-1] == "queue_queue"
    assert load_model(_queue(kind="Queue")).model.node_ids[-1] == "queue_queue"  # kinds ignore case
    assert "queue_queue" not in load_model(_queue(kind="service")).model.node_ids


def test_a_limit_on_a_service_without_a_queue_is_a_warning() -> None:
    warnings = [str(w) for w in load_model(_queue("      wipLimit: 5\n", kind="router")).warnings]
    assert len(warnings) == 1
    assert "line 11" in warnings[0]
    assert "wipLimit is not applied because it is a router node" in warnings[0]


def test_every_unknown_key_is_a_located_warning() -> None:
    text = _queue("      colour: red\n").replace("semantics: {arrivals: arrivals, served: served}",
                                                 "semantics: {arrivals: arrivals, served: served, sevred: x}")
    text += "  edges:\n    - {from: 'Queue:out', to: Queue, colour: blue}\n  layout: {}\n"
    warnings = sorted(str(w) for w in load_model(text).warnings)
    assert len(warnings) == 4, warnings
    assert any("line 10" in w and "'sevred'" in w and "did you mean `served`" in w for w in warnings)
    assert any("line 11" in w and "field 'colour'" in w for w in warnings)
    assert any("line 13" in w and "edge field 'colour'" in w for w in warnings)
    assert any("line 14" in w and "unknown topology key 'layout'" in w for w in warnings)


def test_edges_and_constraints_are_read_and_checked() -> None:
    text = _queue("      constraints: [shared]\n") + (
        "  edges:\n    - {id: e1, from: 'Queue:out', to: 'Queue:in', weight: 2, type: Throughput, measure: served}\n"
        "  constraints:\n    - {id: shared, semantics: {arrivals: arrivals, served: served}}\n")
    loaded = load_model(text)
    edge = loaded.model.topology.edges[0]
    assert (edge.id, edge.source, edge.source_port, edge.target_port, edge.weight, edge.type) == (
        "e1", "Queue", "out", "in", 2.0, "throughput")
    assert loaded.warnings == []
    assert "queue_capped_shared" in loaded.model.node_ids  # shared capacity is applied (test_constraints.py)
    bad = _queue("      constraints: [shard]\n") + "  edges:\n    - {from: Queu, to: Queue, lag: -1}\n"
    with pytest.raises(ModelValidationError) as info:
        load_model(bad, "m.yaml")
    text = str(info.value)
    assert "unknown constraint the text 'shard'" in text
    assert "edge from names unknown topology node 'Queu' (did you mean `Queue`?)" in text
    assert "edge lag must be a whole number >= 0" in text


@pytest.mark.parametrize(("ref", "message"), [
    ("file:arrivals.csv", "semantics.served `file:arrivals.csv`: `file:` series need a model file to resolve "
                          "against"),
    ("arrivals@VIP", "per-class references (arrivals@VIP) are not supported yet"),
    ("retry", "served names unknown node 'retry'"),
])
def test_references_that_cannot_be_computed_are_located_errors(ref: str, message: str) -> None:
    text = _queue().replace("served: served}", f"served: '{ref}'}}")
    with pytest.raises(ModelValidationError) as info:
        load_model(text, "m.yaml")
    assert message in str(info.value)
    assert "m.yaml, line 10" in str(info.value)
    assert "topology.nodes.Queue.semantics.served" in str(info.value)


def test_a_missing_kind_is_an_error_because_the_reference_engines_disagree() -> None:
    with pytest.raises(ModelValidationError, match="topology node 'Queue' needs `kind`"):
        load_model(_queue().replace("      kind: serviceWithBuffer\n", ""))


def test_companion_series_are_written_and_internal_ones_are_not() -> None:
    text = _queue("      initialCondition: {queueDepth: 4}\n      dispatchSchedule: {periodBins: 2}\n"
                  "      wipLimit: 9\n")
    results = flowtime.evaluate(load_model(text).model)
    assert results.output_ids == ["arrivals", "served", "queue_wip_limit", "queue_gated_outflow", "queue_queue",
                                  "queue_overflow"]
    assert results["queue_queue#seed"].tolist() == [4, 0, 0, 0]
    # 4+10-3 = 11 -> 9 (2 over); 9+10 = 19 -> 9 (10); 9+10-3 = 16 -> 9 (7); 19 -> 9 (10)
    assert results["queue_queue"].tolist() == [9, 9, 9, 9]
    assert results["queue_overflow"].tolist() == [2, 10, 7, 10]
    with pytest.raises(ModelValidationError, match="unknown node 'queue_queue#seed'"):
        load_model(text + "outputs: [{series: 'queue_queue#seed'}]\n")


def test_a_wip_limit_const_can_be_set_and_scenarios_equal_separate_evaluations() -> None:
    model = load_model(_queue("      wipLimit: 20\n      wipOverflow: loss\n")).model
    p = flowtime.plan(model)
    assert p.evaluate()["queue_queue"].tolist() == [7, 14, 20, 20]
    assert p.evaluate(set={"queue_wip_limit": 10})["queue_overflow"].tolist() == [0, 4, 7, 7]
    many = p.evaluate_many(sets=[{"queue_wip_limit": 10}, {"arrivals": [0, 5, 0, 5]}])
    for k, given in enumerate([{"queue_wip_limit": 10}, {"arrivals": [0, 5, 0, 5]}]):
        alone = p.evaluate(set=given)
        for name in ("queue_queue", "queue_overflow"):
            assert np.array_equal(many[name][k], alone[name])


def test_compiled_and_python_loops_give_the_same_queue_bits() -> None:
    text = (HEAD.replace("bins: 4", "bins: 300") + "nodes:\n  - {id: x, values: 0.7}\n"
            "  - {id: arrivals, kind: expr, expr: 'x * 13.1 + SQRT(x - 0.6)'}\n"
            "  - {id: served, kind: expr, expr: 'x * 12.3'}\n"
            "topology:\n  nodes:\n    - id: Q\n      kind: serviceWithBuffer\n"
            "      semantics: {arrivals: arrivals, served: served}\n      wipLimit: 50.5\n"
            "      dispatchSchedule: {periodBins: 3, phaseOffset: 1}\n")
    model = load_model(text).model
    python = flowtime.plan(model, jit=False).evaluate()
    compiled = flowtime.plan(model, jit=True).evaluate()
    for name in ("q_queue", "q_overflow", "q_gated_outflow"):
        assert python[name].tobytes() == compiled[name].tobytes()
    assert python["q_queue"].max() == 50.5


def test_an_explicit_queue_node_reads_unknown_inputs_as_a_located_error() -> None:
    text = HEAD + INPUTS + "  - {id: buffer, kind: serviceWithBuffer, inflow: arrivals, outflow: servd}\n"
    with pytest.raises(ModelValidationError) as info:
        load_model(text, "m.yaml")
    assert "m.yaml, line 6, column 5, nodes.buffer: queue 'buffer' reads unknown node 'servd'" in str(info.value)
    with pytest.raises(ModelValidationError, match="needs `inflow` and `outflow`"):
        load_model(HEAD + INPUTS + "  - {id: buffer, kind: serviceWithBuffer, inflow: arrivals}\n")


def test_a_self_shift_outside_the_topology_stays_allowed() -> None:
    text = _queue(more_nodes="  - {id: total, kind: expr, expr: 'SHIFT(total, 1) + arrivals'}\n")
    assert flowtime.evaluate(load_model(text).model)["total"].tolist() == [10, 20, 30, 40]


def test_an_initial_depth_an_expression_does_not_use_is_a_warning() -> None:
    text = _queue("      initialCondition: {queueDepth: 5}\n",
                  more_nodes="  - {id: depth, kind: expr, expr: 'SHIFT(depth, 1) + arrivals'}\n").replace(
        "served: served}", "served: served, queueDepth: depth}")
    warnings = [str(w) for w in load_model(text).warnings]
    assert len(warnings) == 1
    assert "initialCondition.queueDepth 5 of topology node 'Queue' is not added to it" in warnings[0]


def test_a_queue_depth_of_a_service_must_name_a_node() -> None:
    text = _queue(kind="service").replace("served: served}", "served: served, queueDepth: depth}")
    with pytest.raises(ModelValidationError, match="queueDepth names unknown node 'depth'"):
        load_model(text)


def test_nodes_flowtime_made_for_itself_are_not_shown_in_a_run(tmp_path: Path) -> None:
    import json

    from flowtime.artifacts.writer import write_run
    from flowtime.engine import plan

    text = (Path(__file__).parents[1] / "cases" / "topology_dispatch" / "model.yaml").read_text()
    loaded = load_model(text)
    results = plan(loaded.model).evaluate()
    assert any("#" in n for n in results.order)  # the gate is a node of the plan...
    assert results.shown == [n for n in results.order if "#" not in n] and "queue_queue" in results.shown
    run = json.loads((write_run(loaded, results, tmp_path).path / "run.json").read_text())
    assert run["order"] == results.shown  # ...but not of what a run shows



@pytest.mark.parametrize(("period", "phase", "released"), [
    ("1.0e+30", "0", [1, 0, 0, 0]),
    ("1000000000000000000000000000000", "1000000000000000000000000000003", [0, 0, 0, 1]),
    ("3", "1000000000000000000000000000000", [0, 1, 0, 0]), ("4", "0", [1, 0, 0, 0]), ("2", "1", [0, 1, 0, 1])])
def test_a_dispatch_period_or_phase_past_the_grid_releases_as_written(
        period: str, phase: str, released: list[int]) -> None:
    # 10**30 % 3 == 1, so that phase is bin 1; a period longer than the grid releases once, at the phase
    model = load_model(_queue(f"      dispatchSchedule: {{periodBins: {period}, phaseOffset: {phase}}}\n")).model
    gated = flowtime.evaluate(model)["queue_gated_outflow"]
    assert (gated > 0).astype(int).tolist() == released
