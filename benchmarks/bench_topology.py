"""
Topology queues (issue 12): a model of 1,000 ``serviceWithBuffer`` nodes,
written as YAML the way a modeller writes it, against a hand-written NumPy
floor of the same recurrences, timed in turns.

    python benchmarks/bench_topology.py [--quick]

Every queue has an initial depth and a WIP limit; every fourth releases only on
a dispatch schedule (every third bin, capped by a capacity). The floor steps
all queues together, one bin at a time, with the gate, the outflow and the
limits laid out bin-major once, every row view taken in advance and ufuncs
writing in place; it computes the same three series per queue (depth, overflow,
the outflow let through - each call, as the engine) and is checked equal to the
engine's before timing.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import numpy.typing as npt

from flowtime.engine.plan import plan
from flowtime.model.load import load_model
from table import Row, Target, print_table
from timing import paired_median_times

Block = npt.NDArray[np.float64]


def topology_model(n: int, bins: int) -> tuple[str, dict[str, Block]]:
    """The model's YAML and its inputs: (n,) per-queue arrivals, served, limit, initial depth, gated flags."""
    rng = np.random.default_rng(12)
    arrivals = np.round(rng.uniform(2, 8, n), 2)
    served = np.round(rng.uniform(3, 7, n), 2)
    limit = np.round(rng.uniform(20, 60, n), 1)
    initial = np.round(rng.uniform(0, 10, n), 1)
    gated = (np.arange(n) % 4 == 0).astype(np.float64)
    lines = ["schemaVersion: 1", f"grid: {{bins: {bins}, binSize: 5, binUnit: minutes}}", "nodes:"]
    for i in range(n):
        lines.append(f"  - {{id: arr_{i}, kind: const, values: {arrivals[i]}}}")
        lines.append(f"  - {{id: srv_{i}, kind: const, values: {served[i]}}}")
    lines += ["topology:", "  nodes:"]
    for i in range(n):
        lines.append(f"    - id: Stage{i}")
        lines.append("      kind: serviceWithBuffer")
        lines.append(f"      semantics: {{arrivals: arr_{i}, served: srv_{i}}}")
        lines.append(f"      initialCondition: {{queueDepth: {initial[i]}}}")
        lines.append(f"      wipLimit: {limit[i]}")
        if gated[i]:
            lines.append(f"      dispatchSchedule: {{kind: time-based, periodBins: 3, capacitySeries: srv_{i}}}")
    inputs = {"arrivals": arrivals, "served": served, "limit": limit, "initial": initial, "gated": gated}
    return "\n".join(lines) + "\n", inputs


def topology_floor(inputs: dict[str, Block], bins: int) -> Callable[[], tuple[Block, Block, Block]]:
    """Depth, overflow and released outflow, ``(bins, n)`` each, stepped across all queues per bin."""
    n = inputs["arrivals"].size
    arrivals = np.broadcast_to(inputs["arrivals"], (bins, n)).copy()
    t = np.arange(bins)[:, None]
    gate = np.where(inputs["gated"][None, :] > 0, (t % 3 == 0).astype(np.float64), 1.0)
    # On a dispatch bin the outflow is MIN(served, capacity) = served here; off it, 0. It is one of the
    # series handed back, so each call computes it (one in-place product), as the engine does.
    served = np.broadcast_to(inputs["served"][None, :], (bins, n)).copy()
    released = np.empty((bins, n))
    limit = inputs["limit"].copy()
    depth, overflow = np.empty((bins, n)), np.empty((bins, n))
    raw, zero = np.empty(n), np.zeros(n)
    first = inputs["initial"].copy()
    steps = list(zip(arrivals, released, depth, overflow, [first, *depth[:-1]], strict=True))
    add, sub, maximum, minimum = np.add, np.subtract, np.maximum, np.minimum

    def run() -> tuple[Block, Block, Block]:
        np.multiply(served, gate, out=released)
        for a, r, d, o, prev in steps:
            add(prev, a, raw)
            sub(raw, r, raw)
            maximum(raw, zero, out=raw)
            minimum(raw, limit, out=d)
            sub(raw, d, o)
        return depth, overflow, released

    return run


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    ap.add_argument("--quick", action="store_true", help="100 queues, fewer repeats")
    args = ap.parse_args()
    n, bins, repeats = (100, 1000, 7) if args.quick else (1000, 1000, 15)
    t0 = time.perf_counter()
    text, inputs = topology_model(n, bins)
    started = time.perf_counter()
    p = plan(load_model(text, "bench-topology.yaml").model)
    load_s = time.perf_counter() - started
    floor = topology_floor(inputs, bins)
    depth, overflow, released = floor()
    got = p.evaluate()
    for i in (0, 1, n // 2, n - 1):  # the engine computes the floor's numbers
        base = f"stage{i}"
        assert np.array_equal(got[f"{base}_queue"], depth[:, i]), f"{base}_queue differs"
        assert np.array_equal(got[f"{base}_overflow"], overflow[:, i]), f"{base}_overflow differs"
        if inputs["gated"][i]:
            assert np.array_equal(got[f"{base}_gated_outflow"], released[:, i]), f"{base}_gated_outflow differs"
    del got
    evaluate: Callable[[], Any] = p.evaluate
    ours, base = paired_median_times(evaluate, floor, repeats)
    rows = [Row(f"{n} topology queues x {bins} bins", ours, base, Target.at_most(2.0),
                f"WIP limits, initial depths, 1 in 4 dispatched; floor: per-bin NumPy across queues; "
                f"load + plan {load_s * 1e3:,.0f} ms")]
    print_table(rows)
    print(f"(loops: {p.jit!r:.120}; NumPy {np.__version__}, Python {sys.version.split()[0]}; "
          f"{time.perf_counter() - t0:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
