"""
PMF sampling for many seeds: ``Plan.evaluate_many(seeds=..., sample_pmf=True)``
against a tight NumPy floor that draws the same numbers, timed in turns.

    python benchmarks/bench_pmf.py [--quick]

The floor calls ``node_seeds`` (SHA-256 per seed and node, as ``node_seed``),
then does the same integer arithmetic as ``sample_many`` written out inline:
one multiply-add for the LCG states of a block of seeds, the XSH-RR output,
draws compared with integer thresholds, one ``take`` into a fresh ``(P, K, bins)``
result; work buffers preallocated and reused, no per-node temporaries. Rows
marked "info" put the figures in context: the floor writing into an output it
keeps between calls (no fresh memory), the reference's algorithm vectorised
naively (floats and ``searchsorted``), and the former loop of one ``sample``
call per seed and node.
"""

from __future__ import annotations

import argparse
import functools
import sys
from collections.abc import Callable

import numpy as np
import numpy.typing as npt

from flowtime.engine.plan import plan
from flowtime.engine.pmf import RunSeeds, node_seed, node_seeds, sample
from flowtime.model.load import load_model
from flowtime.model.schema import PmfNode
from timing import median_time, paired_median_times

MULT, INC = 6364136223846793005, 1442695040888963407
Block = npt.NDArray[np.float64]


def pmf_model(n_pmf: int, n_expr: int, bins: int) -> str:
    """``n_pmf`` PMF nodes of 2 to 6 values, and ``n_expr`` expressions reading two of them each."""
    rng = np.random.default_rng(11)
    lines = ["schemaVersion: 1", f"grid: {{bins: {bins}, binSize: 5, binUnit: minutes}}", "nodes:"]
    for i in range(n_pmf):
        m = 2 + i % 5
        values = sorted({float(v) for v in rng.integers(0, 1000, m)} | {1000.0 + i})[:m]
        raw = rng.integers(1, 100, len(values))
        probabilities = [round(float(x), 6) for x in raw / raw.sum()]
        probabilities[-1] = round(1.0 - sum(probabilities[:-1]), 6)
        lines.append(f"  - {{id: p_{i}, kind: pmf, pmf: {{values: {values}, probabilities: {probabilities}}}}}")
    for i in range(n_expr):
        lines.append(f"  - {{id: e_{i}, kind: expr, expr: 'p_{i % n_pmf} * 2 + p_{(i + 1) % n_pmf}'}}")
    return "\n".join(lines) + "\n"


def _jumps(n: int) -> tuple[npt.NDArray[np.uint64], npt.NDArray[np.uint64]]:
    """The floor's own jump-ahead coefficients: state after j + 1 steps = A[j] * s + C[j]."""
    a, c = np.empty(n, np.uint64), np.empty(n, np.uint64)
    sa, sc = 1, 0
    for j in range(n):  # untimed setup, so the plain recurrence will do
        sa, sc = (MULT * sa) % 2**64, (MULT * sc + INC) % 2**64
        a[j], c[j] = sa, sc
    return a, c


def tight_floor(pmfs: list[PmfNode], exprs: int, seeds: list[int], bins: int,
                keep_output: bool = False) -> Callable[[], tuple[Block, Block]]:
    """Every PMF node's draws for every seed (and the expressions), as directly as NumPy allows."""
    k, p = len(seeds), len(pmfs)
    mul, inc = _jumps(bins)
    rows = max(1, 32768 // bins)
    state, out = np.empty((rows, bins), np.uint64), np.empty((rows, bins), np.uint64)
    index, above = np.empty((rows, bins), np.uint8), np.empty((rows, bins), np.bool_)
    tables = []
    for node in pmfs:
        cum = np.cumsum(node.probabilities)[: len(node.values) - 1]
        tables.append((node.id, node.values, np.clip(np.floor(cum * 2.0**32), 0, 2.0**32).astype(np.uint64)))
    kept = (np.empty((p, k, bins)), np.empty((exprs, k, bins)))
    u18, u27, u59, low, twice = (np.uint64(x) for x in (18, 27, 59, 0xFFFFFFFF, 0x100000001))

    def run() -> tuple[Block, Block]:
        draws, derived = kept if keep_output else (np.empty((p, k, bins)), np.empty((exprs, k, bins)))
        run_seeds = RunSeeds(seeds)
        with np.errstate(over="ignore"):
            for i, (node_id, values, thresholds) in enumerate(tables):
                s0 = node_seeds(run_seeds, node_id)[:, None]
                for r0 in range(0, k, rows):
                    r1 = min(k, r0 + rows)
                    s, o, ix, ab = state[: r1 - r0], out[: r1 - r0], index[: r1 - r0], above[: r1 - r0]
                    np.multiply(s0[r0:r1], mul, out=s)
                    s += inc
                    np.right_shift(s, u18, out=o)
                    o ^= s
                    o >>= u27
                    o &= low
                    o *= twice
                    s >>= u59
                    o >>= s
                    o &= low
                    np.greater(o, thresholds[0], out=ix.view(np.bool_))
                    for t in thresholds[1:]:
                        np.greater(o, t, out=ab)
                        ix += ab.view(np.uint8)
                    np.take(values, ix, out=draws[i, r0:r1], mode="clip")
        for j in range(exprs):
            np.multiply(draws[j % p], 2.0, out=derived[j])
            derived[j] += draws[(j + 1) % p]
        return draws, derived

    return run


def naive_floor(pmfs: list[PmfNode], seeds: list[int], bins: int) -> Callable[[], list[Block]]:
    """The reference's algorithm vectorised across seeds: whole-array uint64, floats and searchsorted."""
    mul, inc = _jumps(bins)

    def run() -> list[Block]:
        result = []
        run_seeds = RunSeeds(seeds)
        with np.errstate(over="ignore"):
            for node in pmfs:
                old = node_seeds(run_seeds, node.id)[:, None] * mul + inc
                x = (((old >> np.uint64(18)) ^ old) >> np.uint64(27)).astype(np.uint32)
                rot = (old >> np.uint64(59)).astype(np.uint32)
                u = ((x >> rot) | (x << ((-rot.astype(np.int64)) & 31).astype(np.uint32))) / 4294967296.0
                idx = np.minimum(np.searchsorted(np.cumsum(node.probabilities), u), len(node.values) - 1)
                result.append(node.values[idx])
        return result

    return run


def former_loop(pmfs: list[PmfNode], seeds: list[int], bins: int) -> Callable[[], list[Block]]:
    """What evaluate_many did before: one ``sample`` call per seed and node."""
    def run() -> list[Block]:
        return [np.stack([sample(n.values, n.probabilities, node_seed(s, n.id), bins) for s in seeds])
                for n in pmfs]

    return run


def all_node_seeds(pmfs: list[PmfNode], seeds: list[int]) -> list[npt.NDArray[np.uint64]]:
    run_seeds = RunSeeds(seeds)
    return [node_seeds(run_seeds, n.id) for n in pmfs]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    ap.add_argument("--quick", action="store_true", help="fewer seeds and repeats")
    args = ap.parse_args()
    n_seeds, repeats = (100, 5) if args.quick else (1000, 15)
    bins = 288
    seeds = list(range(n_seeds))
    rows: list[tuple[str, float, float, str, str]] = []
    for n_pmf, n_expr in ((100, 0), (50, 50)):
        the_plan = plan(load_model(pmf_model(n_pmf, n_expr, bins)).model)
        pmfs = [n for n in the_plan.model.nodes if isinstance(n, PmfNode)]
        many = functools.partial(the_plan.evaluate_many, seeds=seeds, sample_pmf=True)
        floor = tight_floor(pmfs, n_expr, seeds, bins)
        got = many()
        draws, derived = floor()
        assert all(np.array_equal(got[n.id], draws[i]) for i, n in enumerate(pmfs)), "draws differ"
        assert all(np.array_equal(got[f"e_{j}"], derived[j]) for j in range(n_expr)), "expressions differ"
        k = n_seeds - 1
        assert np.array_equal(got.scenario(k)[pmfs[0].id], the_plan.evaluate(seed=k, sample_pmf=True)[pmfs[0].id])
        label = f"{n_seeds} seeds x {n_pmf} pmf + {n_expr} expr x {bins} bins"
        ours, fresh = paired_median_times(many, floor, repeats)
        rows.append((label, ours, fresh, "<= 1.5x", "floor: node_seeds + inline NumPy, fresh output"))
        kept = tight_floor(pmfs, n_expr, seeds, bins, keep_output=True)
        ours, base = paired_median_times(many, kept, repeats)
        rows.append(("  (same, floor reusing its output)", ours, base, "info", "no fresh memory for the floor"))
        if n_expr == 0:
            seeds_only = median_time(functools.partial(all_node_seeds, pmfs, seeds), repeats)
            rows.append(("  node_seeds alone (in both)", seeds_only, fresh, "info",
                         "SHA-256 per seed and node; baseline: the floor"))
            naive = naive_floor(pmfs, seeds, bins)
            assert all(np.array_equal(a, b) for a, b in zip(naive(), draws, strict=True))
            ours, base = paired_median_times(many, naive, repeats)
            rows.append(("  (same, vs naive vectorised reference)", ours, base, "info", "floats + searchsorted"))
            loop = median_time(former_loop(pmfs, seeds, bins), 1)  # seconds per call: once after the warm-up
            rows.append(("  (former loop of sample() per seed)", loop, base, "info", "baseline: naive vectorised"))

    print(f"{'benchmark':46} {'flowtime':>11} {'baseline':>11} {'ratio':>7}  target    note")
    print("-" * 120)
    for name, ours, base, target, note in rows:
        print(f"{name:46} {ours * 1000:9.1f}ms {base * 1000:9.1f}ms {ours / base:6.2f}x  {target:9} {note}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
