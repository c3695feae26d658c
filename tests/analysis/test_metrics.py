"""
Derived metrics per topology node, against hand-computed values: every metric and each of its undefined-bin
rules, colours at each threshold edge, SLA shares, flow latency along edges and Kingman's wait.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from tests.strategies import series as finite_series

import flowtime
from flowtime.analysis.metrics import COLOURS, METRICS, NodeMetrics, SlaSummary, derive, series_name
from flowtime.model.analysis_settings import AnalysisSettings
from flowtime.model.load import load_model

NAN = math.nan


def metrics_of(text: str, settings: AnalysisSettings | None = None) -> dict[str, NodeMetrics]:
    model = load_model(text).model
    results = flowtime.evaluate(model)
    return derive(model, results.series, settings) if settings else derive(model, results.series)


def model(bins: int, nodes: str, topology: str, *, minutes: int = 1) -> str:
    return (f"schemaVersion: 1\ngrid: {{bins: {bins}, binSize: {minutes}, binUnit: minutes}}\nnodes:\n{nodes}"
            f"topology:\n{topology}")


def same(actual: np.ndarray, expected: list[float]) -> None:
    """Equal bin by bin, NaN where NaN is expected (undefined), within float rounding."""
    np.testing.assert_allclose(actual, np.array(expected, dtype=np.float64), rtol=1e-12, atol=0, equal_nan=True)


def colours(m: NodeMetrics) -> list[str]:
    return [COLOURS[c] for c in m.colour.tolist()]


SERVICE = model(4, """\
  - {id: arr, values: [10, 10, 0, 4]}
  - {id: srv, values: [8, 10, 0, 5]}
  - {id: cap, values: [10, 0, 10, 10]}
  - {id: pts, values: [80, 0, 0, 50]}
  - {id: cnt, values: [8, 0, 0, 5]}
""", """\
  nodes:
    - id: Checkout
      kind: service
      semantics: {arrivals: arr, served: srv, capacity: cap, parallelism: 2, processingTimeMsSum: pts,
                  servedCount: cnt}
""", minutes=5)


def test_a_service_gets_every_service_metric_with_undefined_bins_as_nan() -> None:
    m = metrics_of(SERVICE)["Checkout"]
    assert (m.kind, m.category) == ("service", "service")
    assert m.inputs == {"arrivals": "arr", "served": "srv", "capacity": "cap", "processingTimeMsSum": "pts",
                        "servedCount": "cnt"}
    s = m.series
    same(s["effectiveCapacity"], [20, 0, 20, 20])  # cap x parallelism 2
    same(s["utilization"], [0.4, NAN, 0, 0.25])  # 8/20; capacity 0: undefined; 0/20; 5/20
    same(s["throughputRatio"], [0.8, 1, NAN, 1])  # 8/10; 10/10; no arrivals: undefined; 5/4 clamped to 1
    same(s["serviceTimeMs"], [10, NAN, NAN, 10])  # 80/8; servedCount 0: undefined; 50/5
    same(s["cycleTimeMs"], [10, NAN, NAN, 10])  # no queue time: the service time alone
    same(s["flowEfficiency"], [1, NAN, NAN, 1])  # 10/10
    same(s["flowLatencyMs"], [10, NAN, NAN, 10])  # no predecessors: its own cycle time
    # Kingman: const inputs have Cv 0, so where 0 < rho < 1 the wait is 0; rho = 0 (bin 2) and undefined rho: NaN
    same(s["kingmanWqMs"], [0, NAN, NAN, 0])
    assert "queueTimeMs" not in s and "latencyMinutes" not in s  # a plain service has no queue
    assert set(m.derived) == {"effectiveCapacity", "utilization", "throughputRatio", "serviceTimeMs",
                              "cycleTimeMs", "flowEfficiency", "flowLatencyMs", "kingmanWqMs"}
    assert colours(m) == ["green", "gray", "green", "green"]  # by utilization 0.4, -, 0, 0.25
    # completion: ratios 0.8, 1, -, 1 against 0.95: 2 of the 3 bins with arrivals
    assert m.sla == SlaSummary(0.95, "completion", 2, 3, pytest.approx(200 / 3))


def test_derived_arrays_are_read_only_float64_of_the_grid_length() -> None:
    m = metrics_of(SERVICE)["Checkout"]
    for key, values in m.derived.items():
        assert values.dtype == np.float64 and values.shape == (4,), key
        assert not values.flags.writeable, key
    assert m.colour.dtype == np.int8


def test_without_a_parallelism_utilization_divides_by_the_capacity_and_no_effective_capacity_is_given() -> None:
    text = SERVICE.replace(" parallelism: 2,", "")
    s = metrics_of(text)["Checkout"].series
    assert "effectiveCapacity" not in s and "parallelism" not in s
    same(s["utilization"], [0.8, NAN, 0, 0.5])  # 8/10, capacity 0, 0/10, 5/10


def test_a_parallelism_series_multiplies_bin_by_bin() -> None:
    text = SERVICE.replace("parallelism: 2", "parallelism: par").replace(
        "  - {id: cnt,", "  - {id: par, values: [1, 2, 0, 4]}\n  - {id: cnt,")
    m = metrics_of(text)["Checkout"]
    assert m.inputs["parallelism"] == "par"
    same(m.series["effectiveCapacity"], [10, 0, 0, 40])
    same(m.series["utilization"], [0.8, NAN, NAN, 0.125])  # parallelism 0: effective capacity 0, undefined


def test_arrivals_within_the_tolerance_of_zero_leave_the_throughput_ratio_undefined() -> None:
    text = SERVICE.replace("values: [10, 10, 0, 4]", "values: [1.0e-9, -2, 0.5, 4]")
    s = metrics_of(text)["Checkout"].series
    same(s["throughputRatio"], [NAN, NAN, 0, 1])  # 1e-9 and negative: undefined; 0/0.5; 5/4 clamped


QUEUE = model(6, """\
  - {id: arr, values: [1, 1, 1, 1, 1, 1]}
  - {id: srv, values: [1, 1, 1, 1, 1, 0]}
  - {id: depth, values: [10, 11, 15, 16, 5, 3]}
""", """\
  nodes:
    - id: Backlog
      kind: queue
      semantics: {arrivals: arr, served: srv, queueDepth: depth, slaMin: 10}
""")


def test_a_queue_gets_queue_time_and_latency_coloured_against_its_sla_at_each_edge() -> None:
    m = metrics_of(QUEUE)["Backlog"]
    assert m.category == "queue" and m.sla_min == 10
    s = m.series
    # bins of 1 minute (60000 ms): queue / served x 60000; served 0: undefined
    same(s["queueTimeMs"], [600_000, 660_000, 900_000, 960_000, 300_000, NAN])
    same(s["latencyMinutes"], [10, 11, 15, 16, 5, NAN])
    same(s["cycleTimeMs"], [600_000, 660_000, 900_000, 960_000, 300_000, NAN])  # queue time alone
    assert "serviceTimeMs" not in s and "flowEfficiency" not in s  # a queue is not a service
    # <= 10 green (10 is), <= 15 yellow (15 is), above red, undefined gray
    assert colours(m) == ["green", "yellow", "yellow", "red", "green", "gray"]
    # latency <= slaMin in bins 0 and 4 of the 5 with a latency
    assert m.sla == SlaSummary(10, "backlogAge", 2, 5, 40.0)


def test_latency_colours_follow_the_settings_multiples_of_sla() -> None:
    settings = AnalysisSettings(latency_yellow=1.1, latency_red=1.6)
    m = metrics_of(QUEUE, settings)["Backlog"]
    assert colours(m) == ["green", "green", "yellow", "yellow", "green", "gray"]  # 11 <= 11, 16 <= 16


def test_a_queue_without_sla_is_gray_and_measured_by_completion() -> None:
    m = metrics_of(QUEUE.replace(", slaMin: 10", ""))["Backlog"]
    assert m.sla_min is None
    assert colours(m) == ["gray"] * 6
    # served / arrivals: 1 in bins 0-4, 0 in bin 5
    assert m.sla == SlaSummary(0.95, "completion", 5, 6, pytest.approx(500 / 6))


def test_a_dlq_is_gray_even_with_a_capacity_and_a_sink_is_gray() -> None:
    text = QUEUE.replace("kind: queue", "kind: dlq").replace("queueDepth: depth,", "queueDepth: depth, capacity: arr,")
    m = metrics_of(text)["Backlog"]
    assert m.category == "dlq"
    same(m.series["utilization"], [1, 1, 1, 1, 1, 0])
    assert colours(m) == ["gray"] * 6
    sink = model(2, "  - {id: arr, values: [3, 0]}\n", "  nodes:\n    - {id: Out, kind: sink, semantics: "
                 "{arrivals: arr}}\n")
    out = metrics_of(sink)["Out"]
    assert out.category == "sink" and colours(out) == ["gray", "gray"] and out.sla is None


UTILIZATION_EDGES = model(6, """\
  - {id: arr, values: [200, 200, 200, 200, 200, 200]}
  - {id: srv, values: [69, 70, 89, 90, 120, 5]}
  - {id: cap, values: [100, 100, 100, 100, 100, -1]}
""", """\
  nodes:
    - {id: Api, kind: service, semantics: {arrivals: arr, served: srv, capacity: cap}}
""")


def test_service_colours_switch_exactly_at_the_utilization_thresholds() -> None:
    m = metrics_of(UTILIZATION_EDGES)["Api"]
    same(m.series["utilization"], [0.69, 0.7, 0.89, 0.9, 1.2, NAN])  # capacity -1: undefined
    # < 0.7 green, < 0.9 yellow, from 0.9 red, undefined gray
    assert colours(m) == ["green", "yellow", "yellow", "red", "red", "gray"]
    moved = metrics_of(UTILIZATION_EDGES, AnalysisSettings(utilization_yellow=0.695, utilization_red=1.3))["Api"]
    assert colours(moved) == ["green", "yellow", "yellow", "yellow", "yellow", "gray"]


def test_the_completion_sla_counts_bins_at_the_target_as_met() -> None:
    m = metrics_of(UTILIZATION_EDGES.replace("[69, 70, 89, 90, 120, 5]", "[190, 189, 200, 300, 0, 5]"))["Api"]
    same(m.series["throughputRatio"], [0.95, 0.945, 1, 1, 0, 0.025])
    assert m.sla == SlaSummary(0.95, "completion", 3, 6, 50.0)  # 0.95, 1, 1 meet 0.95


BUFFER = model(4, """\
  - {id: arr, values: [2, 2, 2, 2]}
  - {id: srv, values: [2, 4, 0, 1]}
  - {id: depth, values: [2, 0, 4, 1]}
  - {id: pts, values: [100, 0, 0, 0]}
  - {id: cnt, values: [2, 0, 0, 0]}
""", """\
  nodes:
    - id: Pack
      kind: serviceWithBuffer
      semantics: {arrivals: arr, served: srv, queueDepth: depth, processingTimeMsSum: pts, servedCount: cnt}
""")


def test_cycle_time_adds_queue_and_service_time_counting_a_missing_part_as_zero() -> None:
    s = metrics_of(BUFFER)["Pack"].series
    same(s["queueTimeMs"], [60_000, 0, NAN, 60_000])  # 2/2, 0/4, served 0, 1/1 (x 60000)
    same(s["serviceTimeMs"], [50, NAN, NAN, NAN])  # 100/2; servedCount 0
    same(s["cycleTimeMs"], [60_050, 0, NAN, 60_000])  # both missing only in bin 2
    same(s["flowEfficiency"], [50 / 60_050, NAN, NAN, NAN])  # cycle 0 and a missing service time: undefined
    same(s["latencyMinutes"], [1, 0, NAN, 1])


def test_a_service_with_buffer_without_capacity_is_coloured_by_latency_when_it_has_an_sla() -> None:
    m = metrics_of(BUFFER.replace("servedCount: cnt}", "servedCount: cnt, slaMin: 0.5}"))["Pack"]
    assert m.category == "service"
    # latency 1 > 0.75 red, 0 green, undefined gray, 1 red
    assert colours(m) == ["red", "green", "gray", "red"]
    assert m.sla == SlaSummary(0.5, "backlogAge", 1, 3, pytest.approx(100 / 3))


def test_a_synthesized_queue_depth_is_read_through_the_written_back_reference() -> None:
    text = model(3, "  - {id: arr, values: [4, 4, 0]}\n  - {id: srv, values: [2, 2, 2]}\n",
                 "  nodes:\n    - {id: HubQueue, kind: serviceWithBuffer, semantics: {arrivals: arr, served: srv}}\n")
    m = metrics_of(text)["HubQueue"]
    assert m.inputs["queue"] == "hub_queue_queue"
    same(m.series["queue"], [2, 4, 2])  # 0+4-2, 2+4-2, 4+0-2
    same(m.series["latencyMinutes"], [1, 2, 1])  # queue / served, bins of a minute


def test_self_names_the_topology_nodes_own_series_and_class_references_are_skipped() -> None:
    text = model(2, "  - {id: Gate, values: [5, 5]}\n  - {id: srv, values: [5, 4]}\n",
                 "  nodes:\n    - {id: Gate, kind: service, semantics: {arrivals: self, served: srv}}\n")
    m = metrics_of(text)["Gate"]
    assert m.inputs == {"arrivals": "Gate", "served": "srv"}
    same(m.series["throughputRatio"], [1, 0.8])


CHAIN = model(4, """\
  - {id: served_a, values: [4, 4, 0, 4]}
  - {id: served_b, values: [2, 0, 2, 2]}
  - {id: served_c, values: [1, 1, 1, 0]}
  - {id: pts_a, kind: expr, expr: served_a * 100}
  - {id: pts_b, kind: expr, expr: served_b * 400}
  - {id: pts_c, kind: expr, expr: served_c * 25}
""", """\
  nodes:
    - {id: A, kind: service, semantics: {arrivals: served_a, served: served_a, processingTimeMsSum: pts_a,
                                         servedCount: served_a}}
    - {id: C, kind: service, semantics: {arrivals: served_c, served: served_c, processingTimeMsSum: pts_c,
                                         servedCount: served_c}}
    - {id: B, kind: service, semantics: {arrivals: served_b, served: served_b, processingTimeMsSum: pts_b,
                                         servedCount: served_b}}
  edges:
    - {from: A, to: B, weight: 3}
    - {from: A, to: C, weight: 1}
    - {from: B, to: C}
""")


def test_flow_latency_weights_the_predecessors_by_the_flow_on_each_incoming_edge() -> None:
    m = metrics_of(CHAIN)
    assert list(m) == ["A", "C", "B"]  # topology order, though C is computed after B
    # service times: A 100, B 400, C 25 where they serve; A's flow splits 3:1 to B and C
    same(m["A"].series["flowLatencyMs"], [100, 100, NAN, 100])
    # B: 400 + A's 100 (flow 3); bin 1 B serves nothing; bin 2 A sends nothing: 400 alone
    same(m["B"].series["flowLatencyMs"], [500, NAN, 400, 500])
    # C: 25 + the flow-weighted mean of its predecessors
    #  bin 0: (1 x 100 + 2 x 500) / 3 = 366.67 -> 391.67
    #  bin 1: only A counts (B's latency undefined, its flow 0): 100 -> 125
    #  bin 2: only B counts (A's flow 0): 400 -> 425
    #  bin 3: C serves nothing: undefined
    same(m["C"].series["flowLatencyMs"], [25 + 1100 / 3, 125, 425, NAN])


def test_a_node_without_cycle_time_carries_its_predecessors_flow_latency() -> None:
    head, _, rest = CHAIN.partition("    - {id: C,")
    text = head + "    - {id: C, kind: sink, semantics: {arrivals: served_c}}\n" + rest.split("\n", 2)[2]
    m = metrics_of(text)["C"]
    assert "cycleTimeMs" not in m.series
    # a sink: undefined where nothing arrives (bin 3); otherwise the upstream mean alone
    same(m.series["flowLatencyMs"], [1100 / 3, 100, 400, NAN])


KINGMAN = model(3, """\
  - {id: arr, kind: pmf, pmf: {values: [2, 6], probabilities: [0.5, 0.5]}}
  - {id: cap, values: [5, 5, 4]}
  - {id: srv, kind: expr, expr: "MIN(arr, cap)"}
""", """\
  nodes:
    - {id: Desk, kind: service, semantics: {arrivals: arr, served: srv, capacity: cap}}
""")


def test_kingman_uses_the_pmf_arrivals_cv_and_the_capacity_service_time() -> None:
    s = metrics_of(KINGMAN)["Desk"].series
    # arrivals: the pmf's mean 4, sigma 2, so Ca = 0.5; capacity const: Cs = 0
    # bins 0-1: rho = 4/5 = 0.8, E[S] = 60000 ms / 5 = 12000: 0.8/0.2 x (0.25 + 0)/2 x 12000 = 6000
    # bin 2: rho = 4/4 = 1: undefined
    same(s["utilization"], [0.8, 0.8, 1])
    same(s["kingmanWqMs"], [6000, 6000, NAN])


def test_kingman_prefers_a_measured_service_time_and_adds_a_pmf_capacitys_cv() -> None:
    text = KINGMAN.replace("{id: cap, values: [5, 5, 4]}",
                           "{id: cap, kind: pmf, pmf: {values: [4, 6], probabilities: [0.5, 0.5]}}").replace(
        "capacity: cap}", "capacity: cap, processingTimeMsSum: pts, servedCount: srv}").replace(
        "  - {id: srv,", "  - {id: pts, kind: expr, expr: srv * 250}\n  - {id: srv,")
    s = metrics_of(text)["Desk"].series
    # Ca = 2/4 = 0.5, Cs = 1/5 = 0.2; rho = 4/5; E[S] = 250 ms: 4 x (0.25 + 0.04)/2 x 250 = 145
    same(s["kingmanWqMs"], [145, 145, 145])


def test_a_pmf_with_mean_zero_leaves_kingman_undefined() -> None:
    text = KINGMAN.replace("values: [2, 6], probabilities: [0.5, 0.5]", "values: [-2, 2], probabilities: [0.5, 0.5]")
    s = metrics_of(text)["Desk"].series
    assert np.isnan(s["kingmanWqMs"]).all()


def test_a_model_without_topology_has_no_metrics() -> None:
    loaded = load_model("schemaVersion: 1\ngrid: {bins: 2, binSize: 1, binUnit: hours}\nnodes: [{id: a, values: 1}]")
    assert derive(loaded.model, flowtime.evaluate(loaded.model).series) == {}


def test_missing_input_series_are_left_out_rather_than_failing() -> None:
    loaded = load_model(SERVICE)
    series = dict(flowtime.evaluate(loaded.model).series)
    del series["cap"]  # e.g. a run whose stored series are only some outputs
    m = derive(loaded.model, series)["Checkout"]
    assert "capacity" not in m.inputs and "utilization" not in m.series
    same(m.series["throughputRatio"], [0.8, 1, NAN, 1])


def test_series_names_follow_the_reference_snake_case_and_rust_suffixes() -> None:
    assert [series_name("HubQueue", k) for k in METRICS] == [
        "hub_queue_effective_capacity", "hub_queue_utilization", "hub_queue_queue_time_ms", "hub_queue_latency_min",
        "hub_queue_service_time_ms", "hub_queue_cycle_time_ms", "hub_queue_flow_efficiency",
        "hub_queue_throughput_ratio", "hub_queue_flow_latency_ms", "hub_queue_kingman_wq"]
    assert {i.unit for i in METRICS.values()} <= {"entities/bin", "ratio", "ms", "minutes"}
    assert METRICS["latencyMinutes"].unit == "minutes" and METRICS["utilization"].unit == "ratio"


@given(st.integers(1, 8).flatmap(lambda n: st.tuples(finite_series(n, magnitude=1e4), finite_series(n, magnitude=1e4),
                                                      st.floats(0.25, 8))))
def test_utilization_times_effective_capacity_is_served_where_defined(
        case: tuple[list[float], list[float], float]) -> None:
    served, capacity, parallelism = case
    text = model(len(served), f"  - {{id: srv, values: {served}}}\n  - {{id: cap, values: {capacity}}}\n",
                 "  nodes:\n    - {id: S, kind: service, semantics: {arrivals: srv, served: srv, capacity: cap, "
                 f"parallelism: {parallelism}}}}}\n")
    m = metrics_of(text)["S"]
    u, eff = m.series["utilization"], m.series["effectiveCapacity"]
    defined = ~np.isnan(u)
    assert not (defined & ~(eff > 0)).any()  # never defined where the effective capacity is <= 0
    with np.errstate(all="ignore"):  # and undefined where it is > 0 only when the ratio overflows (a tiny capacity)
        assert not np.isfinite(np.array(served)[~defined & (eff > 0)] / eff[~defined & (eff > 0)]).any()
    np.testing.assert_allclose(u[defined] * eff[defined], np.array(served)[defined], rtol=1e-12, atol=1e-9)
    assert ((m.colour == 0) == ~defined).all()  # gray exactly where undefined
