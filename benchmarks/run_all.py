"""
Every benchmark, one after the other, each printing its own table:

    python benchmarks/run_all.py [--quick]

``--quick`` passes the scripts' own short modes (smaller sizes, fewer repeats).
PySD is optional (``pip install -e '.[bench]'``); without it that benchmark is
reported as skipped.
"""

from __future__ import annotations

import argparse
import importlib.util
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main() -> int:
    ap = argparse.ArgumentParser(description="Run every FlowTime benchmark.")
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args()
    quick = args.quick
    plan: list[tuple[str, list[str]]] = [
        ("engine vs the NumPy floor, artifact writing", ["bench_engine.py", *(["--quick"] if quick else [])]),
        ("plan: load vs PyYAML, warm re-evaluation, many seeds, loops at scale",
         ["bench_plan.py", *(["--quick"] if quick else [])]),
        ("PMF sampling for many seeds vs a NumPy floor drawing the same numbers",
         ["bench_pmf.py", *(["--quick"] if quick else [])]),
        ("topology queues vs a NumPy floor of the same recurrences",
         ["bench_topology.py", *(["--quick"] if quick else [])]),
        ("classes and routers: a 288-bin Sim template vs a NumPy floor",
         ["bench_classes.py", *(["--quick"] if quick else [])]),
        ("FlowTime vs PySD", ["bench_pysd.py", *(["--quick"] if quick else [])]),
        ("start-up: flowtime run vs import numpy", ["bench_startup.py", *(["--quick"] if quick else [])]),
        ("registry at 100,000 runs", ["bench_registry.py", *(["--runs", "2000", "--repeats", "50"] if quick else [])]),
        ("Sim generate, in process and over HTTP", ["bench_sim.py", *(["--quick"] if quick else [])]),
        ("UI pages with 10,000 runs", ["bench_ui.py", *(["--runs", "2000", "--repeats", "5"] if quick else [])]),
        ("Engine service: POST /v1/run on 1 and 2 workers", ["bench_service.py", *(["--quick"] if quick else [])]),
        ("state API: one bin and a whole-run window of a 50-node year",
         ["bench_state.py", *(["--quick"] if quick else [])]),
        ("experiments: batches vs one evaluate_many, Dask and a process pool vs in-process",
         ["bench_experiments.py", *(["--quick"] if quick else [])]),
    ]
    failed = 0
    for title, cmd in plan:
        print(f"\n== {title}: python benchmarks/{' '.join(cmd)}", flush=True)
        if cmd[0] == "bench_pysd.py" and importlib.util.find_spec("pysd") is None:
            print("skipped: PySD is not installed (pip install -e '.[bench]')")
            continue
        rc = subprocess.call([sys.executable, str(HERE / cmd[0]), *cmd[1:]])
        failed += rc != 0
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
