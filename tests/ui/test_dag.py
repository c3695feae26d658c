"""The DAG drawing: layers, ordering, lagged edges, escaping."""

from __future__ import annotations

from flowtime.ui.dag import layout, render_svg

GRAPH = {
    "nodes": [
        {"id": "demand", "kind": "const", "inputs": []},
        {"id": "capacity", "kind": "const", "inputs": []},
        {"id": "served", "kind": "expr", "inputs": ["demand", "capacity"], "expr": "MIN(demand, capacity)"},
        {"id": "backlog", "kind": "expr", "inputs": ["demand", "served", "backlog"],
         "expr": "MAX(0, SHIFT(backlog, 1) + demand - served)"},
    ],
    "edges": [
        {"from": "demand", "to": "served", "lag": 0}, {"from": "capacity", "to": "served", "lag": 0},
        {"from": "demand", "to": "backlog", "lag": 0}, {"from": "served", "to": "backlog", "lag": 0},
        {"from": "backlog", "to": "backlog", "lag": 1},
    ],
    "order": ["demand", "capacity", "served", "backlog"],
}


def test_layers_follow_the_longest_path_from_the_inputs() -> None:
    assert layout(GRAPH).layers == [["demand", "capacity"], ["served"], ["backlog"]]


def test_a_lagged_self_reference_does_not_push_a_node_down() -> None:
    lay = layout(GRAPH)
    assert ("backlog", "backlog", 1) in lay.edges


def test_the_reference_edge_shape_is_understood_too() -> None:
    ref = {"nodes": ["a", "b"], "order": ["a", "b"], "edges": [{"id": "a", "inputs": []}, {"id": "b", "inputs": ["a"]}]}
    assert layout(ref).layers == [["a"], ["b"]]


def test_svg_has_a_box_per_node_an_arrow_per_edge_and_dashed_lagged_edges() -> None:
    svg = render_svg(GRAPH)
    assert svg.count('class="dag-node') == 4
    assert svg.count('class="dag-edge') == 5
    assert svg.count("dag-edge lagged") == 1
    assert "<title>backlog = MAX(0, SHIFT(backlog, 1) + demand - served)</title>" in svg


def test_ids_and_expressions_are_escaped() -> None:
    svg = render_svg({"nodes": [{"id": "a<b", "kind": "expr", "inputs": [], "expr": "1 < 2 & 3"}], "order": ["a<b"]})
    assert "a&lt;b" in svg and "1 &lt; 2 &amp; 3" in svg and "a<b" not in svg


def test_an_empty_graph_says_so() -> None:
    assert "no nodes" in render_svg({"nodes": [], "order": []})


def test_hidden_series_are_not_drawn_and_edges_through_them_join_the_nodes_they_stand_for() -> None:
    from pathlib import Path

    from flowtime.model.load import load_model

    text = (Path(__file__).resolve().parents[2] / "examples" / "classes-router.yaml").read_text()
    graph = load_model(text).graph.describe()
    assert any("#" in n["id"] for n in graph["nodes"])  # class parts, a queue's hidden series ...
    lay = layout(graph)
    drawn = {n for layer in lay.layers for n in layer}
    assert drawn == {"airport_riders", "downtown_riders", "hub_capacity", "hub_in", "hub_out", "hub_queue",
                     "HubRouter", "airport_line", "downtown_line"}
    edges = set(lay.edges)
    # the routed lines read hub_out's class parts: drawn as hub_out -> line, nothing else
    assert {e for e in edges if e[1] == "airport_line"} == {("hub_out", "airport_line", 0)}
    # the queue's own hidden loop is its SHIFT of itself (the loop through class parts ends)
    assert ("hub_queue", "hub_queue", 1) in edges and ("hub_queue", "hub_out", 1) in edges
