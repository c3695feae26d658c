"""
Engine benchmarks, each against a NumPy floor measured in the same run.

    python benchmarks/bench_engine.py [--quick]

The floor does the same arithmetic with raw NumPy calls in a plain Python loop
(no parsing, no graph, no checks), written tight: results go into blocks
allocated once (not per call) through ``out=``, no temporaries per node or bin,
views and constants prepared in advance. That is what evaluation would cost
with zero overhead; FlowTime, which hands back fresh read-only series every
call, also pays for allocating them. Each row times FlowTime and its floor in
turns (medians of several repeats); load and plan time is reported separately
and excluded from the evaluation ratio. The two writers are timed in turns too,
each after ``os.sync()`` (untimed), so pending write-back of one run's files
does not land on the next measurement.
"""

from __future__ import annotations

import argparse
import csv
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from flowtime.artifacts.writer import write_run
from flowtime.engine import plan
from flowtime.model.load import load_model
from flowtime.model.schema import BinUnit, ConstNode, ExprNode, Grid, Model
from table import Row, Target, duration, print_table
from timing import median_time, paired_median_times


def _yaml_list(values: np.ndarray) -> str:
    return "[" + ", ".join(repr(float(v)) for v in values) + "]"


def chain_model(n_expr: int, bins: int, n_base: int = 10) -> tuple[str, list[np.ndarray]]:
    """n_base const nodes + n_expr expr nodes: n_i = base_(i % n_base) * 1.5 + n_(i-1) * 0.5."""
    rng = np.random.default_rng(1)
    bases = [np.round(rng.uniform(0, 100, bins), 3) for _ in range(n_base)]
    lines = ["schemaVersion: 1", f"grid: {{bins: {bins}, binSize: 1, binUnit: minutes}}", "nodes:"]
    for i, b in enumerate(bases):
        lines.append(f"  - {{id: base_{i}, kind: const, values: {_yaml_list(b)}}}")
    for i in range(n_expr):
        prev = f" + n_{i - 1} * 0.5" if i else ""
        lines.append(f"  - {{id: n_{i}, kind: expr, expr: \"base_{i % n_base} * 1.5{prev}\"}}")
    return "\n".join(lines) + "\n", bases


def chain_floor(bases: list[np.ndarray], n_expr: int, *, fresh: bool = False) -> Callable[[], Any]:
    """
    The chain's arithmetic as tight as NumPy goes: every result written into a
    row of one block allocated once (not per call), one scratch row, constants
    as arrays (a ufunc converts a Python float on every call) and the ufuncs
    called directly with positional ``out`` (no operator dispatch). The same
    three operations per node, in the same order, so the same bits.
    ``fresh=True`` allocates the block on every call, as an engine handing
    back new series must (one block: the OS can back it with huge pages).
    """
    bins = bases[0].size
    kept = np.empty((n_expr, bins))
    kept_rows = list(kept)
    tmp = np.empty(bins)
    c15, c05 = np.full(bins, 1.5), np.full(bins, 0.5)
    sources = [bases[i % len(bases)] for i in range(n_expr)]
    mul, add = np.multiply, np.add

    def run() -> np.ndarray:
        out = np.empty((n_expr, bins)) if fresh else kept
        rows = list(out) if fresh else kept_rows
        prev = mul(sources[0], c15, rows[0])
        for base, o in zip(sources[1:], rows[1:], strict=True):
            mul(base, c15, o)
            mul(prev, c05, tmp)
            add(o, tmp, o)
            prev = o
        return out

    return run


def queues_model(n_queues: int, bins: int) -> tuple[Model, np.ndarray, np.ndarray]:
    """Built in code: the same model as YAML would be ~100 MB of numbers."""
    rng = np.random.default_rng(2)
    arrivals = np.round(rng.uniform(0, 10, (n_queues, bins)), 2)
    capacity = np.round(rng.uniform(3, 7, (n_queues, bins)), 2)
    nodes: list[Any] = []
    for q in range(n_queues):
        nodes.append(ConstNode(id=f"arr_{q}", values=arrivals[q]))
        nodes.append(ConstNode(id=f"cap_{q}", values=capacity[q]))
        nodes.append(ExprNode(id=f"q_{q}", kind="expr", expr=f"MAX(0, SHIFT(q_{q}, 1) + arr_{q} - cap_{q})"))
    grid = Grid(bins=bins, bin_size=1, bin_unit=BinUnit.MINUTES)
    return Model(grid=grid, nodes=tuple(nodes)), arrivals, capacity


def queues_floor_stepped(arrivals: np.ndarray, capacity: np.ndarray) -> Callable[[], Any]:
    """
    The same recurrence, one NumPy step per bin across all queues: bin-major
    copies of the inputs made once, the result block allocated once, every
    row view taken in advance, and three ufuncs per bin writing in place.
    (The engine's MAX also adds 0.0, so that a zero is +0 on every CPU: one
    operation more per bin than this floor; decision 0003.)
    """
    a = np.ascontiguousarray(arrivals.T)
    c = np.ascontiguousarray(capacity.T)
    out = np.empty_like(a)
    tmp = np.empty(a.shape[1])
    zero = np.zeros(a.shape[1])
    steps = list(zip(a, c, out, [zero, *out[:-1]], strict=True))  # SHIFT reads 0 before the first bin
    add, sub, maximum = np.add, np.subtract, np.maximum

    def run() -> np.ndarray:
        for at, ct, o, prev in steps:
            add(prev, at, tmp)
            sub(tmp, ct, tmp)
            maximum(tmp, zero, out=o)  # (NumPy 2 wants out= for maximum)
        return out

    return run


def delay_chain_model(stages: int, bins: int) -> tuple[Model, np.ndarray, np.ndarray]:
    """
    A pipeline of delays, each stage with its own rate: stage k keeps what it
    holds, gets what stage k-1 let out a bin ago, and lets out ``rate_k`` of it.
    Feedback loops that read one another's past - stepped together as a wave.
    """
    rng = np.random.default_rng(3)
    inflow = np.round(rng.uniform(0, 10, bins), 2)
    rates = np.round(0.05 + 0.2 * rng.random(stages), 4)
    nodes: list[Any] = [ConstNode(id="inflow", values=inflow)]
    for k in range(stages):
        src = "inflow" if k == 0 else f"out_{k - 1}"
        stock = f"SHIFT(s_{k}, 1) + (SHIFT({src}, 1) - SHIFT(out_{k}, 1))"
        nodes.append(ExprNode(id=f"s_{k}", kind="expr", expr=stock))
        nodes.append(ExprNode(id=f"out_{k}", kind="expr", expr=f"s_{k} * {float(rates[k])!r}"))
    return Model(grid=Grid(bins=bins, bin_size=1, bin_unit=BinUnit.MINUTES), nodes=tuple(nodes)), inflow, rates


def delay_chain_floor(inflow: np.ndarray, rates: np.ndarray) -> Callable[[], Any]:
    """
    The same recurrence, one NumPy step per bin across all stages, tight: the
    outflows sit in a ``(bins, stages + 1)`` block whose column 0 holds the
    inflow, so "what each stage receives" and "what it lets out" are two
    slices of one row (no gather), every view is taken in advance, the
    blocks are allocated once, and three ufuncs per bin write in place.
    """
    bins, stages = inflow.size, rates.size
    s = np.zeros((bins, stages))
    o = np.zeros((bins, stages + 1))
    o[:, 0] = inflow
    tmp = np.empty(stages)
    steps = [(o[t - 1, :-1], o[t - 1, 1:], s[t - 1], s[t], o[t, 1:]) for t in range(1, bins)]
    sub, add, mul = np.subtract, np.add, np.multiply

    def run() -> tuple[np.ndarray, np.ndarray]:
        for inp, out_prev, s_prev, s_now, o_now in steps:
            sub(inp, out_prev, tmp)
            add(s_prev, tmp, s_now)
            mul(s_now, rates, o_now)
        return s, o[:, 1:]

    return run


def queues_closed_form(arrivals: np.ndarray, capacity: np.ndarray) -> Callable[[], Any]:
    """Lindley's recursion in closed form (cumsum / running minimum, in place): no per-bin loop at all."""
    run_sum = np.empty_like(arrivals)
    low = np.empty_like(arrivals)
    out = np.empty_like(arrivals)

    def run() -> np.ndarray:
        np.subtract(arrivals, capacity, out=run_sum)
        np.cumsum(run_sum, axis=1, out=run_sum)
        np.minimum.accumulate(run_sum, axis=1, out=low)
        np.minimum(low, 0.0, out=low)
        return np.subtract(run_sum, low, out=out)

    return run


def naive_writer(series: dict[str, np.ndarray], root: Path) -> None:
    root.mkdir(parents=True, exist_ok=True)
    for name, values in series.items():
        with open(root / f"{name}.csv", "w", newline="") as f:
            w = csv.writer(f, lineterminator="\n")
            w.writerow(["t", "value"])
            for t, v in enumerate(values):
                w.writerow([t, v])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    ap.add_argument("--quick", action="store_true", help="smaller sizes, fewer repeats")
    args = ap.parse_args()
    q = args.quick
    repeats = 3 if q else 7
    rows: list[Row] = []

    for n_expr, bins in ((1000, 1000), (10_000, 100)):
        if q:
            n_expr //= 10
        text, bases = chain_model(n_expr, bins)
        t0 = time.perf_counter()
        graph = plan(load_model(text).model)
        planned = time.perf_counter() - t0
        floor_fn = chain_floor(bases, n_expr)
        # Same numbers as the floor, checked once.
        res, ref = graph.evaluate(), floor_fn()
        assert all(np.array_equal(res[f"n_{i}"], ref[i]) for i in range(n_expr)), "results differ"
        ours, floor = paired_median_times(graph.evaluate, floor_fn, max(repeats, 15))
        rows.append(Row(f"{n_expr} expr nodes x {bins} bins", ours, floor, Target.at_most(2),
                        f"tight NumPy floor; load + plan {duration(planned)}"))
        ours, floor = paired_median_times(graph.evaluate, chain_floor(bases, n_expr, fresh=True), max(repeats, 15))
        rows.append(Row("  (same, floor with a fresh block per call)", ours, floor, Target.info(),
                        "the floor pays for new memory too"))

    n_q, q_bins = (100, 10_000) if q else (100, 100_000)
    qmodel, arrivals, capacity = queues_model(n_q, q_bins)
    graph = plan(qmodel)
    floor_fn = queues_floor_stepped(arrivals, capacity)
    res, ref = graph.evaluate(), floor_fn()
    assert all(np.array_equal(res[f"q_{i}"], ref[:, i]) for i in range(n_q)), "queue results differ"
    ours, stepped = paired_median_times(graph.evaluate, floor_fn, max(1, repeats // 2))
    closed = median_time(queues_closed_form(arrivals, capacity), repeats)
    rows.append(Row(f"{n_q} feedback queues x {q_bins} bins", ours, stepped, Target.at_most(5),
                    "floor: per-bin NumPy across queues"))
    rows.append(Row("  (same, vs closed-form cumsum)", ours, closed, Target.info(), "not the same arithmetic"))

    n_d, d_bins = (100, 1000) if q else (1000, 1000)
    dmodel, inflow, rates = delay_chain_model(n_d, d_bins)
    graph = plan(dmodel)
    floor_fn = delay_chain_floor(inflow, rates)
    res = graph.evaluate()
    s_ref, o_ref = floor_fn()
    assert all(np.array_equal(res[f"s_{k}"], s_ref[:, k]) and np.array_equal(res[f"out_{k}"], o_ref[:, k])
               for k in range(n_d)), "delay chain results differ"
    ours, floor = paired_median_times(graph.evaluate, floor_fn, max(repeats, 15))
    rows.append(Row(f"{n_d}-stage delay chain x {d_bins} bins", ours, floor, Target.at_most(5),
                    "a rate per stage; floor: per-bin NumPy across stages"))

    n_s, s_bins = (200, 1000) if q else (1000, 1000)
    text, _ = chain_model(n_s, s_bins, n_base=10)
    loaded = load_model(text)
    results = plan(loaded.model).evaluate()
    outputs = results.outputs()
    label = f"write {len(results.output_ids)} series x {s_bins} bins"
    # The target row writes where tempfile does (a disk, usually); a memory file
    # system, where there is one, shows the same work without the disk.
    places: list[tuple[str | None, str, Target, str]] = [
        (None, label, Target.faster(4), "baseline: csv.writer per row")]
    if Path("/dev/shm").is_dir() and os.access("/dev/shm", os.W_OK):
        places.append(("/dev/shm", "  (same, on tmpfs /dev/shm)", Target.info(faster=True),
                       "no disk: formatting and syscalls only"))
    for where, name, target, note in places:
        tmp = Path(tempfile.mkdtemp(prefix="ftbench-", dir=where))
        try:
            names = (str(i) for i in range(10**6))
            ours, naive = paired_median_times(
                lambda t=tmp, c=names: write_run(loaded, results, t / f"o{next(c)}"),
                lambda t=tmp, c=names: naive_writer(outputs, t / f"n{next(c)}"),
                max(repeats, 9), settle_disk=True)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        rows.append(Row(name, ours, naive, target, note))

    print_table(rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
