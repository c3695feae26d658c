"""
Experiment backends (issue 14): what batching costs, and what more processes buy.

    python benchmarks/bench_experiments.py [--quick]

- **10,000-point sweep in-process.** The 36-node x 288-bin queue pipeline
  (``bench_plan.pipeline_model``), each point its own eight stage capacities,
  through ``InProcess`` in batches of 500 (``experiments.batch``: one
  ``evaluate_many`` per batch, three output series copied out) against ONE
  ``plan.evaluate_many`` over the same 10,000 scenarios. Target <= 1.3x.
- **A CPU-heavy model on a local Dask cluster.** The same pipeline at 8,640
  bins (a month of 5-minute bins), 96 points in batches of 8, on
  ``DaskBackend("local")`` (2 worker processes, 1 thread each) against
  ``InProcess`` throughput. Target >= 1.6x faster. The machine's core count is
  printed: on 2 cores shared with other work the ceiling is 2x less whatever
  else runs.
- For context: a ``ProcessPool(2)`` on the same work, and Dask with the model
  text sent inside every task instead of scattered once.

Every row checks first that its contenders give the same bytes.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Sequence
from typing import Any

import numpy as np

from bench_plan import pipeline_model
from flowtime.engine import plan
from flowtime.experiments.backends import DaskBackend, InProcess, ProcessPool, Result
from flowtime.experiments.batch import Batch
from flowtime.model.load import load_model
from table import Row, Target, print_table
from timing import paired_median_times

STAGES = 8
OUTPUTS = ("wip", "unserved", "mean_utilization")


def point_sets(points: int) -> list[dict[str, Any]]:
    """Each point's eight capacities, 9..13 in steps of 0.5, different for every point (seeded)."""
    rng = np.random.default_rng(14)
    caps = 9 + 0.5 * rng.integers(0, 9, size=(points, STAGES))
    return [{f"capacity_{k + 1}": float(c) for k, c in enumerate(row)} for row in caps]


def batches_of(sets: Sequence[dict[str, Any]], size: int) -> list[Batch]:
    return [Batch(start=s, sets=tuple(sets[s:s + size]), seeds=(None,) * len(sets[s:s + size]),
                  sample_pmf=False, outputs=OUTPUTS) for s in range(0, len(sets), size)]


def joined(results: Sequence[Result]) -> dict[str, np.ndarray]:
    return {n: np.concatenate([r[n] for r in results]) for n in OUTPUTS}


def same(a: Sequence[Result], b: Sequence[Result]) -> bool:
    x, y = joined(a), joined(b)
    return all(x[n].tobytes() == y[n].tobytes() for n in OUTPUTS)


def sweep_rows(quick: bool) -> list[Row]:
    points = 2_000 if quick else 10_000
    text, _ = pipeline_model(STAGES)
    sets = point_sets(points)
    batches = batches_of(sets, 500)
    p = plan(load_model(text).model)
    inproc = InProcess()
    got = joined(inproc.run(text, batches))
    many = p.evaluate_many(sets=sets)
    assert all(got[n].tobytes() == np.ascontiguousarray(many[n]).tobytes() for n in OUTPUTS), "batches differ"
    del many
    ours, base = paired_median_times(lambda: inproc.run(text, batches), lambda: p.evaluate_many(sets=sets),
                                     3 if quick else 5)
    return [Row(f"{points:,}-point sweep, 36 x 288, InProcess (batches of 500)", ours, base, Target.at_most(1.3),
                "baseline: one evaluate_many over the same scenarios")]


def parallel_rows(quick: bool) -> list[Row]:
    points, size = (48, 8) if quick else (96, 8)
    text, _ = pipeline_model(STAGES, bins=8640)
    batches = batches_of(point_sets(points), size)
    inproc = InProcess()
    reference = inproc.run(text, batches)
    repeats = 3 if quick else 5
    rows = []
    with DaskBackend("local") as dask:
        dask.client().wait_for_workers(2)
        assert same(dask.run(text, batches), reference), "Dask differs"
        assert same(dask.run(text, batches), reference), "Dask differs (warm)"
        ours, base = paired_median_times(lambda: dask.run(text, batches), lambda: inproc.run(text, batches), repeats)
        rows.append(Row(f"{points} points x 36 nodes x 8,640 bins, Dask local (2 procs)", ours, base,
                        Target.faster(1.6), f"baseline: InProcess; {os.cpu_count()} cores on this machine"))
        passed = DaskBackend(dask.address, scatter=False)
        passed._client = dask.client()  # the same cluster, the text inside every task
        assert same(passed.run(text, batches), reference)
        sent, scattered = paired_median_times(lambda: passed.run(text, batches), lambda: dask.run(text, batches),
                                              repeats)
        rows.append(Row("  same, model text in every task (not scattered)", sent, scattered, Target.info(),
                        f"baseline: scattered once; {len(text) / 1e3:.0f} kB of model text, {len(batches)} tasks"))
    with ProcessPool(2) as pool:
        assert same(pool.run(text, batches), reference), "process pool differs"
        ours, base = paired_median_times(lambda: pool.run(text, batches), lambda: inproc.run(text, batches), repeats)
        rows.append(Row("  same, ProcessPool(2)", ours, base, Target.info(faster=True), "baseline: InProcess"))
    return rows


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    ap.add_argument("--quick", action="store_true", help="smaller sizes, fewer repeats")
    args = ap.parse_args()
    t0 = time.perf_counter()
    rows = sweep_rows(args.quick) + parallel_rows(args.quick)
    print_table(rows)
    print(f"(NumPy {np.__version__}, Python {sys.version.split()[0]}, {os.cpu_count()} cores; "
          f"{time.perf_counter() - t0:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
