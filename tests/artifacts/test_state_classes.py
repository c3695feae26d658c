"""The state API's classes (byClass, classTruth, classIds), mode=full nodes and the edge filters."""

from __future__ import annotations

from pathlib import Path

import pytest

from flowtime.artifacts.registry import Registry
from flowtime.artifacts.snapshot import snapshot
from flowtime.artifacts.state import RunState, open_state
from flowtime.artifacts.window import state_window
from flowtime.artifacts.writer import write_run
from flowtime.engine import evaluate
from flowtime.errors import QueryError
from flowtime.model.load import load_model

MODELS = Path(__file__).parent / "models"
EXAMPLES = Path(__file__).parent.parent.parent / "examples"


def opened(root: Path, text: str) -> RunState:
    loaded = load_model(text)
    return open_state(Registry(root), write_run(loaded, evaluate(loaded.model), root).run_id)


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory) -> RunState:
    return opened(tmp_path_factory.mktemp("hub"), (EXAMPLES / "classes-router.yaml").read_text())


@pytest.fixture(scope="module")
def mix(tmp_path_factory: pytest.TempPathFactory) -> RunState:
    return opened(tmp_path_factory.mktemp("mix"), (MODELS / "class-mix.yaml").read_text())


def test_the_hub_shows_each_class_part_of_its_inputs(hub: RunState) -> None:
    body = snapshot(hub, 1)
    node = body["nodes"][0]
    assert node["id"] == "Hub"
    # hub_in = 10 Airport + 30 Downtown; hub_out = MIN(32, ...) keeps that mix: 8 + 24; the backlog
    # grows by 8 a bin (16 at bin 1) in the same mix: Airport 16 x 1/4 = 4, Downtown 16 x 3/4 = 12
    airport, downtown = node["byClass"]["Airport"], node["byClass"]["Downtown"]
    assert (airport["arrivals"], airport["served"], airport["queue"]) == (10.0, 8.0, 4.0)
    assert (downtown["arrivals"], downtown["served"], downtown["queue"]) == (30.0, 24.0, 12.0)
    # throughput 8/10 = 24/30 = 0.8; latency = class queue / class served x 60 min: 4/8 x 60 = 12/24 x 60 = 30
    assert airport["throughputRatio"] == pytest.approx(0.8) and downtown["throughputRatio"] == pytest.approx(0.8)
    assert airport["latencyMinutes"] == pytest.approx(30.0) and downtown["queueTimeMs"] == pytest.approx(1_800_000.0)
    assert list(node["byClass"]) == ["Airport", "Downtown"]  # declaration order
    assert node["classTruth"] == {"coverage": "full", "hasSpecificClasses": True, "hasFallbackClass": False}
    assert body["metadata"]["classCoverage"] == "full"
    assert body["metadata"]["classes"] == [{"id": "Airport", "displayName": "Airport express"},
                                           {"id": "Downtown", "displayName": "Downtown commuters"}]


def test_a_window_gives_each_class_series(hub: RunState) -> None:
    node = state_window(hub)["nodes"][0]
    # the README's parts: hub_queue Airport 2, 4, 6, 8 and Downtown 6, 12, 18, 24
    assert node["byClass"]["Airport"]["queue"].tolist() == [2.0, 4.0, 6.0, 8.0]
    assert node["byClass"]["Downtown"]["queue"].tolist() == [6.0, 12.0, 18.0, 24.0]
    # 2/8, 4/8, 6/8, 8/8 of an hour
    assert node["byClass"]["Airport"]["latencyMinutes"].tolist() == pytest.approx([15.0, 30.0, 45.0, 60.0])
    assert node["classTruth"]["coverage"] == "full"


def test_class_series_are_downsampled_with_the_rest(hub: RunState) -> None:
    body = state_window(hub, max_points=2)
    # 4 bins into one bucket: its min then its max, in time order
    assert body["downsampled"] == {"bucketBins": 4, "points": 2, "buckets": 1}
    assert body["nodes"][0]["byClass"]["Downtown"]["queue"].tolist() == [6.0, 24.0]
    assert body["nodes"][0]["series"]["queue"].tolist() == [8.0, 32.0]


def test_each_class_has_its_own_latency_and_throughput(mix: RunState) -> None:
    desk = snapshot(mix, 0)["nodes"][0]
    # backlog = demand (A 4, B 6); served = a_in + 0.5 b_in = A 4, B 3 (7 in all)
    a, b = desk["byClass"]["A"], desk["byClass"]["B"]
    assert (a["served"], b["served"]) == (4.0, 3.0)
    # A: 4 queued / 4 served = 1 h = 60 min; B: 6 / 3 = 2 h = 120 min; the node: 10 / 7 h = 85.714 min
    assert a["latencyMinutes"] == pytest.approx(60.0) and b["latencyMinutes"] == pytest.approx(120.0)
    assert desk["derived"]["latencyMinutes"] == pytest.approx(600.0 / 7.0)
    # A: 4/4 = 1; B: 3/6 = 0.5; the node: 7/10 = 0.7
    assert a["throughputRatio"] == pytest.approx(1.0) and b["throughputRatio"] == pytest.approx(0.5)
    assert desk["derived"]["throughputRatio"] == pytest.approx(0.7)


def test_class_truth_says_where_flow_is_in_no_class(mix: RunState) -> None:
    nodes = {n["id"]: n for n in snapshot(mix, 0)["nodes"]}
    # Mixed serves `fixed`, a const with no class: its served flow is in no class, so no class ratio either
    assert nodes["Mixed"]["classTruth"] == {"coverage": "partial", "hasSpecificClasses": True,
                                            "hasFallbackClass": True}
    assert nodes["Mixed"]["byClass"] == {"A": {"arrivals": 4.0}, "B": {"arrivals": 6.0}}
    # late = SHIFT(demand, 1) + 1: in bin 0 the 1 is in no class (both parts 0); from bin 1 the 11 splits
    # by demand's mix: A 11 x 4/10 = 4.4, B 11 x 6/10 = 6.6
    assert nodes["Late"]["classTruth"]["coverage"] == "partial"
    assert nodes["Late"]["byClass"]["A"]["arrivals"] == 0.0
    assert snapshot(mix, 1)["nodes"][2]["byClass"]["A"]["arrivals"] == pytest.approx(4.4)
    assert nodes["Plain"]["classTruth"] == {"coverage": "missing", "hasSpecificClasses": False,
                                            "hasFallbackClass": True}
    assert nodes["Plain"]["byClass"] == {}


def test_class_ids_choose_the_classes_and_an_unknown_one_is_named(hub: RunState) -> None:
    node = snapshot(hub, 0, class_ids=["Downtown"])["nodes"][0]
    assert list(node["byClass"]) == ["Downtown"] and node["byClass"]["Downtown"]["queue"] == 6.0
    window = state_window(hub, class_ids=["Airport"])["nodes"][0]
    assert list(window["byClass"]) == ["Airport"]
    with pytest.raises(QueryError, match="no class Nowhere; its classes are Airport, Downtown") as info:
        state_window(hub, class_ids=["Airport", "Nowhere"])
    assert info.value.parameter == "classIds" and info.value.valid == "Airport, Downtown"


def test_a_run_without_classes(tmp_path: Path) -> None:
    state = opened(tmp_path, (MODELS / "two-stage.yaml").read_text())
    body = snapshot(state, 0)
    assert body["metadata"]["classCoverage"] == "missing" and body["metadata"]["classes"] == []
    assert body["nodes"][0]["byClass"] == {} and body["nodes"][0]["classTruth"]["coverage"] == "missing"
    with pytest.raises(QueryError, match="the run has no classes"):
        snapshot(state, 0, class_ids=["A"])


def test_full_mode_adds_the_computed_nodes_with_their_values(hub: RunState) -> None:
    operational = snapshot(hub, 2)
    assert [n["id"] for n in operational["nodes"]] == ["Hub"] and operational["mode"] == "operational"
    full = snapshot(hub, 2, full=True)
    nodes = {n["id"]: n for n in full["nodes"]}
    assert full["mode"] == "full"
    # the model's nine nodes, none of the hidden class parts (hub_in#part0, hub_in#class#Airport, ...)
    assert list(nodes) == ["Hub", "airport_riders", "downtown_riders", "hub_in", "hub_capacity", "hub_out",
                           "HubRouter", "airport_line", "downtown_line", "hub_queue"]
    assert (nodes["hub_in"]["kind"], nodes["hub_in"]["category"]) == ("expr", "expression")
    assert nodes["hub_capacity"]["category"] == "constant"
    # bin 2: 10 + 30 = 40 in; backlog 8 x 3 = 24 (Airport 6)
    assert nodes["hub_in"]["metrics"] == {"values": 40.0}
    assert nodes["hub_queue"]["byClass"]["Airport"] == {"values": 6.0}
    assert nodes["hub_capacity"]["byClass"] == {}
    window = state_window(hub, full=True, nodes=["hub_queue"])
    assert [n["id"] for n in window["nodes"]] == ["hub_queue"]
    assert window["nodes"][0]["series"]["values"].tolist() == [8.0, 16.0, 24.0, 32.0]
    assert window["nodes"][0]["byClass"]["Downtown"]["values"].tolist() == [6.0, 12.0, 18.0, 24.0]
    whole = state_window(hub, full=True)
    assert len(whole["nodes"]) == 10 and whole["nodes"][0]["byClass"]["Airport"]["served"].tolist() == [8.0] * 4
    with pytest.raises(QueryError, match="no topology node hub_queue") as info:
        state_window(hub, nodes=["hub_queue"])  # operational: the topology's nodes only
    assert info.value.parameter == "nodes"


def test_edge_ids_and_edge_metrics_choose_the_edges(tmp_path: Path) -> None:
    state = opened(tmp_path, (MODELS / "two-stage.yaml").read_text())
    body = state_window(state, edge_ids=["intake_to_pack"], edge_metrics=["flowVolume"])
    # Intake serves MIN(arrivals, 20) = 10, 20, 20, 0 into Pack
    assert [(e["id"], list(e["series"])) for e in body["edges"]] == [("intake_to_pack", ["flowVolume"])]
    assert body["edges"][0]["series"]["flowVolume"].tolist() == [10.0, 20.0, 20.0, 0.0]
    # a series the edge does not have is simply absent
    assert state_window(state, edge_metrics=["retryVolume"])["edges"][0]["series"] == {}
    with pytest.raises(QueryError, match="no edge nowhere") as info:
        state_window(state, edge_ids=["nowhere"])
    assert info.value.parameter == "edgeIds" and info.value.valid == "intake_to_pack"
    with pytest.raises(QueryError, match="retryRate is not an edge series") as info:
        state_window(state, edge_metrics=["retryRate"])
    assert info.value.parameter == "edgeMetrics"
