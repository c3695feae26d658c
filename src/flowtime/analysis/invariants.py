"""
The invariant analyser: what a run's series say that cannot be right, located in the topology and in time.

``analyse(model, series)`` checks each topology node's semantics series
(``engine-head.md`` §13, the reference's ``InvariantAnalyzer``): counts below
0, conservation at the node (served <= arrivals, <= capacity x parallelism,
...), the queue recurrence, conservation along the edges (their
``flowVolume`` series), per-class coverage and routing, and the model-level
checks of ``analysis.static``. ``check_model(model)`` is the model-level part
alone. Every check is a few whole-array NumPy operations per node: the writer
runs the analyser on every run.

A check compares with ``settings.tolerance`` (absolute); a NaN in a series
fails no comparison, so it is reported by the engine's non-finite warning,
not here. Findings come sorted by topology node, then code;
``settings.ignore`` drops codes.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np
import numpy.typing as npt

from flowtime.analysis.findings import Finding, offending
from flowtime.analysis.metrics import derive
from flowtime.analysis.static import Index, finding, index, model_findings, series_of
from flowtime.analysis.windows import window_facts
from flowtime.model.analysis_settings import AnalysisSettings
from flowtime.model.decompose import split_class_part_id
from flowtime.model.edges import edge_measure, edge_name, edge_type
from flowtime.model.queues import DispatchSchedule, QueueNode
from flowtime.model.routers import RouterNode
from flowtime.model.schema import Model
from flowtime.model.topology import Topology, TopologyEdge, TopologyNode

Array = npt.NDArray[np.float64]
Parts = dict[str, dict[str, Array]]  # node -> class -> its part

NEGATIVE = (("arrivals", "arrivals_negative"), ("served", "served_negative"), ("errors", "errors_negative"),
            ("attempts", "attempts_negative"), ("failures", "failures_negative"),
            ("exhaustedFailures", "exhausted_failures_negative"), ("queueDepth", "queue_negative"),
            ("retryEcho", "retry_echo_negative"), ("retryBudgetRemaining", "retry_budget_negative"))


def check_model(model: Model) -> list[Finding]:
    """The findings the model alone gives (no run): missing series, edge types and lags."""
    return _finish(model, model_findings(model, set(model.node_ids)), model.analysis)


def analyse(model: Model, series: Mapping[str, Array], settings: AnalysisSettings | None = None,
            metrics: Mapping[str, Any] | None = None) -> list[Finding]:
    """
    Every finding for ``model`` evaluated to ``series`` (node id -> float64
    array): the invariants, then the window facts over the whole run;
    ``settings`` defaults to the model's ``analysis:`` block. ``metrics``
    (``analysis.metrics.derive``'s) is derived here when the caller has none.
    """
    settings = settings or model.analysis
    if metrics is None and model.topology is not None:
        metrics = derive(model, series, settings)
    idx = index(model)
    out = model_findings(model, series.keys(), idx)
    topology: Topology | None = model.topology
    routers: list[RouterNode] = [n for n in model.nodes if isinstance(n, RouterNode)]
    if topology is not None or routers:
        with np.errstate(all="ignore"):
            parts = _parts(series)
            if topology is not None:
                for t in topology.nodes:
                    out.extend(_Node(model, idx, t, series, parts, settings.tolerance, metrics).findings())
            out.extend(_routers(routers, parts, settings.tolerance))
    if metrics:
        out.extend(window_facts(model, metrics, settings))
    return _finish(model, out, settings)


def _finish(model: Model, found: list[Finding], settings: AnalysisSettings) -> list[Finding]:
    order = {t.id: i for i, t in enumerate(model.topology.nodes)} if model.topology is not None else {}
    kept = [f for f in found if f.code not in settings.ignore]
    return sorted(kept, key=lambda f: (order.get(f.node or "", len(order)), f.node or "", f.code, f.edge or "",
                                       f.bins))


def _parts(series: Mapping[str, Array]) -> Parts:
    out: Parts = {}
    for name, arr in series.items():
        got = split_class_part_id(name)
        if got is not None:
            out.setdefault(got[0], {})[got[1]] = arr
    return out


def _finite(x: Array) -> Array:
    """``x`` with non-finite values as 0, as a queue reads its inputs."""
    return np.where(np.isfinite(x), x, 0.0)


def _unlag(x: Array, lag: int) -> Array:
    """An edge series before its lag (NaN where the lag pushed the value past the grid)."""
    if lag <= 0:
        return x
    out = np.full_like(x, np.nan)
    out[: max(x.size - lag, 0)] = x[lag:]
    return out


def _carries_flow(e: TopologyEdge) -> bool:
    """An edge with a flowVolume: throughput, or effort of measure served (``model.edges``)."""
    kind = edge_type(e)
    return kind == "throughput" or (kind == "effort" and edge_measure(e) == "served")


class _Node:
    """The series checks of one topology node."""

    def __init__(self, model: Model, idx: Index, t: TopologyNode, series: Mapping[str, Array],
                 parts: Parts, tol: float, metrics: Mapping[str, Any] | None) -> None:
        self.model, self.idx, self.t, self.series, self.parts, self.tol = model, idx, t, series, parts, tol
        self.metrics = metrics

    def get(self, field: str) -> Array | None:
        name = series_of(self.t, field)
        return self.series.get(name) if name is not None else None

    def found(self, code: str, message: str, mask: npt.NDArray[np.bool_], value: float | None,
              edge: str | None = None) -> Finding:
        bins, count = offending(mask)
        return finding(code, message, self.t.id, edge=edge, bins=bins, count=count, value=value)

    def findings(self) -> Iterator[Finding]:
        t, tol = self.t, self.tol
        for field, code in NEGATIVE:
            x = self.get(field)
            if x is not None:
                bad = x < -tol
                if bad.any():
                    yield self.found(code, f"{field} is below 0", bad, float(x[np.argmax(bad)]))
        arrivals, served, errors = self.get("arrivals"), self.get("served"), self.get("errors")
        attempts, failures, exhausted = self.get("attempts"), self.get("failures"), self.get("exhaustedFailures")
        capacity = self.effective_capacity()
        pairs: list[tuple[str, Array | None, Array | None, bool, str]] = []
        if t.kind not in ("serviceWithBuffer", "dependency"):
            pairs.append(("served_exceeds_arrivals", served, arrivals, True, "served exceeds arrivals"))
        if t.kind in ("service", "router", "serviceWithBuffer"):
            pairs.append(("served_exceeds_capacity", served, capacity, True,
                          "served exceeds the effective capacity (capacity x parallelism)"))
        pairs += [("errors_exceed_arrivals", errors, arrivals, True, "errors exceed arrivals"),
                  ("attempts_below_arrivals", attempts, arrivals, False, "attempts are below arrivals"),
                  ("failures_exceed_attempts", failures, attempts, True, "failures exceed attempts")]
        if failures is not None:
            pairs.append(("exhausted_exceeds_failures", exhausted, failures, True,
                          "exhausted failures exceed failures"))
        else:
            pairs.append(("exhausted_exceeds_errors", exhausted, errors, True, "exhausted failures exceed errors"))
        for code, lhs, rhs, above, message in pairs:
            if lhs is not None and rhs is not None:
                f = self.compare(code, lhs, rhs, above, message)
                if f is not None:
                    yield f
        yield from self.queue()
        yield from self.edges(arrivals, served)
        yield from self.class_coverage()
        if capacity is not None and bool(np.all(np.abs(capacity) <= tol)):
            yield finding("capacity_all_zero", "the effective capacity is 0 in every bin", t.id)
        yield from self.dispatch(arrivals, served)

    def compare(self, code: str, lhs: Array, rhs: Array, above: bool, message: str) -> Finding | None:
        """lhs > rhs + tol (``above``) or lhs < rhs - tol; the value is the worst ratio lhs / rhs."""
        diff = lhs - rhs
        bad = diff > self.tol if above else diff < -self.tol
        if not bad.any():
            return None
        base = np.abs(rhs[bad])
        ratio = np.abs(lhs[bad] / np.where(base <= self.tol, self.tol, base))
        # the worst ratio of a "below" check is its smallest (the reference takes the largest there too)
        return self.found(code, message, bad, float(ratio.max() if above else ratio.min()))

    def effective_capacity(self) -> Array | None:
        if self.metrics is not None:
            m = self.metrics.get(self.t.id)
            eff = getattr(m, "series", {}).get("effectiveCapacity") if m is not None else None
            if eff is not None:
                return eff  # type: ignore[no-any-return]
        capacity = self.get("capacity")
        if capacity is None:
            return None
        p = (self.t.semantics or {}).get("parallelism")
        if isinstance(p, float):
            return capacity * p
        factor = self.get("parallelism") if p is not None else None
        return capacity if factor is None else np.where(np.isfinite(factor), capacity * factor, capacity)

    # -- the queue recurrence --------------------------------------------------------------------

    def queue(self) -> Iterator[Finding]:
        """
        Each bin's depth against ``max(0, Q[t-1] + in - out - loss)`` (capped by the
        WIP limit) with Q[t-1] the *reported* previous depth and Q[-1] the initial
        one: a mismatch is located where it starts, and a queue FlowTime computes
        follows the same sums in the same order, so it never mismatches.
        """
        t = self.t
        q = self.get("queueDepth")
        if q is None:
            return
        own = self.idx.queue(series_of(t, "queueDepth"))
        if own is not None:
            inputs = self._queue_inputs(own)
        else:
            inputs = self._declared_inputs(t)
        if inputs is None:
            return
        inflow, out, loss, initial, schedule, limit = inputs
        if schedule is not None:
            out = self._gated(out, schedule)
        prev = np.concatenate(([0.0], q[:-1]))
        if initial:
            prev[0] += initial
        total = prev + inflow - _finite(out)
        if loss is not None:
            total = total - loss
        expected = np.maximum(0.0, total)
        if limit is not None:
            expected = np.minimum(expected, limit)
        diff = np.abs(q - expected)
        bad = diff > self.tol
        if bad.any():
            yield self.found("queue_depth_mismatch", "the queue depth does not follow max(0, previous + inflow - "
                             "outflow - loss)", bad, float(diff[bad].max()))

    def _queue_inputs(self, q: QueueNode) -> tuple[Array, Array, Array | None, float, DispatchSchedule | None,
                                                   Array | None] | None:
        s = self.series
        names = [q.inflow, q.outflow, *q.extra_inflows, *([q.loss] if q.loss else [])]
        if any(n not in s for n in names):
            return None
        inflow = _finite(s[q.inflow])
        for extra in q.extra_inflows:
            inflow = inflow + s[extra]
        loss = _finite(s[q.loss]) if q.loss else None
        limit = self._limit(q.wip_limit, q.wip_limit_series)
        return inflow, s[q.outflow], loss, q.initial, q.dispatch, limit

    def _declared_inputs(self, t: TopologyNode) -> tuple[Array, Array, Array | None, float, DispatchSchedule | None,
                                                         Array | None] | None:
        arrivals, served, errors = self.get("arrivals"), self.get("served"), self.get("errors")
        if arrivals is None or served is None:
            return None
        loss = _finite(errors) if errors is not None else None
        limit = self._limit(t.wip_limit, t.wip_limit_series)
        return _finite(arrivals), served, loss, t.initial or 0.0, self.idx.schedule(t), limit

    def _limit(self, scalar: float | None, name: str | None) -> Array | None:
        if name is not None:
            x = self.series.get(name)
            return None if x is None else np.maximum(0.0, _finite(x))
        if scalar is not None:
            return np.full(self.model.grid.bins, scalar)
        return None

    def _gated(self, out: Array, schedule: DispatchSchedule) -> Array:
        """Outflow only on dispatch bins, capped there by a finite capacity (``model.queues``)."""
        released = out
        cap = self.series.get(schedule.capacity) if schedule.capacity else None
        if cap is not None:
            released = np.where(np.isfinite(cap), np.minimum(out, cap), out)
        return np.where(schedule.gate(out.size) != 0, released, 0.0)

    # -- edges and classes -----------------------------------------------------------------------

    def edges(self, arrivals: Array | None, served: Array | None) -> Iterator[Finding]:
        """Served against the outgoing edges' flows, arrivals against the incoming ones' (already lagged)."""
        t = self.t
        out_edges = [e for e in self.idx.outgoing(t.id) if _carries_flow(e) and edge_measure(e) == "served"]
        in_edges = [e for e in self.idx.incoming(t.id) if _carries_flow(e)]
        for code, node_series, edges, lagged, what in (
                ("edge_flow_mismatch_outgoing", served, out_edges, False, "served differs from the sum of the "
                 "outgoing edges' flows"),
                ("edge_flow_mismatch_incoming", arrivals, in_edges, True, "arrivals differ from the sum of the "
                 "incoming edges' flows")):
            if node_series is None or not edges:
                continue
            flows = [self.series.get(f"edge_{edge_name(e)}_flowVolume") for e in edges]
            if any(f is None for f in flows):
                continue  # an edge without a flow: the sum is not known
            total = np.zeros_like(node_series)
            for e, f in zip(edges, flows, strict=True):
                assert f is not None
                total = total + (f if lagged else _unlag(f, e.lag))
            diff = np.abs(node_series - total)
            bad = diff > self.tol
            if bad.any():
                yield self.found(code, f"{what} ({', '.join(edge_name(e) for e in edges)})", bad,
                                 float(diff[bad].max()), edge=edge_name(edges[0]))
            yield from self.edge_classes(node_series, edges, lagged)

    def edge_classes(self, node_series: Array, edges: list[TopologyEdge], lagged: bool) -> Iterator[Finding]:
        """Each class's part of the node's series against the edges' parts of that class."""
        field = "arrivals" if lagged else "served"
        name = series_of(self.t, field)
        mine = self.parts.get(name or "")
        carried = [(e, self.parts.get(f"edge_{edge_name(e)}_flowVolume", {})) for e in edges]
        if not mine or not any(p for _, p in carried):
            return
        covered: set[str] = set()
        bad = np.zeros(node_series.size, dtype=bool)
        worst = 0.0
        for cls, part in mine.items():
            total = np.zeros_like(part)
            for e, p in carried:
                if cls in p:
                    covered.add(cls)
                    total = total + (p[cls] if lagged else _unlag(p[cls], e.lag))
            diff = np.abs(part - total)
            wrong = diff > self.tol
            if wrong.any():
                bad |= wrong
                worst = max(worst, float(diff[wrong].max()))
        if bad.any():
            missing = [c for c in mine if c not in covered]
            code = "edge_class_partial_coverage" if missing else "edge_class_mismatch"
            detail = f"; no edge carries class {', '.join(missing)}" if missing else ""
            yield self.found(code, f"the per-class {field} differ from the edges' per-class flows{detail}", bad,
                             worst, edge=edge_name(edges[0]))

    def class_coverage(self) -> Iterator[Finding]:
        """Classes that arrive and that served (errors) do not carry, where those are not 0 throughout."""
        arriving = self.parts.get(series_of(self.t, "arrivals") or "")
        if not arriving:
            return
        for field in ("served", "errors"):
            name = series_of(self.t, field)
            x = self.series.get(name) if name is not None else None
            if x is None or (np.isfinite(x).all() and bool(np.all(np.abs(x) <= self.tol))):
                continue
            carried = self.parts.get(name or "", {})
            missing = [c for c in arriving if c not in carried]
            if not carried:
                yield finding(f"class_series_missing_{field}", f"{field} '{name}' carries none of the classes that "
                              f"arrive ({', '.join(arriving)})", self.t.id)
            elif missing:
                yield finding(f"class_series_partial_{field}", f"{field} '{name}' does not carry class(es) "
                              f"{', '.join(missing)}", self.t.id)

    # -- dispatch and latency ----------------------------------------------------------------------

    def dispatch(self, arrivals: Array | None, served: Array | None) -> Iterator[Finding]:
        t, tol = self.t, self.tol
        schedule = self.idx.schedule(t)
        q = self.get("queueDepth")
        terminal_queue = t.kind == "queue" and bool(self.idx.incoming(t.id)) and all(
            edge_type(e) == "terminal" for e in self.idx.incoming(t.id)) and not self.idx.outgoing(t.id)
        if t.kind not in ("dlq", "serviceWithBuffer") and not terminal_queue and q is not None and served is not None:
            stalled = np.isfinite(q) & np.isfinite(served) & (served <= tol) & (np.abs(q) > tol)
            if stalled.any():
                code = "queue_latency_gate_closed" if schedule is not None else "queue_latency_unreported"
                why = "the dispatch gate was closed" if schedule is not None else "nothing was served"
                yield self.found(code, f"work was queued while {why}: latency is undefined there", stalled,
                                 float(q[np.argmax(stalled)]))
        if schedule is not None and arrivals is not None and served is not None:
            arrived = float(np.maximum(0.0, _finite(arrivals)).sum())
            if arrived > tol and float(np.maximum(0.0, _finite(served)).sum()) <= tol:
                yield finding("dispatch_never_releases", f"{arrived:g} arrived but the schedule (every "
                              f"{schedule.period} bins from bin {schedule.phase}) released nothing", t.id,
                              value=arrived)


def _routers(routers: list[RouterNode], parts: Parts, tol: float) -> Iterator[Finding]:
    """Classes a router leaves without a route, or routes more or less of than its source holds."""
    for r in routers:
        src = parts.get(r.source, {})
        weighted = [x for x in r.routes if not x.by_class]
        claimed = set(r.claimed())
        left = [c for c in src if c not in claimed and bool(np.any(np.abs(src[c]) > tol))]
        if left and not weighted:
            mask = np.abs(src[left[0]]) > tol
            bins, count = offending(mask)
            yield finding("router_missing_class_route", f"no route takes class(es) {', '.join(left)} of "
                          f"'{r.source}' and there is no weight route", r.id, bins=bins, count=count,
                          value=float(src[left[0]][mask].sum()))
        for c, flow in src.items():
            if c in left and not weighted:
                continue  # dropped, and said so once (above)
            routed = np.zeros_like(flow)
            for x in r.routes:
                if c in x.classes:
                    routed = routed + flow
                elif not x.by_class and c not in claimed:
                    routed = routed + flow * r.fraction(x)
            gap = np.abs(routed - flow)
            bad = gap > tol
            if bad.any():
                bins, count = offending(bad)
                yield finding("router_class_leakage", f"the routes send {float(routed.sum()):g} of class {c}, "
                              f"whose source '{r.source}' holds {float(flow.sum()):g}", r.id, bins=bins,
                              count=count, value=float(gap[bad].max()))
