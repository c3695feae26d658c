"""
The analyser's series checks: for each code, a small model that triggers exactly it (bins, count and
value by hand) and a variant that does not.
"""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from flowtime.analysis.codes import CODES
from flowtime.analysis.findings import Finding
from flowtime.analysis.invariants import analyse
from flowtime.analysis.windows import WINDOW_CODES
from flowtime.engine import evaluate
from flowtime.model.analysis_settings import AnalysisSettings
from flowtime.model.load import load_model

HEAD = "schemaVersion: 1\ngrid: {bins: 4, binSize: 1, binUnit: hours}\n"
# what a service needs so that no "missing series" info is reported
BASE = ("  - {id: cap, values: [100, 100, 100, 100]}\n  - {id: pt, values: [10, 10, 10, 10]}\n"
        "  - {id: sc, values: [1, 1, 1, 1]}\n  - {id: one, values: [1, 1, 1, 1]}\n"
        "  - {id: zero, values: [0, 0, 0, 0]}\n")
FULL = "capacity: cap, processingTimeMsSum: pt, servedCount: sc"


def invariants(found: list[Finding]) -> list[Finding]:
    """The invariant findings: the window facts ``analyse`` adds are tested in test_windows."""
    return [f for f in found if f.code not in WINDOW_CODES]


def run(body: str, settings: AnalysisSettings | None = None) -> list[Finding]:
    lm = load_model(HEAD + body)
    return invariants(analyse(lm.model, evaluate(lm.model).series, settings))


def only(findings: list[Finding], code: str) -> Finding:
    assert [f.code for f in findings] == [code], [str(f) for f in findings]
    return findings[0]


def one_node(semantics: str, kind: str = "service", nodes: str = "", extra: str = "") -> str:
    return (f"nodes:\n{BASE}{nodes}topology:\n  nodes:\n    - id: N\n      kind: {kind}\n"
            f"      semantics: {{{semantics}}}\n{extra}")


GATE = "      dispatchSchedule: {periodBins: 2}\n"
BAD = "[1, -2, 0, -3]"  # below 0 in bins 1 and 3; the first bad value is -2


@pytest.mark.parametrize(("field", "code", "kind", "rest"), [
    ("arrivals", "arrivals_negative", "serviceWithBuffer", "served: zero"),
    ("served", "served_negative", "serviceWithBuffer", "arrivals: one"),
    ("errors", "errors_negative", "serviceWithBuffer", "arrivals: one, served: zero"),
    ("attempts", "attempts_negative", "service", f"served: one, {FULL}"),
    ("failures", "failures_negative", "service", f"served: one, {FULL}"),
    ("exhaustedFailures", "exhausted_failures_negative", "service", f"served: one, {FULL}"),
    ("queueDepth", "queue_negative", "service", f"served: one, {FULL}"),
    ("retryEcho", "retry_echo_negative", "service", f"served: one, {FULL}"),
    ("retryBudgetRemaining", "retry_budget_negative", "service", f"served: one, {FULL}"),
])
def test_a_series_below_zero_is_reported_at_its_bins_with_the_first_bad_value(
        field: str, code: str, kind: str, rest: str) -> None:
    f = only(run(one_node(f"{rest}, {field}: x", kind, f"  - {{id: x, values: {BAD}}}\n")), code)
    assert (f.node, f.bins, f.count, f.value, f.severity) == ("N", (1, 3), 2, -2.0, "warning")
    assert f.hint == CODES[code].hint
    # the same node with the series at 0 or above: nothing
    assert run(one_node(f"{rest}, {field}: x", kind, "  - {id: x, values: [1, 0, 0, 1]}\n")) == []


def test_a_value_within_the_tolerance_below_zero_is_not_reported_and_the_tolerance_is_the_models() -> None:
    body = one_node("served: x, arrivals: one", "serviceWithBuffer", "  - {id: x, values: [0, -0.001, 0, 0]}\n")
    assert run(body) != []
    assert run(body, AnalysisSettings(tolerance=0.01)) == []
    assert run(body + "analysis: {tolerance: 0.01}\n") == []


def test_served_above_arrivals_gives_the_worst_ratio() -> None:
    # served [2, 5, 4, 8] against arrivals 4: bins 1 and 3, ratios 1.25 and 2 -> 2
    nodes = "  - {id: a, values: [4, 4, 4, 4]}\n  - {id: s, values: [2, 5, 4, 8]}\n"
    f = only(run(one_node(f"arrivals: a, served: s, {FULL}", nodes=nodes)), "served_exceeds_arrivals")
    assert (f.bins, f.count, f.value) == ((1, 3), 2, 2.0)
    # a serviceWithBuffer serves from its backlog: not checked there
    assert "served_exceeds_arrivals" not in {x.code for x in run(one_node("arrivals: a, served: s",
                                                                          "serviceWithBuffer", nodes))}


@pytest.mark.parametrize(("parallelism", "bins", "value"), [
    ("2", (1, 3), 2.0),  # capacity 2 x 2 = 4: served 5 and 8 are above; 8 / 4 = 2
    ("3", (3,), 8 / 6),  # 2 x 3 = 6: only 8, ratio 8/6
    ("p", (1, 3), 2.0),  # a series [2, 2, 3, 2]: 4, 4, 6, 4 -> bins 1 (5/4) and 3 (8/4)
])
def test_served_above_capacity_times_parallelism(parallelism: str, bins: tuple[int, ...], value: float) -> None:
    nodes = ("  - {id: a, values: [10, 10, 10, 10]}\n  - {id: s, values: [2, 5, 4, 8]}\n"
             "  - {id: c, values: [2, 2, 2, 2]}\n  - {id: p, values: [2, 2, 3, 2]}\n")
    sem = f"arrivals: a, served: s, capacity: c, parallelism: {parallelism}, processingTimeMsSum: pt, servedCount: sc"
    f = only(run(one_node(sem, nodes=nodes)), "served_exceeds_capacity")
    assert (f.bins, f.value) == (bins, pytest.approx(value))
    assert run(one_node(sem.replace("capacity: c", "capacity: cap"), nodes=nodes)) == []


def test_errors_above_arrivals() -> None:
    # errors [0, 5, 0, 0] against arrivals 4: bin 1, ratio 5/4
    f = only(run(one_node("arrivals: a, served: zero, errors: e", "serviceWithBuffer",
                          "  - {id: a, values: [4, 4, 4, 4]}\n  - {id: e, values: [0, 5, 0, 0]}\n")),
             "errors_exceed_arrivals")
    assert (f.bins, f.count, f.value) == ((1,), 1, 1.25)


def test_attempts_below_arrivals_gives_the_smallest_ratio() -> None:
    # attempts [4, 3, 5, 2] against arrivals 4: bins 1 (3/4) and 3 (2/4) -> 0.5
    nodes = "  - {id: a, values: [4, 4, 4, 4]}\n  - {id: t, values: [4, 3, 5, 2]}\n"
    f = only(run(one_node(f"arrivals: a, served: one, attempts: t, {FULL}", nodes=nodes)), "attempts_below_arrivals")
    assert (f.bins, f.value) == ((1, 3), 0.5)


def test_failures_above_attempts() -> None:
    nodes = "  - {id: t, values: [4, 4, 4, 4]}\n  - {id: x, values: [1, 5, 4, 6]}\n"  # bins 1, 3; 6/4 = 1.5
    f = only(run(one_node(f"served: one, attempts: t, failures: x, {FULL}", nodes=nodes)), "failures_exceed_attempts")
    assert (f.bins, f.value) == ((1, 3), 1.5)


@pytest.mark.parametrize(("against", "code"), [("failures", "exhausted_exceeds_failures"),
                                               ("errors", "exhausted_exceeds_errors")])
def test_exhausted_failures_above_failures_or_else_errors(against: str, code: str) -> None:
    nodes = "  - {id: t, values: [10, 10, 10, 10]}\n  - {id: x, values: [2, 2, 2, 2]}\n" \
            "  - {id: ex, values: [1, 3, 2, 2]}\n"  # bin 1: 3 / 2 = 1.5
    f = only(run(one_node(f"served: one, attempts: t, {against}: x, exhaustedFailures: ex, {FULL}", nodes=nodes)),
             code)
    assert (f.bins, f.value) == ((1,), 1.5)


def _queue(q: str, extra: str = "") -> str:
    return (f"nodes:\n  - {{id: a, values: [10, 10, 10, 10]}}\n  - {{id: s, values: [5, 5, 5, 5]}}\n"
            f"  - {{id: q, values: {q}}}\ntopology:\n  nodes:\n    - id: Q\n      kind: serviceWithBuffer\n"
            f"      semantics: {{arrivals: a, served: s, queueDepth: q}}\n{extra}")


def test_a_hand_made_queue_series_that_breaks_the_recurrence_is_located_where_it_breaks() -> None:
    # in 10, out 5: from the reported previous depth, bin 2 expects 10 + 5 = 15 (got 16), bin 3 16 + 5 = 21 (got 20)
    f = only(run(_queue("[5, 10, 16, 20]")), "queue_depth_mismatch")
    assert (f.node, f.bins, f.count, f.value) == ("Q", (2, 3), 2, 1.0)
    assert run(_queue("[5, 10, 15, 20]")) == []


def test_the_queue_check_starts_from_the_initial_condition_and_applies_the_dispatch_gate() -> None:
    # initial 3: bin 0 expects 3 + 10 - 5 = 8
    assert run(_queue("[8, 13, 18, 23]", "      initialCondition: {queueDepth: 3}\n")) == []
    assert only(run(_queue("[5, 10, 15, 20]", "      initialCondition: {queueDepth: 3}\n")),
                "queue_depth_mismatch").bins == (0,)
    # released on bins 0 and 2 only: out [5, 0, 5, 0] -> Q [5, 15, 20, 30]
    gate = "      dispatchSchedule: {periodBins: 2}\n"
    assert run(_queue("[5, 15, 20, 30]", gate)) == []
    f = only(run(_queue("[5, 10, 15, 20]", gate)), "queue_depth_mismatch")
    # from the reported depths: bin 1 5 + 10 - 0 = 15 (got 10), bin 2 10 + 10 - 5 = 15 (15), bin 3 15 + 10 = 25 (20)
    assert (f.bins, f.value) == ((1, 3), 5.0)


def test_queues_flowtime_computes_never_mismatch() -> None:
    """Initial depth, a gate capped by a series, a WIP limit overflowing into another queue, NaN inputs, a cap."""
    body = ("nodes:\n  - {id: a, values: [10, 30, 10, 10]}\n  - {id: s, values: [5, 5, 5, 5]}\n"
            "  - {id: c, values: [3, 9, 2, 9]}\n  - {id: lim, values: [20, 20, 15, 15]}\n"
            "  - {id: n, kind: expr, expr: \"IF(a > 20, SQRT(0 - 1), a)\"}\n  - {id: pool, values: [12, 12, 12, 12]}\n"
            "topology:\n  nodes:\n"
            "    - {id: A, kind: serviceWithBuffer, semantics: {arrivals: a, served: s}, initialCondition: "
            "{queueDepth: 4}, dispatchSchedule: {periodBins: 2, capacitySeries: c}, wipLimitSeries: lim, "
            "wipOverflow: B}\n"
            "    - {id: B, kind: queue, semantics: {arrivals: n, served: s}, wipLimit: 7}\n"
            "    - {id: C, kind: dlq, constraints: [shared], semantics: {arrivals: a, served: s}}\n"
            "  constraints:\n    - {id: shared, semantics: {arrivals: a, served: pool}}\n")
    lm = load_model(HEAD + body)
    series = evaluate(lm.model).series
    assert not np.isfinite(series["n"]).all()
    assert "queue_depth_mismatch" not in {f.code for f in invariants(analyse(lm.model, series))}


def _edges(b_arrivals: str, lag: int = 0) -> str:
    return (f"nodes:\n{BASE}  - {{id: a, values: [10, 10, 10, 10]}}\n  - {{id: s, values: [6, 6, 6, 6]}}\n"
            "  - {id: b_in, values: [6, 6, 7, 6]}\n  - {id: s_late, kind: expr, expr: \"SHIFT(s, 1)\"}\n"
            f"topology:\n  nodes:\n    - {{id: A, kind: service, semantics: {{arrivals: a, served: s, {FULL}}}}}\n"
            f"    - {{id: B, kind: serviceWithBuffer, semantics: {{arrivals: {b_arrivals}, served: zero}}}}\n"
            f"  edges:\n    - {{id: a_to_b, from: A, to: B, lag: {lag}}}\n")


def test_arrivals_that_differ_from_the_incoming_edges_flow() -> None:
    # the edge carries A's served, 6; B's arrivals are 7 in bin 2
    f = only(run(_edges("b_in")), "edge_flow_mismatch_incoming")
    assert (f.node, f.edge, f.bins, f.value) == ("B", "a_to_b", (2,), 1.0)
    assert run(_edges("s")) == []


def test_an_edge_lag_shifts_the_flow_its_target_should_receive() -> None:
    # the edge carries SHIFT(s, 1) = [0, 6, 6, 6]: B receiving SHIFT(s, 1) is conserved, B receiving s is not
    f = only(run(_edges("s_late", lag=1)), "edge_behavior_violation_lag")
    assert (f.node, f.edge, f.value) == ("A", "a_to_b", 1.0)
    assert {x.code for x in run(_edges("s", lag=1))} == {"edge_behavior_violation_lag", "edge_flow_mismatch_incoming"}


def test_served_that_differs_from_the_outgoing_edges_flow() -> None:
    # R routes src (10) half to t1 and t2; the edge into B carries t1 (5), the edge into Z is not routed and so
    # takes R's whole served (10): 5 + 10 = 15 against 10 in every bin
    body = (f"nodes:\n{BASE}  - {{id: src, values: [10, 10, 10, 10]}}\n"
            "  - {id: R, kind: router, inputs: {queue: src}, routes: [{target: t1, weight: 1}, "
            "{target: t2, weight: 1}]}\n"
            "  - {id: t1, kind: expr, expr: \"0\"}\n  - {id: t2, kind: expr, expr: \"0\"}\n"
            f"topology:\n  nodes:\n    - {{id: R, kind: router, semantics: {{arrivals: src, served: R, {FULL}}}}}\n"
            "    - {id: B, kind: sink, semantics: {arrivals: t1}}\n    - {id: Z, kind: sink, semantics: {arrivals: "
            "ZIN}}\n  edges:\n    - {id: r_b, from: R, to: B}\n    - {id: r_z, from: R, to: Z}\n")
    found = run(body.replace("ZIN", "src"))
    f = only(found, "edge_flow_mismatch_outgoing")
    assert (f.node, f.edge, f.bins, f.count, f.value) == ("R", "r_b", (0, 1, 2, 3), 4, 5.0)
    assert run(body.replace("ZIN", "t2")) == []


CLASSES = "classes: [{id: Alpha}, {id: Beta}]\n"


def _class_edges(a_parts: tuple[float, float], b_parts: tuple[float, float]) -> str:
    """A serves a1 + b1 into B, whose arrivals are a2 + b2; ``a*`` carry Alpha and ``b*`` Beta."""
    nodes = "".join(f"  - {{id: {n}, values: [{v:g}, {v:g}, {v:g}, {v:g}]}}\n"
                    for n, v in zip(("a1", "b1", "a2", "b2"), (*a_parts, *b_parts), strict=True))
    traffic = ", ".join(f"{{nodeId: {n}, classId: {'Alpha' if n[0] == 'a' else 'Beta'}}}" for n in ("a1", "b1",
                                                                                                    "a2", "b2"))
    return (CLASSES + f"traffic: {{arrivals: [{traffic}]}}\nnodes:\n{BASE}{nodes}"
            "  - {id: served_a, kind: expr, expr: \"a1 + b1\"}\n  - {id: into_b, kind: expr, expr: \"a2 + b2\"}\n"
            f"topology:\n  nodes:\n    - {{id: A, kind: service, semantics: {{arrivals: served_a, served: served_a, "
            f"{FULL}}}}}\n    - {{id: B, kind: serviceWithBuffer, semantics: {{arrivals: into_b, served: zero}}}}\n"
            "  edges:\n    - {id: a_b, from: A, to: B}\n")


def test_a_class_mix_that_differs_from_the_incoming_edges_mix() -> None:
    # totals agree (6 = 6), but B receives Alpha 3 and Beta 3 where the edge carries Alpha 4 and Beta 2
    f = only(run(_class_edges((4, 2), (3, 3))), "edge_class_mismatch")
    assert (f.node, f.edge, f.bins, f.count, f.value) == ("B", "a_b", (0, 1, 2, 3), 4, 1.0)
    assert run(_class_edges((4, 2), (4, 2))) == []


def test_a_class_no_incoming_edge_carries() -> None:
    # the edge carries Alpha 6 only; B receives Beta 6 (and no Alpha): Beta is carried by no edge
    f = only(run(_class_edges((6, 0), (0, 6)).replace("{nodeId: b1, classId: Beta}, ", "")
                 .replace("{nodeId: a2, classId: Alpha}, ", "")), "edge_class_partial_coverage")
    assert (f.node, f.value) == ("B", 6.0)
    assert "Beta" in f.message


def _router(routes: str) -> str:
    return (CLASSES + "traffic: {arrivals: [{nodeId: a, classId: Alpha}, {nodeId: b, classId: Beta}]}\n"
            "nodes:\n  - {id: a, values: [4, 4, 4, 4]}\n  - {id: b, values: [6, 6, 0, 6]}\n"
            "  - {id: src, kind: expr, expr: \"a + b\"}\n"
            f"  - {{id: R, kind: router, inputs: {{queue: src}}, routes: {routes}}}\n"
            "  - {id: t1, kind: expr, expr: \"0\"}\n  - {id: t2, kind: expr, expr: \"0\"}\n")


def test_a_class_the_router_has_no_route_for() -> None:
    # Beta (6, 6, 0, 6) reaches R, only Alpha has a route and there is no weight route: 18 dropped, bins 0, 1, 3
    f = only(run(_router("[{target: t1, classes: [Alpha]}]")), "router_missing_class_route")
    assert (f.node, f.bins, f.count, f.value) == ("R", (0, 1, 3), 3, 18.0)
    assert run(_router("[{target: t1, classes: [Alpha]}, {target: t2, weight: 1}]")) == []


def test_a_class_routed_twice_leaks() -> None:
    # Alpha is in two class routes: 8 routed of 4 in every bin
    f = only(run(_router("[{target: t1, classes: [Alpha]}, {target: t2, classes: [Alpha, Beta]}]")),
             "router_class_leakage")
    assert (f.node, f.bins, f.value) == ("R", (0, 1, 2, 3), 4.0)
    assert run(_router("[{target: t1, classes: [Alpha]}, {target: t2, classes: [Beta]}]")) == []


@pytest.mark.parametrize(("field", "expr", "code"), [
    ("served", "3", "class_series_missing_served"),
    ("served", "a * 0.5", "class_series_partial_served"),
    ("errors", "1", "class_series_missing_errors"),
    ("errors", "b * 0.1", "class_series_partial_errors"),
])
def test_classes_that_arrive_and_do_not_flow_through(field: str, expr: str, code: str) -> None:
    body = (CLASSES + "traffic: {arrivals: [{nodeId: a, classId: Alpha}, {nodeId: b, classId: Beta}]}\n"
            "nodes:\n  - {id: a, values: [4, 4, 4, 4]}\n  - {id: b, values: [6, 6, 6, 6]}\n"
            "  - {id: in, kind: expr, expr: \"a + b\"}\n  - {id: zero, values: [0, 0, 0, 0]}\n"
            f"  - {{id: x, kind: expr, expr: \"{expr}\"}}\n  - {{id: ok, kind: expr, expr: \"in * 0.1\"}}\n"
            "topology:\n  nodes:\n    - {id: N, kind: serviceWithBuffer, semantics: {arrivals: in, FIELDS}}\n")
    other = "errors" if field == "served" else "served"
    f = only(run(body.replace("FIELDS", f"{field}: x, {other}: zero")), code)
    assert (f.node, f.bins, f.count) == ("N", (), 0)
    assert run(body.replace("FIELDS", f"{field}: ok, {other}: zero")) == []
    # a series that is 0 throughout carries nothing to miss
    assert run(body.replace("FIELDS", f"{field}: zero, {other}: zero")) == []


def test_capacity_zero_in_every_bin() -> None:
    f = only(run(one_node("arrivals: one, served: zero, capacity: zero, processingTimeMsSum: pt, servedCount: sc")),
             "capacity_all_zero")
    assert (f.severity, f.bins) == ("info", ())
    assert run(one_node(f"arrivals: one, served: zero, {FULL}")) == []


def test_a_schedule_that_never_releases() -> None:
    body = one_node("arrivals: one, served: zero", "serviceWithBuffer", extra=GATE)
    f = only(run(body), "dispatch_never_releases")
    assert (f.severity, f.value) == ("info", 4.0)  # 1 arrived in each of 4 bins
    assert run(body.replace("served: zero", "served: one")) == []


@pytest.mark.parametrize(("extra", "code"), [("", "queue_latency_unreported"), (GATE, "queue_latency_gate_closed")])
def test_work_queued_while_nothing_is_served(extra: str, code: str) -> None:
    # a queue with arrivals 5, served [5, 0, 5, 0]: Q = [0, 5, 5, 10] (gated: out [5, 0, 5, 0], the same);
    # served is 0 with work queued in bins 1 and 3
    nodes = "  - {id: a, values: [5, 5, 5, 5]}\n  - {id: s, values: [5, 0, 5, 0]}\n"
    f = only(run(one_node("arrivals: a, served: s", "queue", nodes, extra)), code)
    assert (f.bins, f.value, f.severity) == ((1, 3), 5.0, "info")
    assert run(one_node("arrivals: a, served: a", "queue", nodes, extra)) == []


def test_ignored_codes_are_dropped_and_findings_are_sorted_by_topology_node_then_code() -> None:
    nodes = "  - {id: x, values: [1, -2, 0, -3]}\n"
    body = (f"nodes:\n{BASE}{nodes}topology:\n  nodes:\n"
            "    - {id: Z, kind: serviceWithBuffer, semantics: {arrivals: x, served: x}}\n"
            f"    - {{id: A, kind: service, semantics: {{served: x, queueDepth: x, {FULL}}}}}\n")
    # A serves nothing (x <= 0) in bins 1-3 with its queue x != 0 in bins 1 and 3: latency is undefined there
    assert [(f.node, f.code) for f in run(body)] == [
        ("Z", "arrivals_negative"), ("Z", "served_negative"), ("A", "queue_latency_unreported"),
        ("A", "queue_negative"), ("A", "served_negative")]
    assert [(f.node, f.code) for f in run(body + "analysis: {ignore: [served_negative]}\n")] == [
        ("Z", "arrivals_negative"), ("A", "queue_latency_unreported"), ("A", "queue_negative")]


def test_derived_metrics_lend_their_effective_capacity() -> None:
    # served [2, 5, 4, 8] is within capacity 100; with metrics giving an effective capacity of 4 it is above in
    # bins 1 and 3 (8 / 4 = 2)
    nodes = "  - {id: a, values: [10, 10, 10, 10]}\n  - {id: s, values: [2, 5, 4, 8]}\n"
    lm = load_model(HEAD + one_node(f"arrivals: a, served: s, {FULL}", nodes=nodes))
    series = evaluate(lm.model).series
    assert invariants(analyse(lm.model, series)) == []
    metrics = {"N": SimpleNamespace(series={"effectiveCapacity": np.full(4, 4.0)})}
    f = only(invariants(analyse(lm.model, series, metrics=metrics)), "served_exceeds_capacity")
    assert (f.bins, f.value) == ((1, 3), 2.0)


def test_analyse_also_reports_the_window_facts_of_the_whole_run() -> None:
    # arrivals 10 per bin, served 3: the queue is 7, 14, 21, 28 - it rises in bins 1, 2, 3 (a streak of 3)
    lm = load_model(HEAD + "nodes:\n  - {id: a, values: [10, 10, 10, 10]}\n  - {id: s, values: [3, 3, 3, 3]}\n"
                    "topology:\n  nodes:\n"
                    "    - {id: Q, kind: serviceWithBuffer, semantics: {arrivals: a, served: s}}\n")
    found = analyse(lm.model, evaluate(lm.model).series)
    streak = [f for f in found if f.code == "backlog_growth_streak"]
    assert [(f.node, f.bins, f.severity) for f in streak] == [("Q", (1, 2, 3), "info")]
