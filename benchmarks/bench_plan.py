"""
Plan benchmarks (issue 11): load against PyYAML, warm re-evaluation, many seeds, loops at scale.

    python benchmarks/bench_plan.py [--quick]

Every ratio is measured side by side in the same run (the two contenders timed
in turns, medians of the repeats; ``timing.py``), and every row checks its
numbers before it is timed: a benchmark that computes something else fails
loudly instead of reporting a figure.

- **Load + plan against PyYAML.** ``plan(load_model(text).model)`` against
  ``yaml.load(text, Loader=yaml.CSafeLoader)`` on the same text (the
  ``bench_engine.chain_model`` models). The expression parse cache is emptied
  before every call (untimed), so every repeat is a cold load; PyYAML runs
  with the garbage collector paused, as FlowTime's loader pauses it.
- **Warm re-evaluation of a queue pipeline** (the "what-if slider" case): 8
  stages with backlog feedback, 36 nodes x 288 bins (and a 2-stage, 12-node
  variant), ``plan.evaluate()`` and ``plan.evaluate(set={capacity: 12})``. The
  reference's compiled Rust session engine reports ~42 us for its demo models:
  that is the mark in the baseline column. If ``flowtime.engine.jit`` and
  numba are installed, the compiled path (``plan(model, jit=True)``) is timed
  too, after checking that it gives the same bits.
- **Many seeds.** ``plan.evaluate_many(seeds=range(1000), sample_pmf=True)``
  on a 100-node x 288-bin PMF model against a vectorised NumPy floor that draws
  the same numbers with its own PCG32 code (checked against ``pmf.sample``
  and against the engine, element for element).
- **Linear at scale.** 100 feedback queues: the time per bin at 10^6 bins
  against the time per bin at 10^4 bins (``--quick``: 10^5 against 10^4).
"""

from __future__ import annotations

import argparse
import gc
import hashlib
import importlib.util
import inspect
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
import yaml

from bench_engine import chain_model, queues_floor_stepped, queues_model
from flowtime.engine import plan
from flowtime.engine.pmf import node_seed, sample
from flowtime.expr import parser
from flowtime.model.load import load_model
from flowtime.model.schema import PmfNode
from table import Row, Target, duration, print_table
from timing import median_time, paired_median_times

MARK = 42e-6  # the reference's Rust session engine on its demo models (issue 11)
Block = npt.NDArray[np.float64]


def same_bits(a: Any, b: Any) -> bool:
    """Equal bit for bit (so +0 and -0 differ, and a NaN equals the same NaN)."""
    x, y = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    return x.shape == y.shape and bool(np.array_equal(x.view(np.uint64), y.view(np.uint64)))


# -- load + plan ---------------------------------------------------------------------------------


def cold_caches() -> None:
    """Forget every parsed expression and skeleton, so the next load parses all of them again."""
    cached = getattr(parser, "_parse_cached", None)
    if cached is not None:
        cached.cache_clear()
    skeletons = getattr(parser, "shapes", None)
    if skeletons is not None:
        skeletons.clear()
    gc.collect()


def pyyaml_load(text: str, paused: bool = True) -> Any:
    """
    The baseline: PyYAML's C loader, with the cyclic garbage collector paused
    (as FlowTime's loader pauses it), so the baseline does not pay for walking
    whatever else lives in this process.
    """
    if paused:
        gc.disable()
    try:
        return yaml.load(text, Loader=yaml.CSafeLoader)
    finally:
        gc.enable()


def load_rows(quick: bool, repeats: int) -> list[Row]:
    rows = []
    for n_expr, bins, limit in ((1000, 1000, 1.3), (10_000, 100, 1.5)):
        if quick:
            n_expr //= 10
        text, _ = chain_model(n_expr, bins)
        assert plan(load_model(text).model).evaluate()[f"n_{n_expr - 1}"].shape == (bins,)
        ours, base = paired_median_times(lambda t=text: plan(load_model(t).model),
                                         lambda t=text: pyyaml_load(t),
                                         repeats, before=cold_caches)
        rows.append(Row(f"load + plan {n_expr} x {bins} vs PyYAML", ours, base, Target.at_most(limit),
                        f"baseline: yaml.load CSafeLoader, gc paused; {len(text) / 1e3:,.0f} kB of YAML"))
        ours, base = paired_median_times(lambda t=text: plan(load_model(t).model),
                                         lambda t=text: pyyaml_load(t, paused=False),
                                         max(3, repeats // 2), before=cold_caches)
        rows.append(Row("  (same, PyYAML with the collector on)", ours, base, Target.info(),
                        "a looser baseline: PyYAML also walks this process's heap"))
    return rows


# -- the queue pipeline --------------------------------------------------------------------------


def pipeline_model(stages: int, capacity: Sequence[float] | None = None, bins: int = 288) -> tuple[str, list[float]]:
    """
    ``stages`` queue stages in a row, each with backlog feedback, and three
    totals: 4 * stages + 4 nodes (36 for 8 stages, 12 for 2).

        served_k  = MIN(capacity_k, in_k + SHIFT(backlog_k, 1))
        backlog_k = MAX(0, SHIFT(backlog_k, 1) + in_k - served_k)
        utilization_k = served_k / capacity_k       in_1 = demand, in_k = served_(k-1)
    """
    rng = np.random.default_rng(5)
    demand = np.round(rng.uniform(6, 14, bins), 2).tolist()
    caps = list(capacity) if capacity is not None else [10.0 + 0.5 * (k % 3) for k in range(1, stages + 1)]
    lines = ["schemaVersion: 1", f"grid: {{bins: {bins}, binSize: 5, binUnit: minutes}}", "nodes:",
             f"  - {{id: demand, kind: const, values: {demand}}}"]
    for k in range(1, stages + 1):
        src = "demand" if k == 1 else f"served_{k - 1}"
        lines += [f"  - {{id: capacity_{k}, kind: const, values: {caps[k - 1]!r}}}",
                  f"  - {{id: served_{k}, kind: expr, expr: 'MIN(capacity_{k}, {src} + SHIFT(backlog_{k}, 1))'}}",
                  f"  - {{id: backlog_{k}, kind: expr, expr: 'MAX(0, SHIFT(backlog_{k}, 1) + {src} - served_{k})'}}",
                  f"  - {{id: utilization_{k}, kind: expr, expr: 'served_{k} / capacity_{k}'}}"]
    backlogs = " + ".join(f"backlog_{k}" for k in range(1, stages + 1))
    utils = " + ".join(f"utilization_{k}" for k in range(1, stages + 1))
    lines += [f"  - {{id: wip, kind: expr, expr: '{backlogs}'}}",
              f"  - {{id: unserved, kind: expr, expr: 'demand - served_{stages}'}}",
              f"  - {{id: mean_utilization, kind: expr, expr: '({utils}) / {stages}'}}"]
    return "\n".join(lines) + "\n", caps


def pipeline_by_hand(demand: Sequence[float], caps: Sequence[float]) -> Callable[[], dict[str, list[float]]]:
    """The same arithmetic written as a plain Python loop over floats, bin by bin."""
    bins, stages = len(demand), len(caps)

    def run() -> dict[str, list[float]]:
        out: dict[str, list[float]] = {"demand": list(demand)}
        inflow = out["demand"]
        for k, cap in enumerate(caps, 1):
            served, backlog = [0.0] * bins, [0.0] * bins
            prev = 0.0
            for t in range(bins):
                x = inflow[t]
                s = min(cap, x + prev) + 0.0  # MIN and MAX give +0 for a zero (decision 0003)
                prev = max(0.0, prev + x - s) + 0.0
                served[t], backlog[t] = s, prev
            out[f"capacity_{k}"], out[f"served_{k}"], out[f"backlog_{k}"] = [cap] * bins, served, backlog
            out[f"utilization_{k}"] = [s / cap for s in served]
            inflow = served
        out["wip"] = [sum(v) for v in zip(*(out[f"backlog_{k}"] for k in range(1, stages + 1)), strict=True)]
        out["unserved"] = [d - s for d, s in zip(demand, inflow, strict=True)]
        out["mean_utilization"] = [sum(v) / stages for v in
                                   zip(*(out[f"utilization_{k}"] for k in range(1, stages + 1)), strict=True)]
        return out

    return run


def jit_missing() -> str | None:
    """Why the compiled path cannot be timed here, or None if it can."""
    if "jit" not in inspect.signature(plan).parameters:
        return "plan() takes no jit="
    if importlib.util.find_spec("flowtime.engine.jit") is None:
        return "no flowtime.engine.jit"
    if importlib.util.find_spec("numba") is None:
        return "numba is not installed"
    return None


def paths(model: Any) -> list[tuple[str, Any]]:
    """
    The plans to time: the default, and where ``plan`` takes ``jit=``, the
    pure NumPy path (``jit=False``) and, with Numba, the compiled one
    (``jit=True``). The default may itself compile (``jit=None`` is "auto").
    """
    out: list[tuple[str, Any]] = [("", plan(model))]
    if "jit" in inspect.signature(plan).parameters:
        out.append((", jit=False", plan(model, jit=False)))
        if jit_missing() is None:
            out.append((", jit=True", plan(model, jit=True)))
    return out


def loop_state(p: Any) -> str:
    """How the plan's feedback loops run, where the plan says (``engine.jit`` sites), e.g. "2/8 loops compiled"."""
    sites = list(getattr(getattr(p, "jit", None), "sites", None) or [])
    states = [str(getattr(s, "state", "")) for s in sites]
    if not states:
        return ""
    fell_back = [x for x in states if x.startswith("python")]
    text = f"{len(states) - len(fell_back)}/{len(states)} loop sites compiled"
    return text + (f" ({fell_back[0][:60]})" if fell_back else "")


def pipeline_rows(quick: bool) -> list[Row]:
    repeats = 100 if quick else 500
    rows = []
    for stages in (8, 2):
        text, caps = pipeline_model(stages)
        changed = min(3, stages)  # capacity_3, or the last stage's in the 2-stage variant
        edited_caps = [12.0 if k == changed else c for k, c in enumerate(caps, 1)]
        edited_text, _ = pipeline_model(stages, edited_caps)
        model = load_model(text).model
        n_nodes = len(model.nodes)
        by_hand = None
        edit = {f"capacity_{changed}": 12}
        edited = plan(load_model(edited_text).model).evaluate()
        for label, p in paths(model):
            warm = p.evaluate()
            if by_hand is None:
                by_hand = pipeline_by_hand(warm["demand"].tolist(), caps)
                expected = by_hand()
                assert set(warm.series) == set(expected), "the pipeline has other nodes than the loop by hand"
            assert all(np.array_equal(warm[n], expected[n]) for n in expected), f"pipeline{label} differs"
            assert all(same_bits(p.evaluate(set=edit)[n], edited[n]) for n in edited.series), \
                f"set={edit}{label} differs from editing the YAML"
            changed_fn: Callable[[], Any] = lambda p=p, e=edit: p.evaluate(set=e)  # noqa: E731
            t_set, t_warm = paired_median_times(changed_fn, p.evaluate, repeats)
            name = f"{n_nodes} nodes x 288 bins: warm{label}"
            target = Target.within(150e-6) if stages == 8 else Target.info()
            state = loop_state(p)
            rows.append(Row(name, t_warm, MARK, target,
                            "baseline: the reference's 42 us (Rust session)" + (f"; {state}" if state else "")))
            rows.append(Row(f"  same, set={{capacity_{changed}: 12}}{label}", t_set, t_warm,
                            Target.at_most(1.1) if stages == 8 else Target.info(), "baseline: warm evaluate()"))
        assert by_hand is not None
        loop = median_time(by_hand, max(20, repeats // 10))
        rows.append(Row("  (same arithmetic, pure-Python loop)", loop, MARK, Target.info(),
                        "hand-written per-bin floats; baseline: 42 us"))
    return rows


# -- many seeds ----------------------------------------------------------------------------------

MULT, INC = 6364136223846793005, 1442695040888963407
_M64 = (1 << 64) - 1


def pmf_model(n_pmf: int, n_expr: int, bins: int = 288) -> str:
    """``n_pmf`` PMF nodes of 3 to 6 values, and ``n_expr`` expressions over two of them each."""
    rng = np.random.default_rng(4)
    lines = ["schemaVersion: 1", f"grid: {{bins: {bins}, binSize: 5, binUnit: minutes}}", "nodes:"]
    for i in range(n_pmf):
        m = 3 + i % 4
        values = (np.sort(rng.choice(200, m, replace=False)) / 10).tolist()
        weights = rng.integers(1, 10, m)
        probabilities = np.round(weights / weights.sum(), 3)
        probabilities[-1] = round(1 - probabilities[:-1].sum(), 3)
        lines.append(f"  - {{id: pmf_{i}, kind: pmf, pmf: {{values: {values}, "
                     f"probabilities: {probabilities.tolist()}}}}}")
    for i in range(n_expr):
        lines.append(f"  - {{id: load_{i}, kind: expr, expr: 'pmf_{i % n_pmf} * 1.5 + pmf_{(i + 1) % n_pmf} * 0.5'}}")
    return "\n".join(lines) + "\n"


def pmf_floor(pmfs: list[PmfNode], n_expr: int, seeds: Sequence[int], bins: int, *,
              fresh: bool = False, rows: int = 128) -> Callable[[], tuple[Block, Block]]:
    """
    Every PMF node's draws for every seed, and the expressions, as directly as
    NumPy allows, written here from the generator's definition (PCG-XSH-RR,
    seeded as the reference does; not the engine's code, which is what is
    measured):

    - stream seeds: SHA-256 of ``"{seed}:{node}"`` (``pmf.node_seed``), with
      each seed's prefix hashed once and its state copied per node;
    - the LCG state after j steps is ``A[j] * s + C[j]`` (mod 2**64), so a
      block of seeds x bins is one multiply-add with coefficients built once;
    - the XSH-RR output on uint64 lanes, then uint32 for the rotation;
    - the inverse CDF as integer comparisons: ``cumulative[i] >= x / 2**32``
      exactly when ``x <= floor(cumulative[i] * 2**32)``, so the index of a
      draw is the number of thresholds it exceeds;
    - ``rows`` seeds at a time (measured best: the buffers stay in cache), the
      results written with ``out=`` into blocks allocated once (or per call,
      ``fresh=True``), no temporaries per node.
    """
    k, n_pmf = len(seeds), len(pmfs)
    a, c = np.empty(bins, np.uint64), np.empty(bins, np.uint64)
    x, y = MULT, INC  # draw j uses the state j + 1 steps on (the reference discards one warm-up draw)
    for j in range(bins):
        a[j], c[j] = x, y
        x, y = (x * MULT) & _M64, (y * MULT + INC) & _M64
    state, word = np.empty((rows, bins), np.uint64), np.empty((rows, bins), np.uint64)
    x32, rot, left = (np.empty((rows, bins), np.uint32) for _ in range(3))
    index, above = np.empty((rows, bins), np.uint8), np.empty((rows, bins), np.bool_)
    tables = []
    for node in pmfs:
        cumulative = np.cumsum(node.probabilities)[: len(node.values) - 1]
        limits = np.clip(np.floor(cumulative * 2.0**32), 0, 2.0**32 - 1).astype(np.uint32)
        tables.append((node.id.encode(), node.values, list(limits)))
    kept = np.empty((n_pmf, k, bins)), np.empty((n_expr, k, bins))
    scratch = np.empty((k, bins))
    c15, c05 = np.full((k, bins), 1.5), np.full((k, bins), 0.5)
    u18, u27, u59, u31 = np.uint64(18), np.uint64(27), np.uint64(59), np.uint32(31)
    sha = hashlib.sha256

    def run() -> tuple[Block, Block]:
        draws, derived = (np.empty((n_pmf, k, bins)), np.empty((n_expr, k, bins))) if fresh else kept
        prefixes = [sha(b"%d:" % (s & _M64)) for s in seeds]
        for i, (suffix, values, limits) in enumerate(tables):
            digests = []
            for h in prefixes:
                h = h.copy()
                h.update(suffix)
                digests.append(h.digest())
            stream = np.frombuffer(b"".join(digests), dtype="<u8")[::4].astype(np.uint64)[:, None]
            for r0 in range(0, k, rows):
                r1 = min(k, r0 + rows)
                m = r1 - r0
                st, w, x_, r_, lf, ix, ab = (b[:m] for b in (state, word, x32, rot, left, index, above))
                with np.errstate(over="ignore"):
                    np.multiply(stream[r0:r1], a, out=st)
                    np.add(st, c, out=st)
                np.right_shift(st, u18, out=w)
                np.bitwise_xor(w, st, out=w)
                np.right_shift(w, u27, out=w)
                np.copyto(x_, w, casting="unsafe")  # the low 32 bits
                np.right_shift(st, u59, out=w)
                np.copyto(r_, w, casting="unsafe")
                np.negative(r_, out=lf)
                np.bitwise_and(lf, u31, out=lf)
                np.left_shift(x_, lf, out=lf)
                np.right_shift(x_, r_, out=x_)
                np.bitwise_or(x_, lf, out=x_)
                np.greater(x_, limits[0], out=ix.view(np.bool_))
                for lim in limits[1:]:
                    np.greater(x_, lim, out=ab)
                    np.add(ix, ab.view(np.uint8), out=ix)
                np.take(values, ix, out=draws[i, r0:r1], mode="clip")  # "clip": NumPy's fast path for small ints
        for j in range(n_expr):
            np.multiply(draws[j % n_pmf], c15, out=derived[j])
            np.multiply(draws[(j + 1) % n_pmf], c05, out=scratch)
            np.add(derived[j], scratch, out=derived[j])
        return draws, derived

    return run


def many_rows(quick: bool) -> list[Row]:
    n_seeds, repeats = (100, 5) if quick else (1000, 9)
    bins = 288
    seeds = list(range(n_seeds))
    rows = []
    for n_pmf, n_expr in ((50, 50), (100, 0)):
        p = plan(load_model(pmf_model(n_pmf, n_expr, bins)).model)
        pmfs = [n for n in p.model.nodes if isinstance(n, PmfNode)]
        floor = pmf_floor(pmfs, n_expr, seeds, bins)
        draws, derived = floor()
        for i, node in enumerate(pmfs[:3]):  # the floor draws the reference's numbers...
            for s in (seeds[0], seeds[-1]):
                assert same_bits(draws[i, s], sample(node.values, node.probabilities, node_seed(s, node.id), bins))
        many: Callable[[], Any] = lambda p=p: p.evaluate_many(seeds=seeds, sample_pmf=True)  # noqa: E731
        got = many()  # ...and the engine the floor's
        assert all(same_bits(got[n.id], draws[i]) for i, n in enumerate(pmfs)), "evaluate_many draws differ"
        assert all(same_bits(got[f"load_{j}"], derived[j]) for j in range(n_expr)), "evaluate_many exprs differ"
        ours, base = paired_median_times(many, floor, repeats)
        name = f"evaluate_many: {n_seeds} seeds x {n_pmf + n_expr} nodes x {bins}"
        rows.append(Row(name, ours, base, Target.at_most(1.5),
                        f"{n_pmf} pmf + {n_expr} expr; floor: own PCG32 in NumPy, output kept"))
        fresh = pmf_floor(pmfs, n_expr, seeds, bins, fresh=True)
        ours, base = paired_median_times(many, fresh, repeats)
        rows.append(Row("  (same, floor with fresh output per call)", ours, base, Target.info(),
                        "as the engine must: results are fresh arrays"))
    return rows


# -- loops at scale ------------------------------------------------------------------------------


def scaling_rows(quick: bool) -> list[Row]:
    small, large = 10_000, (100_000 if quick else 1_000_000)
    times: dict[str, dict[int, float]] = {}
    for bins in (small, large):
        model, arrivals, capacity = queues_model(100, bins)
        floor = queues_floor_stepped(arrivals, capacity)
        ref = floor()
        for label, p in [*paths(model), (" floor", None)]:
            fn = floor if p is None else p.evaluate
            if p is not None:
                res = p.evaluate()
                assert all(np.array_equal(res[f"q_{i}"], ref[:, i]) for i in range(100)), f"queues{label} differ"
                del res
            # The short grid takes milliseconds: enough repeats that one lucky run is not the median.
            times.setdefault(label, {})[bins] = median_time(fn, 31 if bins == small else 3)
        del model, floor, ref, arrivals, capacity
    span = f"{large:.0e} vs {small:.0e}".replace("e+0", "e")
    rows = []
    for label, t in times.items():
        name = f"100 queues, per bin: {span} bins{label}" if label != " floor" else "  (same, stepped NumPy floor)"
        target = Target.at_most(1.3) if label == "" else Target.info()
        rows.append(Row(name, t[large] / large, t[small] / small, target,
                        f"{duration(t[large])} at {large:,} bins, {duration(t[small])} at {small:,}"))
    return rows


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    ap.add_argument("--quick", action="store_true", help="smaller sizes, fewer repeats")
    args = ap.parse_args()
    q = args.quick
    t0 = time.perf_counter()
    why_not = jit_missing()
    rows = load_rows(q, 5 if q else 11)
    rows += pipeline_rows(q)
    rows += many_rows(q)
    rows += scaling_rows(q)
    print_table(rows)
    if why_not is not None:
        print(f"compiled path (plan(model, jit=True)) not timed: {why_not}")
    print(f"(NumPy {np.__version__}, PyYAML {yaml.__version__}, Python {sys.version.split()[0]}; "
          f"{time.perf_counter() - t0:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
