"""
The analyser's vocabulary: every code it may report, with its severity, a one-line hint and what it needs.

The names and severities are the reference's (``InvariantAnalyzer``,
``engine-head.md`` §13); codes that cannot occur in this engine are left out
(decision 0026). ``needs`` says what a check reads:

* ``model`` - the model alone (``invariants.check_model``: Sim and validation use it);
* ``series`` - the evaluated series of the topology nodes' semantics;
* ``edges`` - the edge ``flowVolume`` series as well;
* ``classes`` - the per-class parts (``N#class#C``) as well.

>>> CODES["queue_depth_mismatch"].severity, CODES["missing_capacity_series"].severity
('warning', 'info')
>>> sorted({c.needs for c in CODES.values()})
['classes', 'edges', 'model', 'series']
"""

from __future__ import annotations

from flowtime.records import record

NEEDS = ("model", "series", "edges", "classes")


@record
class CodeInfo:
    severity: str  # one of findings.SEVERITIES
    hint: str  # what to look at, or how to fix it
    needs: str  # one of NEEDS


def _w(hint: str, needs: str = "series") -> CodeInfo:
    return CodeInfo("warning", hint, needs)


def _i(hint: str, needs: str = "series") -> CodeInfo:
    return CodeInfo("info", hint, needs)


_NEGATIVE = "a count of entities cannot be negative; check the expression that produces it"

CODES: dict[str, CodeInfo] = {
    # non-negativity
    "arrivals_negative": _w(_NEGATIVE),
    "served_negative": _w(_NEGATIVE),
    "errors_negative": _w(_NEGATIVE),
    "attempts_negative": _w(_NEGATIVE),
    "failures_negative": _w(_NEGATIVE),
    "exhausted_failures_negative": _w(_NEGATIVE),
    "queue_negative": _w("a queue cannot hold less than nothing; check what drains it"),
    "retry_echo_negative": _w("the retry echo is a convolution of failures; check its kernel and the failures"),
    "retry_budget_negative": _w("a remaining retry budget below 0 means more retries than allowed; check its "
                                "expression"),
    # conservation at a node
    "served_exceeds_arrivals": _w("a service cannot complete more than arrives; cap served with MIN(arrivals, ...) "
                                  "or model the backlog as a queue (serviceWithBuffer)"),
    "served_exceeds_capacity": _w("served is above capacity x parallelism; cap it with MIN(capacity, ...) or raise "
                                  "the capacity"),
    "errors_exceed_arrivals": _w("more errors than arrivals; errors should be a share of what arrives"),
    "attempts_below_arrivals": _w("every arrival is at least one attempt; attempts should be arrivals plus retries"),
    "failures_exceed_attempts": _w("more failed attempts than attempts; failures should be a share of attempts"),
    "exhausted_exceeds_failures": _w("exhausted failures are the failures that ran out of retries; they cannot "
                                     "exceed failures"),
    "exhausted_exceeds_errors": _w("exhausted failures cannot exceed errors (no failures series is given)"),
    "queue_depth_mismatch": _w("the queue series does not follow max(0, previous + inflow - outflow - loss); "
                               "let FlowTime compute the depth (leave semantics.queueDepth out) or fix the series"),
    # edges
    "edge_flow_mismatch_outgoing": _w("served differs from what its outgoing edges carry; check the edge weights",
                                      "edges"),
    "edge_flow_mismatch_incoming": _w("arrivals differ from what the incoming edges carry; point semantics.arrivals "
                                      "at the upstream flow, or fix the edges", "edges"),
    "edge_behavior_violation_lag": _w("an edge lag shifts only the edge's own series; model transit time as an "
                                      "explicit node (SHIFT)", "model"),
    "edge_class_mismatch": _w("a class's flow differs from what the edges carry of that class; check routers and "
                              "class routes", "classes"),
    "edge_class_partial_coverage": _w("some class reaching the node is carried by none of its edges; check the "
                                      "routes and edges of that class", "classes"),
    # classes and routers
    "router_missing_class_route": _w("a class reaches the router but no route takes it; add a class route or a "
                                     "weight route", "classes"),
    "router_class_leakage": _w("a router's routes do not add up to its source for some class; check overlapping "
                               "class routes", "classes"),
    "class_series_missing_served": _w("classes arrive but the served series carries none; compute served from "
                                      "the arrivals (MIN(arrivals, capacity)) so the classes flow through",
                                      "classes"),
    "class_series_missing_errors": _w("classes arrive but the errors series carries none; compute errors from the "
                                      "arrivals so the classes flow through", "classes"),
    "class_series_partial_served": _w("served carries only some of the classes that arrive; check what it is "
                                      "computed from", "classes"),
    "class_series_partial_errors": _w("errors carry only some of the classes that arrive; check what they are "
                                      "computed from", "classes"),
    # topology and semantics, from the model alone
    "constraint_missing_arrivals": _w("the constraint's semantics.arrivals names no series; it is not used, but "
                                      "name the total demand for the record", "model"),
    "constraint_missing_served": _w("the constraint's semantics.served (its capacity) names no series; nothing "
                                    "is capped", "model"),
    "dlq_non_terminal_inbound": _w("a dead-letter queue should only receive terminal edges; give the edge "
                                   "`type: terminal`", "model"),
    "dlq_non_terminal_outbound": _w("a dead-letter queue should only send terminal edges; give the edge "
                                    "`type: terminal`", "model"),
    "dispatch_capacity_missing": _w("the dispatch schedule's capacitySeries names no series; add the node or drop "
                                    "capacitySeries", "model"),
    "dispatch_missing_served_series": _i("a dispatch schedule gates served, but the node has no served series",
                                         "model"),
    "dispatch_never_releases": _i("the gate never released anything although work arrived; check periodBins and "
                                  "phaseOffset against the grid"),
    "queue_latency_unreported": _i("latency is undefined where served is 0 and work is queued; expected while a "
                                   "service is stopped"),
    "queue_latency_gate_closed": _i("the dispatch gate was closed while work was queued; latency shows as paused "
                                    "there"),
    "missing_capacity_series": _i("give semantics.capacity so utilization can be computed", "model"),
    "missing_served_series": _i("give semantics.served so throughput and utilization can be computed", "model"),
    "missing_queue_depth_series": _i("give semantics.queueDepth (or let FlowTime compute it) so the backlog is "
                                     "shown", "model"),
    "missing_processing_time_series": _i("give semantics.processingTimeMsSum so service time can be computed",
                                         "model"),
    "missing_served_count_series": _i("give semantics.servedCount so service time can be computed", "model"),
    "missing_exhausted_failures_series": _w("maxAttempts is set; give semantics.exhaustedFailures (the failures "
                                            "that ran out of retries)", "model"),
    "missing_retry_budget_series": _w("maxAttempts is set; give semantics.retryBudgetRemaining", "model"),
    "capacity_all_zero": _i("the effective capacity is 0 in every bin, so utilization is undefined; check the "
                            "capacity series and parallelism"),
    "missing_dependency_arrivals": _i("a dependency needs semantics.arrivals (the load it receives)", "model"),
    "missing_dependency_served": _i("a dependency needs semantics.served (the load it handles)", "model"),
    "dependency_missing_effort_edges": _i("add an effort or dependency edge from the callers so their attempts "
                                          "reach the dependency", "model"),
    "dependency_retry_pressure_missing": _i("the dependency has errors but no caller gives semantics.attempts; "
                                            "retry pressure on it is invisible", "model"),
}


def _window_codes() -> dict[str, CodeInfo]:
    # the window facts live beside their computation (analysis.windows); one table still names every code
    from flowtime.analysis.windows import WINDOW_CODES

    return {code: CodeInfo(severity, hint, "series") for code, (severity, hint) in WINDOW_CODES.items()}


CODES.update(_window_codes())
