"""
Engine benchmarks, each against a NumPy floor measured in the same run.

    python benchmarks/bench_engine.py [--quick]

The floor does the same arithmetic with raw NumPy calls in a plain Python loop
(no parsing, no graph, no checks): what evaluation would cost with zero
overhead. Times are medians of several repeats; compile/parse time is reported
separately and excluded from the evaluation ratio. The two writers are timed in
turns, each after ``os.sync()`` (untimed), so pending write-back of one run's
files does not land on the next measurement.
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
from flowtime.engine import compile_model, evaluate
from flowtime.model.load import load_model
from flowtime.model.schema import BinUnit, ConstNode, ExprNode, Grid, Model
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


def chain_floor(bases: list[np.ndarray], n_expr: int) -> Callable[[], Any]:
    n_base = len(bases)

    def run() -> list[np.ndarray]:
        out: list[np.ndarray] = []
        prev = None
        for i in range(n_expr):
            v = bases[i % n_base] * 1.5
            if prev is not None:
                v = v + prev * 0.5
            out.append(v)
            prev = v
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
    """The same recurrence, one NumPy step per bin across all queues."""
    a = np.ascontiguousarray(arrivals.T)
    c = np.ascontiguousarray(capacity.T)

    def run() -> np.ndarray:
        out = np.zeros_like(a)
        prev = np.zeros(a.shape[1])
        for t in range(a.shape[0]):
            prev = np.maximum(0.0, prev + a[t] - c[t])
            out[t] = prev
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
    """The same recurrence, one NumPy step per bin across all stages."""
    bins, stages = inflow.size, rates.size

    def run() -> tuple[np.ndarray, np.ndarray]:
        s = np.zeros((bins, stages))
        o = np.zeros((bins, stages))
        inp = np.zeros(stages)
        for t in range(1, bins):
            inp[0] = inflow[t - 1]
            inp[1:] = o[t - 1, :-1]
            s[t] = s[t - 1] + (inp - o[t - 1])
            o[t] = s[t] * rates
        return s, o

    return run


def queues_closed_form(arrivals: np.ndarray, capacity: np.ndarray) -> Callable[[], Any]:
    """Lindley's recursion in closed form (cumsum / running minimum): no per-bin loop at all."""

    def run() -> np.ndarray:
        s = np.cumsum(arrivals - capacity, axis=1)
        return s - np.minimum(np.minimum.accumulate(s, axis=1), 0.0)

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
    rows: list[tuple[str, float, float, str, str]] = []

    for n_expr, bins in ((1000, 1000), (10_000, 100)):
        if q:
            n_expr //= 10
        text, bases = chain_model(n_expr, bins)
        t0 = time.perf_counter()
        graph = compile_model(load_model(text).model)
        compile_s = time.perf_counter() - t0
        ours = median_time(lambda g=graph: evaluate(g), repeats)
        floor = median_time(chain_floor(bases, n_expr), repeats)
        # Same numbers as the floor, checked once.
        res = evaluate(graph)
        ref = chain_floor(bases, n_expr)()
        assert all(np.array_equal(res[f"n_{i}"], ref[i]) for i in range(n_expr)), "results differ"
        rows.append((f"{n_expr} expr nodes x {bins} bins", ours, floor, "<= 2x",
                     f"compile {compile_s * 1000:.0f} ms"))

    n_q, q_bins = (100, 10_000) if q else (100, 100_000)
    qmodel, arrivals, capacity = queues_model(n_q, q_bins)
    graph = compile_model(qmodel)
    ours = median_time(lambda: evaluate(graph), max(1, repeats // 2))
    stepped = median_time(queues_floor_stepped(arrivals, capacity), max(1, repeats // 2))
    closed = median_time(queues_closed_form(arrivals, capacity), repeats)
    res = evaluate(graph)
    ref = queues_floor_stepped(arrivals, capacity)()
    assert all(np.array_equal(res[f"q_{i}"], ref[:, i]) for i in range(n_q)), "queue results differ"
    rows.append((f"{n_q} feedback queues x {q_bins} bins", ours, stepped, "<= 5x",
                 "floor: per-bin NumPy across queues"))
    rows.append(("  (same, vs closed-form cumsum)", ours, closed, "info", "not the same arithmetic"))

    n_d, d_bins = (100, 1000) if q else (1000, 1000)
    dmodel, inflow, rates = delay_chain_model(n_d, d_bins)
    graph = compile_model(dmodel)
    ours = median_time(lambda: evaluate(graph), repeats)
    floor = median_time(delay_chain_floor(inflow, rates), repeats)
    res = evaluate(graph)
    s_ref, o_ref = delay_chain_floor(inflow, rates)()
    assert all(np.array_equal(res[f"s_{k}"], s_ref[:, k]) and np.array_equal(res[f"out_{k}"], o_ref[:, k])
               for k in range(n_d)), "delay chain results differ"
    rows.append((f"{n_d}-stage delay chain x {d_bins} bins", ours, floor, "<= 5x",
                 "a rate per stage; floor: per-bin NumPy across stages"))

    n_s, s_bins = (200, 1000) if q else (1000, 1000)
    text, _ = chain_model(n_s, s_bins, n_base=10)
    loaded = load_model(text)
    results = evaluate(compile_model(loaded.model))
    outputs = results.outputs()
    label = f"write {len(results.output_ids)} series x {s_bins} bins"
    # The target row writes where tempfile does (a disk, usually); a memory file
    # system, where there is one, shows the same work without the disk.
    places: list[tuple[str | None, str, str, str]] = [(None, label, ">= 4x faster", "baseline: csv.writer per row")]
    if Path("/dev/shm").is_dir() and os.access("/dev/shm", os.W_OK):
        places.append(("/dev/shm", "  (same, on tmpfs /dev/shm)", "info", "no disk: formatting and syscalls only"))
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
        rows.append((name, ours, naive, target, note))

    print(f"{'benchmark':42} {'flowtime':>11} {'baseline':>11} {'ratio':>7}  target        note")
    print("-" * 110)
    for name, ours, base, target, note in rows:
        ratio = ours / base
        shown = f"{1 / ratio:.1f}x" if name.lstrip(" (").startswith(("write", "same, on")) else f"{ratio:.2f}"
        print(f"{name:42} {ours * 1000:9.1f}ms {base * 1000:9.1f}ms {shown:>7}  {target:13} {note}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
