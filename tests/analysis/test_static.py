"""
The analyser's model-level checks (``check_model``: no run needed), and the same checks over a run's
series when a series the model names was not written (as a state API reading a run folder sees it).
"""

from __future__ import annotations

import pytest

from flowtime.analysis.findings import Finding
from flowtime.analysis.invariants import analyse, check_model
from flowtime.analysis.windows import WINDOW_CODES
from flowtime.engine import evaluate
from flowtime.model.load import load_model

HEAD = "schemaVersion: 1\ngrid: {bins: 4, binSize: 1, binUnit: hours}\n"
NODES = ("nodes:\n  - {id: a, values: [4, 4, 4, 4]}\n  - {id: s, values: [2, 2, 2, 2]}\n"
         "  - {id: t, values: [5, 5, 5, 5]}\n  - {id: cap, values: [9, 9, 9, 9]}\n"
         "  - {id: pt, values: [10, 10, 10, 10]}\n  - {id: sc, values: [1, 1, 1, 1]}\n")
FULL = "arrivals: a, served: s, capacity: cap, processingTimeMsSum: pt, servedCount: sc"


def check(topology: str, extra: str = "") -> list[Finding]:
    return check_model(load_model(HEAD + NODES + extra + "topology:\n" + topology).model)


def codes(found: list[Finding]) -> set[str]:
    return {f.code for f in found}


def test_a_complete_service_has_no_findings() -> None:
    assert check(f"  nodes:\n    - {{id: S, kind: service, semantics: {{{FULL}}}}}\n") == []


@pytest.mark.parametrize(("left_out", "code"), [
    ("capacity: cap, ", "missing_capacity_series"),
    ("served: s, ", "missing_served_series"),
    ("processingTimeMsSum: pt, ", "missing_processing_time_series"),
    (", servedCount: sc", "missing_served_count_series"),
])
def test_a_service_without_a_series_it_needs(left_out: str, code: str) -> None:
    found = check(f"  nodes:\n    - {{id: S, kind: service, semantics: {{{FULL.replace(left_out, '')}}}}}\n")
    assert [(f.code, f.node, f.severity, f.bins, f.count) for f in found] == [(code, "S", "info", (), 0)]


@pytest.mark.parametrize(("given", "code"), [("exhaustedFailures: t", "missing_retry_budget_series"),
                                             ("retryBudgetRemaining: t", "missing_exhausted_failures_series")])
def test_max_attempts_without_the_series_it_implies(given: str, code: str) -> None:
    found = check(f"  nodes:\n    - {{id: S, kind: service, semantics: {{{FULL}, maxAttempts: 3, {given}}}}}\n")
    assert [(f.code, f.severity) for f in found] == [(code, "warning")]
    both = "exhaustedFailures: t, retryBudgetRemaining: t"
    assert check(f"  nodes:\n    - {{id: S, kind: service, semantics: {{{FULL}, maxAttempts: 3, {both}}}}}\n") == []


def _dependency(semantics: str, caller: str = "attempts: t, ", edge: str = "effort") -> str:
    return (f"  nodes:\n    - {{id: C, kind: service, semantics: {{{caller}{FULL}}}}}\n"
            f"    - {{id: D, kind: dependency, semantics: {{{semantics}}}}}\n"
            f"  edges:\n    - {{id: c_d, from: C, to: D, type: {edge}}}\n")


def test_a_dependency_without_arrivals_or_served() -> None:
    assert codes(check(_dependency("served: s"))) == {"missing_dependency_arrivals"}
    assert codes(check(_dependency("arrivals: a"))) == {"missing_dependency_served"}
    assert check(_dependency("arrivals: a, served: s")) == []


def test_a_dependency_no_effort_edge_reaches() -> None:
    f = check(_dependency("arrivals: a, served: s", edge="throughput"))
    assert [(x.code, x.node) for x in f] == [("dependency_missing_effort_edges", "D")]
    assert check(_dependency("arrivals: a, served: s", edge="dependency")) == []


def test_a_dependency_with_errors_whose_callers_give_no_attempts() -> None:
    found = check(_dependency("arrivals: a, served: s, errors: t", caller=""))
    assert [(x.code, x.node) for x in found] == [("dependency_retry_pressure_missing", "D")]
    assert "C" in found[0].message
    assert check(_dependency("arrivals: a, served: s, errors: t")) == []


def _dlq(into: str, out: str) -> str:
    return (f"  nodes:\n    - {{id: S, kind: service, semantics: {{errors: t, {FULL}}}}}\n"
            "    - {id: D, kind: dlq, semantics: {arrivals: t, served: s}}\n"
            "    - {id: Z, kind: sink, semantics: {arrivals: s}}\n"
            f"  edges:\n    - {{id: s_d, from: S, to: D, type: {into}}}\n"
            f"    - {{id: d_z, from: D, to: Z, type: {out}}}\n")


@pytest.mark.parametrize(("into", "out", "code", "edge"), [
    ("throughput", "terminal", "dlq_non_terminal_inbound", "s_d"),
    ("terminal", "effort", "dlq_non_terminal_outbound", "d_z"),
])
def test_a_dead_letter_queue_with_an_edge_that_is_not_terminal(into: str, out: str, code: str, edge: str) -> None:
    found = check(_dlq(into, out))
    assert [(f.code, f.node, f.edge, f.severity) for f in found] == [(code, "D", edge, "warning")]
    assert check(_dlq("terminal", "terminal")) == []


def test_an_edge_with_a_lag() -> None:
    body = (f"  nodes:\n    - {{id: S, kind: service, semantics: {{{FULL}}}}}\n"
            "    - {id: Z, kind: sink, semantics: {arrivals: s}}\n  edges:\n    - {from: S, to: Z, lag: LAG}\n")
    found = check(body.replace("LAG", "2"))
    assert [(f.code, f.node, f.edge, f.value) for f in found] == [("edge_behavior_violation_lag", "S", "S-_Z", 2.0)]
    assert check(body.replace("LAG", "0")) == []


def _gated(semantics: str, schedule: str = "{periodBins: 2, capacitySeries: cap}") -> str:
    return (f"  nodes:\n    - {{id: Q, kind: serviceWithBuffer, semantics: {{{semantics}}}, "
            f"dispatchSchedule: {schedule}}}\n")


def test_a_schedule_without_a_served_series() -> None:
    # the queue releases its capacity (outflow = capacity when served is not given)
    found = check(_gated("arrivals: a, capacity: cap"))
    assert [(f.code, f.severity) for f in found] == [("dispatch_missing_served_series", "info")]
    assert check(_gated("arrivals: a, served: s")) == []


def test_a_constraint_without_an_arrivals_series() -> None:
    body = ("  nodes:\n    - {id: S, kind: serviceWithBuffer, constraints: [pool], semantics: {arrivals: a, "
            "served: s}}\n  constraints:\n    - {id: pool, semantics: {served: cap}}\n")
    assert [(f.code, f.node) for f in check(body)] == [("constraint_missing_arrivals", "S")]
    assert check(body.replace("{served: cap}", "{arrivals: a, served: cap}")) == []


def _without(body: str, gone: str) -> list[Finding]:
    """The analyser over a run whose series ``gone`` was not written."""
    lm = load_model(HEAD + NODES + "topology:\n" + body)
    series = {k: v for k, v in evaluate(lm.model).series.items() if k != gone}
    return [f for f in analyse(lm.model, series) if f.code not in WINDOW_CODES]  # window facts: test_windows


@pytest.mark.parametrize(("body", "gone", "code"), [
    (_gated("arrivals: a, served: s"), "cap", "dispatch_capacity_missing"),
    ("  nodes:\n    - {id: S, kind: serviceWithBuffer, constraints: [pool], semantics: {arrivals: a, served: s}}\n"
     "  constraints:\n    - {id: pool, semantics: {arrivals: a, served: cap}}\n", "cap", "constraint_missing_served"),
    ("  nodes:\n    - {id: Q, kind: queue, semantics: {arrivals: a, served: s}}\n", "q_queue",
     "missing_queue_depth_series"),
])
def test_a_series_the_run_did_not_write(body: str, gone: str, code: str) -> None:
    assert codes(_without(body, gone)) == {code}
    assert _without(body, "no-such-series") == []
