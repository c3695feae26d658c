"""
Experiment backends (issue 14): what batching costs, and what more processes buy.

    python benchmarks/bench_experiments.py [--quick]

- **10,000-point sweep in-process.** The 36-node x 288-bin queue pipeline
  (``bench_plan.pipeline_model``), each point its own eight stage capacities,
  through ``InProcess`` in batches of 500 (``experiments.batch``: one
  ``evaluate_many`` per batch, three output series copied out) against ONE
  ``plan.evaluate_many`` over the same 10,000 scenarios. Target <= 1.3x.
- **A CPU-heavy model on a local Dask cluster.** A 16-stage pipeline at
  2,880 bins whose every stage also computes a cost with EXP, LOG, POW and
  SQRT (66 nodes), a 2,048-point Latin-hypercube sweep spec over its 16
  capacities with three metrics (1.7 s of work in-process), through
  ``run_experiment`` on ``DaskBackend("local")`` (2 worker processes, 1
  thread each) against the same spec in-process. Target >= 1.6x faster. The
  core count is printed: on 2 cores the ceiling is 2x, less whatever else
  runs (the scheduler and client share those cores too).
- For context: the same on 512 points (0.4 s of work, where a run's fixed
  ~25 ms of Dask messages shows), the backend alone with every point's whole
  ``cost`` series sent back (what reducing on the workers saves), Dask with
  the model text sent inside every task instead of scattered once, and a
  ``ProcessPool(2)``.

glibc's allocator decides these figures as much as the arithmetic does: with
its default (adaptive) mmap threshold a fresh process maps and faults in every
(K, bins) block anew, and the same batches ran 1.9x slower in-process than in a
process whose threshold had grown (here, after the 10,000-point row). So that
every contender runs under the same allocator, this script fixes glibc's mmap
threshold at 32 MiB (and the trim threshold at 128 MiB) for itself, with
``mallopt``, and for every worker it starts, through the environment
(``--default-malloc`` leaves glibc alone).

Every row checks first that its contenders give the same bytes.
"""

from __future__ import annotations

import argparse
import ctypes
import os
import sys
import time
from collections.abc import Sequence
from typing import Any

import numpy as np

from bench_plan import pipeline_model, pmf_model
from flowtime.engine import plan
from flowtime.experiments.backends import DaskBackend, InProcess, ProcessPool, Result
from flowtime.experiments.batch import Batch
from flowtime.experiments.runner import run_experiment
from flowtime.model.load import load_model
from table import Row, Target, print_table
from timing import paired_median_times

STAGES = 8
OUTPUTS = ("wip", "unserved", "mean_utilization")


HEAVY_STAGES = 16


def heavy_model(stages: int = HEAVY_STAGES, bins: int = 2880) -> str:
    """``bench_plan.pipeline_model``'s stages, each with a transcendental cost; ``cost`` sums them."""
    rng = np.random.default_rng(5)
    demand = np.round(rng.uniform(6, 14, bins), 2).tolist()
    lines = ["schemaVersion: 1", f"grid: {{bins: {bins}, binSize: 5, binUnit: minutes}}", "nodes:",
             f"  - {{id: demand, kind: const, values: {demand}}}"]
    for k in range(1, stages + 1):
        src = "demand" if k == 1 else f"served_{k - 1}"
        lines += [f"  - {{id: capacity_{k}, kind: const, values: 10.5}}",
                  f"  - {{id: served_{k}, kind: expr, expr: 'MIN(capacity_{k}, {src} + SHIFT(backlog_{k}, 1))'}}",
                  f"  - {{id: backlog_{k}, kind: expr, expr: 'MAX(0, SHIFT(backlog_{k}, 1) + {src} - served_{k})'}}",
                  f"  - {{id: cost_{k}, kind: expr, expr: 'EXP(LOG(1 + backlog_{k}) * 0.5) + POW(served_{k}, 1.5)"
                  f" + SQRT(backlog_{k} + served_{k}) + EXP(-served_{k} / capacity_{k})'}}"]
    lines.append("  - {id: cost, kind: expr, expr: '" + " + ".join(f"cost_{k}" for k in range(1, stages + 1)) + "'}")
    return "\n".join(lines) + "\n"


def point_sets(points: int, stages: int = STAGES) -> list[dict[str, Any]]:
    """Each point's stage capacities, 9..13 in steps of 0.5, different for every point (seeded)."""
    rng = np.random.default_rng(14)
    caps = 9 + 0.5 * rng.integers(0, 9, size=(points, stages))
    return [{f"capacity_{k + 1}": float(c) for k, c in enumerate(row)} for row in caps]


def batches_of(sets: Sequence[dict[str, Any]], size: int, outputs: tuple[str, ...] = OUTPUTS) -> list[Batch]:
    return [Batch(start=s, sets=tuple(sets[s:s + size]), seeds=(None,) * len(sets[s:s + size]),
                  sample_pmf=False, outputs=outputs) for s in range(0, len(sets), size)]


def joined(results: Sequence[Result]) -> dict[str, np.ndarray]:
    return {n: np.concatenate([r[n] for r in results]) for n in results[0]}


def same(a: Sequence[Result], b: Sequence[Result]) -> bool:
    x, y = joined(a), joined(b)
    return x.keys() == y.keys() and all(x[n].tobytes() == y[n].tobytes() for n in x)


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


def heavy_sweep(points: int) -> dict[str, Any]:
    """A Latin hypercube over the heavy model's 16 capacities, three metrics of what the stages cost and hold."""
    return {"kind": "sweep", "seed": 3, "settings": {"method": "lhs", "points": points},
            "parameters": [{"target": f"capacity_{k}", "range": {"low": 9, "high": 13}}
                           for k in range(1, HEAVY_STAGES + 1)],
            "metrics": [{"name": "cost", "series": "cost"},
                        {"name": "cost_p95", "series": "cost", "aggregate": "p95"},
                        {"name": "backlog_max", "series": f"backlog_{HEAVY_STAGES}", "aggregate": "max"}]}


def parallel_rows(quick: bool) -> list[Row]:
    sweep_points, points, size = (512, 256, 16) if quick else (2048, 512, 16)
    text = heavy_model()
    spec, short = heavy_sweep(sweep_points), heavy_sweep(points)
    batches = batches_of(point_sets(points, HEAVY_STAGES), size, ("cost",))
    inproc = InProcess()
    table = run_experiment(spec, text, inproc).table
    reference = inproc.run(text, batches)
    repeats = 5 if quick else 9
    rows = []
    with DaskBackend("local") as dask:
        dask.client().wait_for_workers(2)
        assert run_experiment(spec, text, dask).table.equals(table), "Dask sweep differs"
        ours, base = paired_median_times(lambda: run_experiment(spec, text, dask),
                                         lambda: run_experiment(spec, text, inproc), repeats)
        rows.append(Row(f"{sweep_points:,}-point sweep spec, CPU-heavy 66 x 2,880, Dask local (2 procs)", ours, base,
                        Target.faster(1.6), f"3 metrics reduced where each batch ran; baseline: the same spec "
                                            f"in-process; {os.cpu_count()} cores on this machine"))
        ours, base = paired_median_times(lambda: run_experiment(short, text, dask),
                                         lambda: run_experiment(short, text, inproc), repeats)
        rows.append(Row(f"  same, {points} points", ours, base, Target.info(faster=True),
                        "a run's fixed cost (submitting, the first and last task) weighs more"))
        assert same(dask.run(text, batches), reference), "Dask differs"
        ours, base = paired_median_times(lambda: dask.run(text, batches), lambda: inproc.run(text, batches), repeats)
        rows.append(Row(f"  {points} points, whole series back ({len(batches)} batches of {size})", ours, base,
                        Target.info(faster=True), f"{points * 2880 * 8 / 1e6:.0f} MB of series to the client; "
                                                  "baseline: InProcess"))
        passed = DaskBackend(dask.address, scatter=False)
        passed._client = dask.client()  # the same cluster, the text inside every task
        assert same(passed.run(text, batches), reference)
        sent, scattered = paired_median_times(lambda: passed.run(text, batches), lambda: dask.run(text, batches),
                                              repeats)
        rows.append(Row("  same, model text in every task (not scattered)", sent, scattered, Target.info(),
                        f"baseline: scattered once; {len(text) / 1e3:.0f} kB of model text"))
    with ProcessPool(2) as pool:
        assert run_experiment(spec, text, pool).table.equals(table), "process pool sweep differs"
        ours, base = paired_median_times(lambda: run_experiment(spec, text, pool),
                                         lambda: run_experiment(spec, text, inproc), repeats)
        rows.append(Row(f"  the {sweep_points:,}-point sweep spec, ProcessPool(2)", ours, base,
                        Target.info(faster=True), "baseline: in-process"))
    return rows


def experiment_rows(quick: bool) -> list[Row]:
    """
    The experiment machinery end to end (spec -> points -> batches -> metrics, and Monte Carlo bands) against
    the engine call it stands for: the same scenarios in ONE ``evaluate_many``.
    """
    side = 7 if quick else 10  # side**4 grid points
    text, caps = pipeline_model(STAGES)
    grid = [round(c - 1.0 + 2.0 * i / (side - 1), 6) for i in range(side) for c in caps[:1]]
    spec = {"kind": "sweep", "parameters": [{"target": f"capacity_{k}", "values": grid} for k in range(1, 5)],
            "metrics": [{"name": "wip", "series": "wip"}, {"name": "lost", "series": "unserved", "aggregate": "sum"},
                        {"name": "util_p95", "series": "mean_utilization", "aggregate": "p95"}]}
    result = run_experiment(spec, text)
    points = len(result.table)
    sets = [{f"capacity_{k}": float(row[f"capacity_{k}"]) for k in range(1, 5)} for _, row in result.table.iterrows()]
    p = plan(load_model(text).model)
    check = p.evaluate_many(sets=sets[:50])
    assert np.array_equal(np.asarray(result.table["wip"])[:50], np.asarray(check["wip"]).mean(axis=1)), "sweep differs"
    repeats = 3 if quick else 5
    ours, base = paired_median_times(lambda: run_experiment(spec, text), lambda: p.evaluate_many(sets=sets), repeats)
    rows = [Row(f"{points:,}-point sweep spec, 36 x 288 (run_experiment)", ours, base, Target.at_most(1.3),
                "grid of 4 capacities, 3 metrics; baseline: one evaluate_many over the same scenarios")]
    replications = 200 if quick else 1000
    mc_text = pmf_model(50, 50)
    mc = {"kind": "montecarlo", "settings": {"replications": replications},
          "capture": ["load_0", "load_1", "load_2"],
          "metrics": [{"name": "peak", "series": "load_0", "aggregate": "max"}]}
    first = run_experiment(mc, mc_text)
    seeds = list(first.seeds)
    q = plan(load_model(mc_text).model)
    again = q.evaluate_many(seeds=seeds, sample_pmf=True)
    assert np.array_equal(np.asarray(first.table["peak"]), np.asarray(again["load_0"]).max(axis=1)), "MC differs"
    ours, base = paired_median_times(lambda: run_experiment(mc, mc_text),
                                     lambda: q.evaluate_many(seeds=seeds, sample_pmf=True), repeats)
    rows.append(Row(f"{replications:,}-replication Monte Carlo with bands, 100 x 288", ours, base, Target.at_most(1.5),
                    "5 percentile bands of 3 series + a histogram; baseline: evaluate_many over the same seeds"))
    return rows


MMAP_THRESHOLD, TRIM_THRESHOLD = 32 << 20, 128 << 20


def same_allocator() -> str:
    """glibc's mmap/trim thresholds fixed here and (by the environment) in every worker started later."""
    os.environ["MALLOC_MMAP_THRESHOLD_"] = str(MMAP_THRESHOLD)
    os.environ["MALLOC_TRIM_THRESHOLD_"] = str(TRIM_THRESHOLD)
    try:
        libc = ctypes.CDLL(None)
        ok = libc.mallopt(-3, MMAP_THRESHOLD) == 1 and libc.mallopt(-1, TRIM_THRESHOLD) == 1  # M_MMAP/M_TRIM
    except (OSError, AttributeError):
        ok = False
    return "glibc mmap threshold 32 MiB everywhere" if ok else "no mallopt here (not glibc): allocator as is"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    ap.add_argument("--quick", action="store_true", help="smaller sizes, fewer repeats")
    ap.add_argument("--default-malloc", action="store_true", help="leave glibc's allocator settings alone")
    args = ap.parse_args()
    allocator = "glibc defaults" if args.default_malloc else same_allocator()
    t0 = time.perf_counter()
    rows = sweep_rows(args.quick) + experiment_rows(args.quick) + parallel_rows(args.quick)
    print_table(rows)
    print(f"(NumPy {np.__version__}, Python {sys.version.split()[0]}, {os.cpu_count()} cores, {allocator}; "
          f"{time.perf_counter() - t0:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
