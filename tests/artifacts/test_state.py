"""RunState: a stored run opened for the state API - series, metrics, findings, windows, the cache."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from flowtime.artifacts import layout
from flowtime.artifacts.registry import Registry
from flowtime.artifacts.snapshot import graph, layers, snapshot
from flowtime.artifacts.state import StateCache, active_findings, open_state
from flowtime.artifacts.window import bucket_size, minmax, state_window, summary
from flowtime.artifacts.writer import write_run
from flowtime.engine import evaluate
from flowtime.errors import ConflictError, QueryError, RunNotFound
from flowtime.model.load import load_model
from flowtime.model.topology import Topology, TopologyEdge, TopologyNode

MODELS = Path(__file__).parent / "models"
TWO_STAGE = (MODELS / "two-stage.yaml").read_text()
HOUR_MS = 3_600_000.0


def store(root: Path, text: str) -> str:
    loaded = load_model(text)
    return write_run(loaded, evaluate(loaded.model), root).run_id


@pytest.fixture
def two_stage(tmp_path: Path) -> tuple[Registry, str]:
    return Registry(tmp_path), store(tmp_path, TWO_STAGE)


def test_a_run_opens_as_one_columnar_block_of_its_stored_series(two_stage: tuple[Registry, str]) -> None:
    registry, run_id = two_stage
    state = open_state(registry, run_id)
    assert state.values.shape == (len(state.ids), 4)
    assert not state.values.flags.writeable
    # served = MIN(arrivals, 20) = [10, 20, 20, 0]; the buffer Q = max(0, Q + served - 15) = [0, 5, 10, 0]
    assert state.series("served").tolist() == [10, 20, 20, 0]
    assert state.series("pack_queue").tolist() == [0, 5, 10, 0]
    assert state.model is not None and state.model_note is None
    assert list(state.metrics) == ["Intake", "Pack"]
    # the derived series the writer stores (intake_utilization, ...) are derived again, not read
    index = registry.series_index(run_id)["series"]
    assert any(e["id"].startswith("intake_utilization@") for e in index)
    assert "intake_utilization" not in state.ids and "Intake" not in state.ids


def test_a_snapshot_gives_the_inputs_and_the_derived_metrics_at_one_bin(two_stage: tuple[Registry, str]) -> None:
    registry, run_id = two_stage
    body = snapshot(open_state(registry, run_id), 2)
    intake, pack = body["nodes"]
    assert intake["metrics"]["arrivals"] == 30 and intake["metrics"]["served"] == 20
    assert intake["derived"]["utilization"] == 1.0  # 20 served / 20 capacity
    assert intake["color"] == "red"  # utilization >= 0.9
    assert pack["metrics"]["queue"] == 10
    # queue time = 10 queued / 15 served x 1 h = 2,400,000 ms; latency = 40 minutes
    assert pack["derived"]["queueTimeMs"] == pytest.approx(2_400_000.0)
    assert pack["derived"]["latencyMinutes"] == pytest.approx(40.0)
    assert body["edges"] == [{"id": "intake_to_pack", "from": "Intake", "to": "Pack", "flowVolume": 20.0,
                              "series": {"flowVolume": 20.0}}]
    # grid.start 2025-01-01T00:00Z: bin 2 spans 02:00 to 03:00
    assert body["bin"] == {"index": 2, "startUtc": "2025-01-01T02:00:00Z", "endUtc": "2025-01-01T03:00:00Z",
                           "durationMinutes": 60}


def test_a_bin_outside_the_run_is_a_query_error_naming_the_range(two_stage: tuple[Registry, str]) -> None:
    registry, run_id = two_stage
    state = open_state(registry, run_id)
    with pytest.raises(QueryError, match=r"bin=4 is outside .* bins are 0\.\.3") as info:
        snapshot(state, 4)
    assert info.value.parameter == "bin" and info.value.valid == "0..3"
    with pytest.raises(QueryError, match="bin=-1"):
        snapshot(state, -1)


def test_a_window_is_inclusive_and_checked(two_stage: tuple[Registry, str]) -> None:
    registry, run_id = two_stage
    state = open_state(registry, run_id)
    body = state_window(state, 1, 2)
    assert body["window"] == {"startBin": 1, "endBin": 2, "binCount": 2}
    assert body["downsampled"] is None
    assert body["timestampsUtc"] == ["2025-01-01T01:00:00Z", "2025-01-01T02:00:00Z"]
    intake = body["nodes"][0]
    assert intake["series"]["served"].tolist() == [20, 20]
    assert intake["series"]["utilization"].tolist() == [1.0, 1.0]
    assert body["edges"][0]["series"]["flowVolume"].tolist() == [20, 20]
    with pytest.raises(QueryError, match=r"end=4 is outside") as info:
        state_window(state, 0, 4)
    assert info.value.parameter == "end"
    with pytest.raises(QueryError, match=r"start=3 is after end=1") as info:
        state_window(state, 3, 1)
    assert info.value.parameter == "start"
    with pytest.raises(QueryError, match="no topology node Nope"):
        state_window(state, nodes=["Nope"])
    assert [n["id"] for n in state_window(state, nodes=["Pack"])["nodes"]] == ["Pack"]


def test_min_max_downsampling_keeps_each_buckets_extremes_in_time_order() -> None:
    block = np.array([[1.0, 5.0, 2.0, 0.0, 3.0, np.nan, np.nan]])
    values, at = minmax(block, 2)
    # buckets [1, 5] [2, 0] [3, nan] [nan]: min/max in the order they occur; an empty bucket gives nulls
    assert values[0, :6].tolist() == [1.0, 5.0, 2.0, 0.0, 3.0, 3.0]
    assert np.isnan(values[0, 6:]).all()
    assert at.tolist() == [0, 1, 2, 3, 4, 5, 6, 6]


def test_the_bucket_size_follows_the_points_and_values_caps() -> None:
    assert bucket_size(2000, 1, None) == 1  # 2,000 points per series fit
    assert bucket_size(2001, 1, None) == 3  # 1,000 buckets of 2 points: ceil(2001 / 1000)
    assert bucket_size(8760, 1000, None) == 18  # 1e6 values / 1,000 series = 1,000 points -> 500 buckets
    assert bucket_size(100, 3, 10) == 20  # max_points 10 -> 5 buckets


def test_a_long_run_is_downsampled_and_its_spike_survives(tmp_path: Path) -> None:
    bins = 10_000
    values = [1.0] * bins
    values[7_777] = 500.0  # one spike
    values[1_234] = -3.0  # one dip
    text = (MODELS / "long-template.yaml").read_text().replace("BINS", str(bins)).replace(
        "VALUES", json.dumps(values))
    registry = Registry(tmp_path)
    state = open_state(registry, store(tmp_path, text))
    body = state_window(state)
    assert body["window"]["binCount"] == bins
    down = body["downsampled"]
    assert down is not None and down["bucketBins"] == 10 and down["points"] == 2_000  # 2,000 points, 10 bins each
    arrivals = body["nodes"][0]["series"]["arrivals"]
    assert arrivals.max() == 500.0 and arrivals.min() == -3.0
    spike = int(np.argmax(arrivals))
    # its bucket is bins 7770..7779, min 1 (first) then the spike: the spike sits at the bucket's last bin
    assert body["bins"][spike] == 7_779 and body["bins"][spike - 1] == 7_770
    smaller = state_window(state, max_points=100)["nodes"][0]["series"]["arrivals"]
    assert smaller.size == 100 and smaller.max() == 500.0 and smaller.min() == -3.0


def test_the_summary_gives_stats_sla_and_totals(two_stage: tuple[Registry, str]) -> None:
    registry, run_id = two_stage
    body = summary(open_state(registry, run_id))
    intake = body["nodes"][0]
    # utilization [0.5, 1, 1, 0]: mean 0.625, max 1
    assert intake["utilization"]["mean"] == pytest.approx(0.625) and intake["utilization"]["max"] == 1.0
    assert intake["totals"] == {"arrivals": 60.0, "served": 50.0, "errors": None}
    # throughputRatio = served / arrivals = [1, 1, 2/3, undefined (no arrivals)]: 2 of 3 bins >= 0.95
    assert intake["sla"] == {"kind": "completion", "target": 0.95, "met": 2, "evaluated": 3,
                             "percent": pytest.approx(200 / 3)}
    sla = open_state(registry, run_id).metrics["Intake"].sla  # the whole run: the metrics' own summary
    assert sla is not None and (sla.met, sla.evaluated) == (2, 3)
    # the reference's services[]: no arrivals counts as met -> [1, 1, 2/3, 1]: 3 of 4
    service = body["services"][0]
    assert service["id"] == "Intake" and service["binsMet"] == 3 and service["binsTotal"] == 4
    assert service["mini"].tolist() == pytest.approx([1.0, 1.0, 2 / 3, 1.0])
    window = summary(open_state(registry, run_id), 1, 2)
    assert window["nodes"][0]["totals"]["arrivals"] == 50.0  # 20 + 30
    assert window["window"]["start"] == "2025-01-01T01:00:00Z"


def test_the_graph_lays_nodes_out_by_longest_path() -> None:
    nodes = tuple(TopologyNode(i, "service", semantics={}) for i in ("A", "B", "C", "D"))
    # A -> B -> C, A -> C, D -> B, and C -> A closing a cycle (not followed)
    edges = (TopologyEdge("A", "B"), TopologyEdge("B", "C"), TopologyEdge("A", "C"), TopologyEdge("D", "B"),
             TopologyEdge("C", "A"))
    assert layers(Topology(nodes, edges)) == {"A": (0, 0), "B": (1, 0), "C": (2, 0), "D": (0, 1)}


def test_the_graph_names_nodes_edges_and_in_full_mode_the_model_nodes(two_stage: tuple[Registry, str]) -> None:
    registry, run_id = two_stage
    state = open_state(registry, run_id)
    body = graph(state)
    assert [(n["id"], n["kind"], n["ui"]["layer"]) for n in body["nodes"]] == [
        ("Intake", "service", 0), ("Pack", "serviceWithBuffer", 1)]
    assert body["nodes"][0]["semantics"] == {"arrivals": "arrivals", "served": "served", "capacity": "capacity"}
    edge = body["edges"][0]
    assert (edge["id"], edge["from"], edge["to"], edge["edgeType"], edge["field"], edge["weight"], edge["lag"]) == (
        "intake_to_pack", "Intake", "Pack", "throughput", "served", 1.0, 0)
    assert edge["series"] == {"flowVolume": "edge_intake_to_pack_flowVolume"}
    full = {n["id"]: n for n in graph(state, full=True)["nodes"]}
    assert full["served"]["kind"] == "expr" and full["served"]["expression"] == "MIN(arrivals, capacity)"
    assert full["served"]["inputs"] == ["arrivals", "capacity"]


def test_a_run_without_topology_has_a_graph_but_no_state(tmp_path: Path) -> None:
    text = "schemaVersion: 1\ngrid: {bins: 2, binSize: 1, binUnit: hours}\nnodes:\n  - {id: a, values: [1, 2]}\n"
    registry = Registry(tmp_path)
    state = open_state(registry, store(tmp_path, text))
    assert [n["id"] for n in graph(state)["nodes"]] == ["a"]
    with pytest.raises(ConflictError, match="has no topology"):
        snapshot(state, 0)


def test_a_new_runs_findings_are_read_from_run_json(two_stage: tuple[Registry, str]) -> None:
    registry, run_id = two_stage
    state = open_state(registry, run_id)
    assert state.findings_source == "run.json"
    # Intake is a service without processingTimeMsSum / servedCount: two notes about the model, active at every bin
    warnings = snapshot(state, 3)["nodes"][0]["warnings"]
    assert [(w["code"], w["severity"], w["activity"]) for w in warnings] == [
        ("missing_processing_time_series", "info", "run"), ("missing_served_count_series", "info", "run")]


def test_an_old_run_without_findings_is_analysed_on_read(two_stage: tuple[Registry, str]) -> None:
    registry, run_id = two_stage
    run_json = registry.run_path(run_id) / layout.RUN_JSON
    run = json.loads(run_json.read_text())
    run["warnings"] = [w for w in run["warnings"] if not w.get("code")]
    run_json.write_text(json.dumps(run))
    state = open_state(registry, run_id)
    assert state.findings_source == "analysed"
    # Pack's arrivals [10, 20, 20, 0]: half means 15 and 10, a third apart (> 25 %): non_stationary
    assert [(f.node, f.code) for f in state.findings] == [
        ("Intake", "missing_processing_time_series"), ("Intake", "missing_served_count_series"),
        ("Pack", "non_stationary")]
    assert snapshot(state, 1)["nodes"][1]["derived"]["latencyMinutes"] == pytest.approx(20.0)  # 5 / 15 x 60


def test_stored_findings_are_read_and_active_at_their_bins(two_stage: tuple[Registry, str]) -> None:
    registry, run_id = two_stage
    run_json = registry.run_path(run_id) / layout.RUN_JSON
    run = json.loads(run_json.read_text())
    run["warnings"] = [
        # the reference's entry shape: code, message, nodeId, bins, value (no binCount: the bins are all of them)
        {"code": "served_exceeds_arrivals", "message": "served above arrivals", "nodeId": "Pack", "bins": [1],
         "value": 1.5, "severity": "warning"},
        {"code": "queue_depth_mismatch", "message": "q", "nodeId": "Pack", "bins": [0, 1, 2, 3], "binCount": 4},
        {"code": "edge_behavior_violation_lag", "message": "lag", "severity": "warning"},
        "a plain text warning of an old run",
    ]
    run_json.write_text(json.dumps(run))
    state = open_state(registry, run_id)
    assert state.findings_source == "run.json"
    assert [f.code for f in state.findings] == ["served_exceeds_arrivals", "queue_depth_mismatch",
                                                 "edge_behavior_violation_lag"]
    at1 = {f.code: how for f, how in active_findings(state, 1)}
    assert at1 == {"served_exceeds_arrivals": "bin", "queue_depth_mismatch": "bin",
                   "edge_behavior_violation_lag": "run"}
    node_warnings = snapshot(state, 1)["nodes"][1]["warnings"]
    assert [(w["code"], w["activity"]) for w in node_warnings] == [("served_exceeds_arrivals", "bin"),
                                                                    ("queue_depth_mismatch", "bin")]


def test_a_finding_with_unlisted_bins_may_be_active_after_the_listed_ones(tmp_path: Path) -> None:
    text = (MODELS / "long-template.yaml").read_text().replace("BINS", "20").replace("VALUES", str([1.0] * 20))
    registry = Registry(tmp_path)
    run_id = store(tmp_path, text)
    run_json = registry.run_path(run_id) / layout.RUN_JSON
    run = json.loads(run_json.read_text())
    run["warnings"] = [{"code": "served_negative", "message": "m", "nodeId": "Line", "bins": [2, 3, 5, 6, 8],
                        "binCount": 7}]
    run_json.write_text(json.dumps(run))
    state = open_state(registry, run_id)
    assert [how for _, how in active_findings(state, 3)] == ["bin"]
    assert active_findings(state, 4) == []  # between listed bins: known not to hold
    assert [how for _, how in active_findings(state, 12)] == ["unlisted"]
    assert active_findings(state, 1) == []


def test_a_file_series_is_served_from_the_runs_own_copy(tmp_path: Path) -> None:
    (tmp_path / "demand.csv").write_text("bin_index,value\n0,4\n1,8\n")
    text = ("schemaVersion: 1\ngrid: {bins: 2, binSize: 1, binUnit: hours}\nnodes:\n  - {id: cap, values: [8, 8]}\n"
            "topology:\n  nodes:\n    - {id: Desk, kind: service, semantics: {arrivals: 'file:demand.csv', "
            "served: 'file:demand.csv', capacity: cap}}\n")
    from flowtime.series_files import beside

    loaded = load_model(text, series_files=beside(tmp_path / "model.yaml"))
    root = tmp_path / "runs"
    run_id = write_run(loaded, evaluate(loaded.model), root).run_id
    (tmp_path / "demand.csv").unlink()  # the telemetry is gone; the run keeps its series
    state = open_state(Registry(root), run_id)
    assert state.model_note is None
    assert snapshot(state, 1)["nodes"][0]["derived"]["utilization"] == 1.0  # 8 / 8


def test_a_spec_that_no_longer_loads_keeps_the_stored_series(two_stage: tuple[Registry, str]) -> None:
    registry, run_id = two_stage
    (registry.run_path(run_id) / layout.SPEC).write_text("grid: [not, a, grid]\n")
    state = open_state(registry, run_id)
    assert state.model is None and state.model_note is not None and "could not be reloaded" in state.model_note
    assert state.series("served").tolist() == [10, 20, 20, 0]
    assert {n["kind"] for n in graph(state)["nodes"]} == {"series"}
    with pytest.raises(ConflictError, match="could not be reloaded"):
        snapshot(state, 0)


def test_the_cache_reads_a_run_once_and_forgets_the_least_recently_used(tmp_path: Path) -> None:
    registry = Registry(tmp_path)
    a, b = store(tmp_path, TWO_STAGE), store(tmp_path, TWO_STAGE.replace("Two stages", "Other"))
    one = open_state(registry, a).nbytes
    cache = StateCache(max_bytes=int(one * 1.5))  # room for one run
    assert cache.get(registry, a) is cache.get(registry, a)
    assert cache.loads == 1
    cache.get(registry, b)
    assert cache.ids() == [b] and cache.loads == 2
    cache.get(registry, a)
    assert cache.loads == 3
    registry.delete(a)
    with pytest.raises(RunNotFound):
        cache.get(registry, a)


def test_nan_stays_nan_in_the_columnar_block(tmp_path: Path) -> None:
    text = TWO_STAGE.replace("values: [20, 20, 20, 20]", "values: [20, 0, 20, 20]")
    registry = Registry(tmp_path)
    state = open_state(registry, store(tmp_path, text))
    # capacity 0 at bin 1: utilization undefined (null), colour gray
    node = snapshot(state, 1)["nodes"][0]
    assert math.isnan(node["derived"]["utilization"]) and node["color"] == "gray"


def test_the_metadata_names_the_template_from_the_manifest(tmp_path: Path) -> None:
    from flowtime.model.provenance import Provenance

    loaded = load_model(TWO_STAGE)
    prov = Provenance.model_validate({"modelId": "m-1", "templateId": "two-stage"})
    run_id = write_run(loaded, evaluate(loaded.model), tmp_path, provenance=prov).run_id
    meta = snapshot(open_state(Registry(tmp_path), run_id), 0)["metadata"]
    assert (meta["templateId"], meta["modelId"], meta["title"]) == ("two-stage", "m-1", "Two stages")
    assert meta["grid"]["startTimeUtc"] == "2025-01-01T00:00:00Z"


def test_requests_arriving_together_open_a_run_once(two_stage: tuple[Registry, str]) -> None:
    from concurrent.futures import ThreadPoolExecutor

    registry, run_id = two_stage
    cache = StateCache()
    with ThreadPoolExecutor(4) as pool:
        states = list(pool.map(lambda _: cache.get(registry, run_id), range(8)))
    assert cache.loads == 1 and all(s is states[0] for s in states)


def test_a_window_has_its_own_window_facts(two_stage: tuple[Registry, str]) -> None:
    registry, run_id = two_stage
    state = open_state(registry, run_id)
    codes = [(w["nodeId"], w["code"]) for w in state_window(state)["warnings"]]
    assert ("Pack", "non_stationary") in codes  # the whole run: 15 then 10
    # bins 1..2 alone: arrivals [20, 20], no change; the queue [5, 10] rises in 1 bin, not a 3-bin streak
    assert [w["code"] for w in state_window(state, 1, 2)["warnings"]] == [
        "missing_processing_time_series", "missing_served_count_series"]


def test_a_finding_on_an_edge_is_listed_under_edge_warnings(two_stage: tuple[Registry, str]) -> None:
    registry, run_id = two_stage
    run_json = registry.run_path(run_id) / layout.RUN_JSON
    run = json.loads(run_json.read_text())
    run["warnings"] = [{"code": "edge_flow_mismatch_incoming", "message": "m", "nodeId": "Pack",
                        "edgeIds": ["intake_to_pack"], "bins": [2], "binCount": 1, "severity": "warning"}]
    run_json.write_text(json.dumps(run))
    state = open_state(registry, run_id)
    assert [w["code"] for w in snapshot(state, 2)["edgeWarnings"]["intake_to_pack"]] == ["edge_flow_mismatch_incoming"]
    assert snapshot(state, 1)["edgeWarnings"] == {}
    assert list(state_window(state)["edgeWarnings"]) == ["intake_to_pack"]


def test_minmax_matches_a_plain_loop_with_nans_and_a_partial_bucket() -> None:
    rng = np.random.default_rng(3)
    block = rng.integers(0, 50, (6, 23)).astype(float)
    block[1, 4:9] = np.nan  # a whole bucket undefined (k = 4: bins 4..7) and part of the next
    block[2, ::3] = np.nan
    block[4, :] = np.nan
    values, at = minmax(block, 4)
    for r in range(6):
        want: list[float] = []
        for s in range(0, 23, 4):
            bucket = block[r, s:s + 4]
            ok = ~np.isnan(bucket)
            if not ok.any():
                want += [math.nan, math.nan]
                continue
            idx = np.flatnonzero(ok)
            lo, hi = idx[np.argmin(bucket[ok])], idx[np.argmax(bucket[ok])]
            want += [bucket[lo], bucket[hi]] if lo <= hi else [bucket[hi], bucket[lo]]
        assert np.array_equal(values[r], want, equal_nan=True), r
    assert at.tolist() == [0, 3, 4, 7, 8, 11, 12, 15, 16, 19, 20, 22]


def test_a_queue_with_sla_min_is_judged_by_latency(tmp_path: Path) -> None:
    text = TWO_STAGE.replace("semantics: {arrivals: served, served: pack_rate}",
                             "semantics: {arrivals: served, served: pack_rate, slaMin: 30}")
    state = open_state(Registry(tmp_path), store(tmp_path, text))
    # Pack's latency [0, 20, 40, 0] minutes against slaMin 30: bins 0, 1, 3 meet it
    pack = summary(state)["nodes"][1]
    assert pack["sla"] == {"kind": "backlogAge", "target": 30.0, "met": 3, "evaluated": 4, "percent": 75.0}
    assert summary(state, 1, 2)["nodes"][1]["sla"]["met"] == 1  # 20 meets, 40 does not
    at2 = snapshot(state, 2)["nodes"][1]
    # 40 > 30 but <= 1.5 x 30 = 45: yellow; the run's SLA as the metrics give it
    assert at2["color"] == "yellow" and at2["sla"] == {"kind": "backlogAge", "target": 30.0, "met": 3,
                                                      "evaluated": 4, "percent": 75.0, "scope": "run"}
