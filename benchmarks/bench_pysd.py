"""
FlowTime against PySD on the same model: a chain of N first-order delays.

    python benchmarks/bench_pysd.py [--quick] [--sizes 100 1000] [--steps 1000]

Needs the benchmark extra: ``pip install 'flowtime[bench]'`` (PySD, pandas).

The model, for both engines (Euler, dt = 1, ``steps`` steps, so steps + 1 saved
times 0..steps):

    inflow      = 10 while Time < steps / 2, then 0
    stock_1     = INTEG(inflow - outflow_1, 0)
    stock_k     = INTEG(outflow_(k-1) - outflow_k, 0)        k = 2..N
    outflow_k   = stock_k * 0.1

PySD integrates ``stock(t+dt) = stock(t) + (in(t) - out(t)) * dt`` with the flows
of the previous time, so in FlowTime (bin t = time t) each stock reads its
inputs one bin back:

    stock_k   = SHIFT(stock_k, 1) + (SHIFT(in_k, 1) - SHIFT(outflow_k, 1))
    outflow_k = stock_k * 0.1

The floating-point operations are the same, in the same order, so every
stock and outflow series is checked for *exact* equality (and reported with
the largest difference if only close).

Timed: PySD ``model.run()`` (Vensim translation and model loading excluded,
reported separately) against FlowTime ``evaluate(graph)`` (YAML loading,
compiling and the first evaluation, which builds the per-bin kernels, excluded
and reported separately). Times are medians of repeats. A third column is a
hand-written NumPy loop doing the same recurrence one bin at a time across the
whole chain (a "wavefront"): what a fused, vectorised kernel could reach.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from bench_engine import delay_chain_floor
from flowtime.engine import compile_model, evaluate
from flowtime.model.load import load_model
from table import Row as TableRow
from table import Target, print_table
from timing import median_time

RATE = 0.1
LEVEL = 10.0

_CONTROL = """\
********************************************************
\t.Control
********************************************************~
\t\tSimulation Control Parameters
\t|

FINAL TIME  = {steps}
\t~\tMonth
\t~\t\t|

INITIAL TIME  = 0
\t~\tMonth
\t~\t\t|

SAVEPER  = TIME STEP
\t~\tMonth [0,?]
\t~\t\t|

TIME STEP  = 1
\t~\tMonth [0,?]
\t~\t\t|

\\\\\\---/// Sketch information - do not modify anything except names
V300  Do not put anything below this section - it will be ignored
"""


def inflow_values(steps: int) -> list[float]:
    """The inflow at times 0..steps: LEVEL for the first half, then 0."""
    return [LEVEL if t < steps // 2 else 0.0 for t in range(steps + 1)]


def vensim_chain(n: int, steps: int) -> str:
    """The chain as a Vensim .mdl file (PySD's main input format)."""

    def eq(lhs: str, rhs: str, units: str) -> str:
        return f"{lhs} = {rhs}\n\t~\t{units}\n\t~\t\t|\n"

    parts = [
        "{UTF-8}",
        eq("inflow", f"IF THEN ELSE(Time < {steps // 2}, {LEVEL:g}, 0)", "units/Month"),
        eq("rate", repr(RATE), "1/Month"),
    ]
    for k in range(1, n + 1):
        src = "inflow" if k == 1 else f"outflow_{k - 1}"
        parts.append(eq(f"stock_{k}", f"INTEG({src} - outflow_{k}, 0)", "units"))
        parts.append(eq(f"outflow_{k}", f"stock_{k} * rate", "units/Month"))
    parts.append(_CONTROL.format(steps=steps))
    return "\n".join(parts)


def flowtime_chain(n: int, steps: int) -> str:
    """The same chain as FlowTime model YAML."""
    values = ", ".join(repr(v) for v in inflow_values(steps))
    lines = [
        "schemaVersion: 1",
        f"grid: {{bins: {steps + 1}, binSize: 1, binUnit: minutes}}",
        "nodes:",
        f"  - {{id: inflow, kind: const, values: [{values}]}}",
    ]
    for k in range(1, n + 1):
        src = "inflow" if k == 1 else f"outflow_{k - 1}"
        lines.append(f'  - {{id: stock_{k}, kind: expr, '
                     f'expr: "SHIFT(stock_{k}, 1) + (SHIFT({src}, 1) - SHIFT(outflow_{k}, 1))"}}')
        lines.append(f'  - {{id: outflow_{k}, kind: expr, expr: "stock_{k} * {RATE!r}"}}')
    return "\n".join(lines) + "\n"


def wavefront_floor(n: int, steps: int) -> Callable[[], tuple[np.ndarray, np.ndarray]]:
    """The recurrence with one NumPy step per bin across all N stocks at once."""
    return delay_chain_floor(np.array(inflow_values(steps)), np.full(n, RATE))


@dataclass
class Row:
    n: int
    steps: int
    pysd_translate: float
    pysd_run: float
    ours_cold: float  # load + compile + first evaluation
    ours: float
    floor: float
    check: str
    ok: bool  # equal, or equal within 1e-12


def compare(n: int, steps: int, pysd_repeats: int, repeats: int, workdir: Path) -> Row:
    import pysd  # the benchmark extra; imported here so --help works without it

    mdl = workdir / f"chain_{n}.mdl"
    mdl.write_text(vensim_chain(n, steps), encoding="utf-8")
    t0 = time.perf_counter()
    pmodel = pysd.read_vensim(str(mdl))
    translate = time.perf_counter() - t0
    columns = [f"{v}_{k}" for v in ("stock", "outflow") for k in range(1, n + 1)]
    frames: list[Any] = []

    def pysd_run() -> None:
        frames.append(pmodel.run(return_columns=columns, progress=False))

    pysd_s = median_time(pysd_run, pysd_repeats)

    text = flowtime_chain(n, steps)
    t0 = time.perf_counter()
    graph = compile_model(load_model(text, f"chain_{n}.yaml").model)
    results = evaluate(graph)
    cold = time.perf_counter() - t0
    ours = median_time(lambda: evaluate(graph), repeats)
    floor_fn = wavefront_floor(n, steps)
    floor = median_time(floor_fn, repeats)

    df = frames[-1]
    assert len(df) == steps + 1, f"PySD returned {len(df)} rows, expected {steps + 1}"
    exact = True
    worst = 0.0
    close = True
    for col in columns:
        theirs = df[col].to_numpy(dtype=np.float64)
        mine = results[col]
        if not np.array_equal(theirs, mine):
            exact = False
            worst = max(worst, float(np.max(np.abs(theirs - mine))))
            close = close and bool(np.allclose(theirs, mine, rtol=1e-12, atol=1e-12))
    s_floor, o_floor = floor_fn()
    assert all(np.array_equal(results[f"stock_{k}"], s_floor[:, k - 1]) for k in range(1, n + 1)), "floor differs"
    assert all(np.array_equal(results[f"outflow_{k}"], o_floor[:, k - 1]) for k in range(1, n + 1)), "floor differs"
    if exact:
        check = f"exact ({2 * n} series)"
    elif close:
        check = f"allclose, max diff {worst:.1e}"
    else:
        check = f"DIFFERENT, max diff {worst:.3g}"
    return Row(n, steps, translate, pysd_s, cold, ours, floor, check, exact or close)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    ap.add_argument("--quick", action="store_true", help="N = 10 and 100, fewer repeats")
    ap.add_argument("--sizes", type=int, nargs="+", help="chain lengths N (default 100 1000)")
    ap.add_argument("--steps", type=int, default=1000, help="Euler steps (default 1000)")
    ap.add_argument("--pysd-repeats", type=int, default=None, help="PySD runs per size (default 3, quick 1)")
    args = ap.parse_args()
    try:
        import pysd
    except ImportError:
        print("error: PySD is not installed: pip install 'flowtime[bench]'", file=sys.stderr)
        return 2
    sizes = args.sizes or ([10, 100] if args.quick else [100, 1000])
    repeats = 3 if args.quick else 7
    pysd_repeats = args.pysd_repeats or (1 if args.quick else 3)

    rows: list[Row] = []
    with tempfile.TemporaryDirectory(prefix="ftbench-pysd-") as tmp:
        for n in sizes:
            rows.append(compare(n, args.steps, pysd_repeats, repeats, Path(tmp)))

    print(f"PySD {pysd.__version__}, NumPy {np.__version__}, Python {sys.version.split()[0]}; "
          f"medians of {pysd_repeats} PySD runs and {repeats} FlowTime runs")
    head = (f"{'chain':>20} {'PySD run':>10} {'FlowTime':>10} {'ratio':>8} {'NumPy wave':>11} {'ratio':>8}"
            f"  {'same numbers':26} {'PySD translate':>15} {'FlowTime cold':>14}")
    print(head)
    print("-" * len(head))
    for r in rows:
        print(f"{f'N={r.n} x {r.steps} steps':>20} {r.pysd_run * 1000:8.0f}ms {r.ours * 1000:8.1f}ms "
              f"{r.pysd_run / r.ours:7.0f}x {r.floor * 1000:9.1f}ms {r.pysd_run / r.floor:7.0f}x"
              f"  {r.check:26} {r.pysd_translate:14.1f}s {r.ours_cold:13.2f}s")
    print()
    print("ratio = PySD run / FlowTime evaluate (warm: graph compiled, kernels built); NumPy wave = hand-written")
    print("per-bin NumPy loop across the whole chain; FlowTime cold = load YAML + compile + first evaluation.")
    print("end to end (text in, series out): " + "; ".join(
        f"N={r.n}: PySD {r.pysd_translate + r.pysd_run:.1f}s vs FlowTime {r.ours_cold:.2f}s "
        f"({(r.pysd_translate + r.pysd_run) / r.ours_cold:.0f}x)" for r in rows))
    print()
    print_table([TableRow(f"chain of {r.n} stocks x {r.steps} steps vs PySD", r.ours, r.pysd_run,
                          Target.faster(500) if r.n == 1000 else Target.info(faster=True),
                          "baseline: PySD model.run()") for r in rows])
    return 0 if all(r.ok for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
