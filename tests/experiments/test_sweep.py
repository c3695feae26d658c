"""Sweeps: equal to separate runs bit for bit, grids, Latin hypercubes, topology and router targets, the cap."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import flowtime
from flowtime.errors import ExperimentError
from flowtime.experiments.runner import run_experiment

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
BACKLOG = (EXAMPLES / "backlog-queue.yaml").read_text(encoding="utf-8")
PACKING = (EXAMPLES / "service-queue.yaml").read_text(encoding="utf-8")

ROUTED = """\
schemaVersion: 1
grid: {bins: 3, binSize: 1, binUnit: hours}
nodes:
  - {id: inflow, kind: const, values: [10, 20, 40]}
  - id: Split
    kind: router
    inputs: {queue: inflow}
    routes:
      - {target: left, weight: 1}
      - {target: right, weight: 3}
  - {id: left, kind: expr, expr: "0"}
  - {id: right, kind: expr, expr: "0"}
"""


def test_a_sweep_equals_separate_runs_bit_for_bit() -> None:
    spec = {"kind": "sweep", "seed": 3,
            "parameters": [{"target": "capacity", "values": [10, 12.5, 15]},
                           {"target": "arrivals", "range": {"low": 0.5, "high": 1.5, "steps": 3}, "mode": "scale"}],
            "metrics": [{"series": "backlog", "aggregate": "max"}], "capture": ["backlog", "served"]}
    r = run_experiment(spec, BACKLOG)
    model = flowtime.load_model(BACKLOG)
    base = model.node("arrivals").values
    assert r.n == 9
    for k, (cap, factor) in enumerate(r.points.tolist()):
        one = flowtime.evaluate(model, 3, set={"capacity": cap, "arrivals": (base * factor).tolist()})
        for name in ("backlog", "served"):
            assert r.series[name][k].tobytes() == one[name].tobytes()
        assert r.metrics[k, 0] == one["backlog"].max()


def test_a_grid_of_two_parameters_varies_the_first_slowest() -> None:
    r = flowtime.sweep(BACKLOG, [{"target": "capacity", "values": [10, 20]},
                                 {"target": "arrivals", "values": [1, 2, 3], "name": "a"}],
                       {"series": "served", "aggregate": "sum"})
    assert r.table[["capacity", "a"]].values.tolist() == [[10, 1], [10, 2], [10, 3], [20, 1], [20, 2], [20, 3]]
    # arrivals a in every bin, capacity >= a: everything is served at once, sum = 8 bins x a
    assert r.table["sum(served)"].tolist() == [8.0, 16.0, 24.0, 8.0, 16.0, 24.0]


def test_a_latin_hypercube_is_reproducible_from_its_seed() -> None:
    spec = {"kind": "sweep", "seed": 11, "settings": {"method": "lhs", "points": 20},
            "parameters": [{"target": "capacity", "range": {"low": 5, "high": 25}},
                           {"target": "arrivals", "values": [1, 2, 4, 8]}],
            "metrics": [{"series": "backlog"}]}
    a, b = run_experiment(spec, BACKLOG), run_experiment(spec, BACKLOG)
    other = run_experiment({**spec, "seed": 12}, BACKLOG)
    assert a.points.tobytes() == b.points.tobytes() and a.metrics.tobytes() == b.metrics.tobytes()
    assert a.points.tobytes() != other.points.tobytes()
    # a Latin hypercube: each of the 20 equal strata of the range holds exactly one point
    strata = np.floor((a.points[:, 0] - 5) / 20 * 20).astype(int)
    assert sorted(strata.tolist()) == list(range(20))
    # each of the 4 values is taken by 20 / 4 = 5 points
    assert sorted(np.unique(a.points[:, 1], return_counts=True)[1].tolist()) == [5, 5, 5, 5]


def test_scale_mode_keeps_the_profile_shape() -> None:
    r = flowtime.sweep(BACKLOG, [{"target": "arrivals", "values": [2], "mode": "scale"}],
                       {"series": "arrivals", "aggregate": "sum"}, capture=["arrivals"])
    # the profile [12, 18, 25, 20, 8, 4, 2, 0] doubled, not flattened to 2 in every bin
    assert r.series["arrivals"][0].tolist() == [24, 36, 50, 40, 16, 8, 4, 0]
    assert r.metrics[0, 0] == 178.0  # 2 x 89


def test_a_wip_limit_target_changes_the_overflow_as_computed_by_hand() -> None:
    # orders [20, 20, 20, 5, 0, 0], 25 packed in waves at bins 1, 3, 5; depth = MIN(raw, limit):
    # limit 30: raw 20, 15, 35 (overflow 5), 10, 10, 0 -> total overflow 5
    # limit 20: raw 20, 15, 35 (overflow 15), then 20 + 5 - 25 = 0 -> 15
    # limit 10: raw 20 (overflow 10), 10 + 20 - 25 = 5, 25 (overflow 15), 0 -> 25
    r = flowtime.sweep(PACKING, [{"target": "topology.Packing.wipLimit", "values": [30, 20, 10]}],
                       {"series": "packing_overflow", "aggregate": "sum"})
    assert r.metrics[:, 0].tolist() == [5.0, 15.0, 25.0]


def test_an_initial_depth_is_a_model_edit_when_the_queue_starts_empty() -> None:
    # initial depth 10, limit 30: raw 0 + 10 + 20 = 30, 30 + 20 - 25 = 25, 45 (overflow 15), 30 + 5 - 25 = 10, 10, 0
    r = flowtime.sweep(PACKING, [{"target": "topology.Packing.initialDepth", "values": [0, 10]}],
                       {"series": "packing_overflow", "aggregate": "sum"}, capture=["packing_queue"])
    assert r.metrics[:, 0].tolist() == [5.0, 15.0]
    assert r.series["packing_queue"][1].tolist() == [30, 25, 30, 10, 10, 0]


def test_a_derived_metric_is_computed_per_point() -> None:
    # latency = queue / served x 60 min with served = 25 per bin; queue at limit 30: 20, 15, 30, 10, 10, 0
    # -> 48, 36, 72, 24, 24, 0 minutes, mean 204 / 6 = 34
    r = flowtime.sweep(PACKING, [{"target": "topology.Packing.wipLimit", "values": [30]}],
                       {"series": "packing_latency_min", "aggregate": "mean"})
    assert r.metrics[0, 0] == pytest.approx(34.0)


def test_router_weights_are_model_edits_equal_to_editing_the_yaml() -> None:
    # weights 1 : w of inflow [10, 20, 40]; w = 3: right gets 3/4 -> 7.5, 15, 30; w = 1: half -> 5, 10, 20
    r = flowtime.sweep(ROUTED, [{"target": "router.Split.right", "values": [3, 1]}],
                       {"series": "right", "aggregate": "sum"}, capture=["right"])
    assert r.series["right"].tolist() == [[7.5, 15, 30], [5, 10, 20]]
    edited = flowtime.evaluate(flowtime.load_model(ROUTED.replace("weight: 3", "weight: 1")))
    assert r.series["right"][1].tobytes() == edited["right"].tobytes()


def test_targets_that_cannot_vary_are_located_with_a_suggestion() -> None:
    with pytest.raises(ExperimentError) as got:
        flowtime.sweep(BACKLOG, [{"target": "capacty", "values": [1]}, {"target": "served", "values": [1]},
                                 {"target": "topology.X.capacity", "values": [1]}],
                       {"series": "backlog"})
    problems = {p.path: p.message for p in got.value.problems}
    assert set(problems) == {"parameters[0].target", "parameters[1].target", "parameters[2].target"}
    assert "capacity" in problems["parameters[0].target"]  # did you mean
    assert "expr node" in problems["parameters[1].target"]
    with pytest.raises(ExperimentError) as got:
        flowtime.sweep(ROUTED, [{"target": "router.Split.rihgt", "values": [1]}], {"series": "right"})
    assert "right" in got.value.problems[0].message


def test_a_grid_over_the_cap_is_an_error_naming_the_cap() -> None:
    with pytest.raises(ExperimentError) as got:
        flowtime.sweep(BACKLOG, [{"target": "capacity", "range": {"low": 1, "high": 2, "steps": 10}},
                                 {"target": "arrivals", "range": {"low": 1, "high": 2, "steps": 10}}],
                       {"series": "backlog"}, limits={"maxPoints": 99})
    assert got.value.problems[0].path == "limits.maxPoints"
    assert "10 x 10 = 100" in got.value.problems[0].message and "99" in got.value.problems[0].message


def test_derived_metrics_of_many_points_equal_those_of_each_point() -> None:
    from flowtime.analysis.metrics import derive

    r = flowtime.sweep(PACKING, [{"target": "topology.Packing.wipLimit", "values": [5, 30, 50]},
                                 {"target": "orders", "values": [0.5, 2], "mode": "scale"}],
                       {"series": "packing_latency_min"}, capture=["packing_latency_min", "packing_queue"])
    model = flowtime.load_model(PACKING)
    for k, (limit, factor) in enumerate(r.points.tolist()):
        one = flowtime.evaluate(model, set={"packing_wip_limit": limit,
                                            "orders": (model.node("orders").values * factor).tolist()})
        alone = derive(model, one.series, model.analysis)["Packing"].series["latencyMinutes"]
        assert r.series["packing_latency_min"][k].tobytes() == alone.tobytes()


SERVICE = """\
schemaVersion: 1
grid: {bins: 2, binSize: 1, binUnit: hours}
nodes:
  - {id: arrivals, kind: const, values: [10, 10]}
  - {id: cap, kind: const, values: [5, 5]}
  - {id: served, kind: const, values: [8, 8]}
topology:
  nodes:
    - id: Svc
      kind: service
      semantics: {arrivals: arrivals, served: served, capacity: cap, parallelism: 2}
"""


@pytest.mark.parametrize(("parameter", "expected"), [
    # utilization = served / (capacity x parallelism) = 8 / (5 x 2) = 0.8 in the model
    ({"target": "topology.Svc.capacity", "values": [4]}, 1.0),  # the const `cap` set: 8 / (4 x 2)
    ({"target": "topology.Svc.parallelism", "values": [4]}, 0.4),  # a number in the topology, edited: 8 / 20
    ({"target": "topology.Svc.parallelism", "values": [2], "mode": "scale"}, 0.4),  # 2 x 2 = 4
])
def test_capacity_and_parallelism_targets(parameter: dict[str, object], expected: float) -> None:
    r = flowtime.sweep(SERVICE, [parameter], {"series": "svc_utilization"})
    assert r.metrics[0, 0] == expected


def test_a_field_the_node_does_not_have_is_an_error() -> None:
    with pytest.raises(ExperimentError) as got:
        flowtime.sweep(SERVICE, [{"target": "topology.Svc.wipLimit", "values": [2]},
                                 {"target": "topology.Svc.speed", "values": [2]}], {"series": "served"})
    assert [p.path for p in got.value.problems] == ["parameters[0].target", "parameters[1].target"]
    assert "queue" in got.value.problems[0].message and "wipLimit" in got.value.problems[1].message


def test_a_router_weight_the_loader_refuses_is_located_at_the_parameter() -> None:
    with pytest.raises(ExperimentError) as got:
        flowtime.sweep(ROUTED, [{"target": "router.Split.right", "values": [2, -1]}], {"series": "right"})
    assert got.value.problems[0].path == "parameters[0]"
    assert "router.Split.right = -1" in got.value.problems[0].message


def test_a_sampled_sweep_without_a_seed_records_the_one_it_drew() -> None:
    pmf = (EXAMPLES / "pmf-monte-carlo.yaml").read_text(encoding="utf-8").replace("rng: {kind: pcg32, seed: 42}\n", "")
    r = flowtime.sweep(pmf, [{"target": "requests", "values": [1, 2]}], {"series": "served"}, capture=["served"])
    assert r.seed is not None and r.seeds == (r.seed, r.seed) and not r.warnings
    one = flowtime.evaluate(flowtime.load_model(pmf), r.seed, set={"requests": 2})
    assert one["served"].tobytes() == r.series["served"][1].tobytes()
