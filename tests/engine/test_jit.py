"""
Compiled per-bin kernels (engine.jit) give the bits of the Python kernels:
on every golden case and example with loops, on generated meshes of linked
loops (one evaluation and K scenarios), and function by function on special
values; loops they cannot reproduce fall back, and compiled code is reused
from disk by a new process.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("numba", reason="numba is not installed: the compiled kernels are the optional extra [jit]")

from hypothesis import given
from hypothesis import strategies as st
from tests.engine.oracle import same_bits
from tests.engine.test_plan import _perturbed
from tests.engine.test_waves import meshes
from tests.fuzz.harness import fuzz_settings

import flowtime
from flowtime.engine import jit
from flowtime.errors import FlowTimeError
from flowtime.model.graph import graph_of
from flowtime.model.load import load_model
from flowtime.model.schema import Model

ROOT = Path(__file__).resolve().parents[2]


def _has_loops(path: Path) -> bool:
    try:
        return bool(graph_of(load_model(path.read_text(encoding="utf-8")).model).components)
    except FlowTimeError:  # the corpus' cases of errors
        return False


CORPUS = [*ROOT.glob("tests/cases/*/model.yaml"), *ROOT.glob("examples/*.yaml")]
MODELS = sorted(str(p.relative_to(ROOT)) for p in CORPUS if _has_loops(p))


@pytest.fixture(scope="module", autouse=True)
def _cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Compiled kernels go to a directory of this test run, not the user's cache."""
    path = tmp_path_factory.mktemp("jit-cache")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("FLOWTIME_CACHE_DIR", str(path))
        yield path


def both(model: Model) -> tuple[flowtime.Plan, flowtime.Plan]:
    return flowtime.plan(model, jit=False), flowtime.plan(model, jit=True)


# Kernels read short external series from a copy and long ones in place (jit.COPY_MAX).
READS = {"copied": 1 << 62, "in place": 0}


@pytest.fixture(params=sorted(READS))
def reads(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Every external series copied into XS, or every one read in place through XP."""
    monkeypatch.setattr(jit, "COPY_MAX", READS[request.param])
    return str(request.param)


@contextlib.contextmanager
def in_place() -> Iterator[None]:
    """Kernels read every external in place (for Hypothesis tests, which take no fixtures)."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(jit, "COPY_MAX", 0)
        yield


def assert_same(a: flowtime.Results, b: flowtime.Results) -> None:
    assert a.order == b.order
    for n in a.order:
        assert same_bits(a[n], b[n]), (n, a[n], b[n])


def pipeline(stages: int, bins: int) -> str:
    """The queue pipeline of issue 11: each stage serves what the one before served in the same bin."""
    nodes = [f"  - {{id: arrivals, values: {[float((7 * t) % 23) for t in range(bins)]}}}"]
    for k in range(1, stages + 1):
        src = "arrivals" if k == 1 else f"served{k - 1}"
        nodes += [f"  - {{id: cap{k}, values: {[10.0 + (t + k) % 5 for t in range(bins)]}}}",
                  f"  - {{id: served{k}, kind: expr, expr: 'MIN(cap{k}, {src} + SHIFT(backlog{k}, 1))'}}",
                  f"  - {{id: backlog{k}, kind: expr, expr: 'MAX(0, SHIFT(backlog{k}, 1) + {src} - served{k})'}}"]
    return f"schemaVersion: 1\ngrid: {{bins: {bins}, binSize: 5, binUnit: minutes}}\nnodes:\n" + "\n".join(nodes) + "\n"


# ---------------------------------------------------------------------------
# the corpus


@pytest.mark.parametrize("name", MODELS)
def test_every_golden_case_and_example_with_loops_gives_the_same_bits_compiled(name: str, reads: str) -> None:
    model = load_model((ROOT / name).read_text(encoding="utf-8"), source=name).model
    python, compiled = both(model)
    assert compiled.jit.sites, "a model with SHIFT and no feedback step: nothing compiled"
    assert all(s.state.startswith("compiled") for s in compiled.jit.sites), compiled.jit
    assert_same(python.evaluate(), compiled.evaluate())
    many_p, many_c = python.evaluate_many(seeds=[1, 2, 3]), compiled.evaluate_many(seeds=[1, 2, 3])
    assert all(same_bits(many_p[n], many_c[n]) for n in python.order)


def test_the_corpus_has_loops_to_compile() -> None:
    assert len(MODELS) >= 10
    assert {"examples/staged-pipeline.yaml", "examples/backlog-queue.yaml"} <= set(MODELS)


def test_the_pipeline_by_hand_and_its_stages_share_one_compiled_kernel() -> None:
    model = load_model(pipeline(3, 4)).model
    python, compiled = both(model)
    r = compiled.evaluate()
    # arrivals 0, 7, 14, 21; cap1 = 11, 12, 13, 14: backlog1 carries 1 into bin 3 (14 + 0 > 13)
    assert r["served1"].tolist() == [0, 7, 13, 14]
    assert r["backlog1"].tolist() == [0, 0, 1, 8]
    assert r["served2"].tolist() == [0, 7, 13, 10]  # cap2 = 12, 13, 14, 10
    assert_same(python.evaluate(), r)
    kernels = {id(s.kernel) for s in compiled.jit.sites}
    assert len(compiled.jit.sites) == 3 and len(kernels) == 1  # the stages differ only in their inputs
    assert {s.layout for s in compiled.jit.sites} == {"series-major"}  # each loop over all its bins in turn
    assert "def _j(XS, XP, S, IX0, KG0):" in compiled.source()


@pytest.mark.parametrize("bins", [5, 5000], ids=["fresh", "pooled"])
def test_the_results_are_read_only_rows_of_one_block_per_site(bins: int) -> None:
    r = flowtime.plan(load_model(pipeline(2, bins)).model, jit=True).evaluate()
    assert not r["served1"].flags.writeable
    assert r["served1"].base is r["backlog1"].base
    assert r["served1"].base is not r["served2"].base
    assert (r["served1"].base.nbytes >= jit.POOL_MIN_BYTES) == (bins == 5000)


def test_loops_reading_each_others_past_step_together_bin_major() -> None:
    """The staged pipeline of examples/: three stages, each reading the one before an hour ago, as one wave."""
    model = load_model((ROOT / "examples/staged-pipeline.yaml").read_text(encoding="utf-8")).model
    python, compiled = both(model)
    [site] = compiled.jit.sites
    assert site.layout == "bin-major" and len(site.components) == 3
    r = compiled.evaluate()
    # stage 2 gets what stage 1 served an hour ago (0, 12, 15, ..., 15, 2) and serves at most 12
    assert r["served2"].tolist() == [0, 12, 12, 12, 12, 12, 12, 12]
    assert r["backlog2"].tolist() == [0, 0, 3, 6, 9, 12, 15, 5]
    assert_same(python.evaluate(), r)


# ---------------------------------------------------------------------------
# generated models


@fuzz_settings(50)  # every mesh compiles kernels of its own: ~1 s each
@given(meshes(), st.data())
def test_linked_loops_give_the_same_bits_compiled_in_one_evaluation_and_in_lanes(text: str,
                                                                                 data: st.DataObject) -> None:
    python, compiled = both(load_model(text).model)
    assert all(s.state.startswith("compiled") for s in compiled.jit.sites), compiled.jit
    expected = python.evaluate()
    assert_same(expected, compiled.evaluate())
    k = data.draw(st.integers(1, 4))
    sets = [_perturbed(text, data)[0] for _ in range(k)]
    many_p, many_c = python.evaluate_many(sets=sets), compiled.evaluate_many(sets=sets)
    for i in range(k):
        alone = compiled.evaluate(set=sets[i])
        for n in python.order:
            assert same_bits(many_c[n], many_p[n]), n
            assert same_bits(many_c[n][i], alone[n]), (i, n)
    with in_place():
        assert_same(expected, compiled.evaluate())
        again = compiled.evaluate_many(sets=sets)
        assert all(same_bits(again[n], many_p[n]) for n in python.order)


SPECIAL = [0.0, -0.0, 0.5, -0.5, 1.5, -2.5, 3.0, -7.0, 1e-300, 5e-324, 1e300, -1e300, 2.0**53 + 1, -(2.0**62),
           0.1, 1 / 3]
CALLS = {
    "MIN": "MIN({a}, {b})", "MIN3": "MIN({a}, {b}, {c})", "MAX": "MAX({a}, {b})", "MAX3": "MAX({a}, {b}, {c})",
    "CLAMP": "CLAMP({a}, {b}, {c})", "ABS": "ABS({a})", "SQRT": "SQRT({a})", "FLOOR": "FLOOR({a})",
    "CEIL": "CEIL({a})", "ROUND": "ROUND({a})", "MOD": "MOD({a}, {b})", "IF": "IF({a}, {b}, {c})",
    "STEP": "STEP({a}, {b})", "CONV": "CONV({a}, [0.5, -1, 0.25, 1e300])", "CONV1": "CONV({a}, -2)",
    "PULSE": "PULSE(2, 1, {a})", "ARRAY": "{a} + [1, -2, 0.5]",
    "add": "{a} + {b}", "sub": "{a} - {b}", "mul": "{a} * {b}", "div": "{a} / {b}", "neg": "-{a}",
    **{op: f"{{a}} {op} {{b}}" for op in ("<", "<=", ">", ">=", "==", "!=")},
}


@fuzz_settings(100)
@given(st.sampled_from(sorted(CALLS)), st.integers(1, 6), st.data())
def test_every_function_gives_the_same_bits_compiled_on_special_values(name: str, bins: int,
                                                                       data: st.DataObject) -> None:
    """
    Each function inside a loop, on zeros of both signs, halves, huge and tiny
    numbers, infinities and NaN: once on inputs the Python kernel computes over
    whole series first (hoisted), once per bin, and once in a batch of two
    loops of one shape (vectors in the Python kernel).
    """
    nodes: list[dict[str, object]] = []
    for x in "abc":
        values = data.draw(st.lists(st.one_of(st.sampled_from(SPECIAL), st.floats(-1e6, 1e6)),
                                    min_size=bins, max_size=bins))
        # Non-finite values are no inputs: they are made by expressions, picked per bin.
        pick = data.draw(st.lists(st.sampled_from([0.0, 0.0, 1.0, 2.0, 3.0]), min_size=bins, max_size=bins))
        nodes += [{"id": f"{x}0", "kind": "const", "values": values},
                  {"id": f"{x}pick", "kind": "const", "values": pick},
                  {"id": x.upper(), "kind": "expr", "expr":
                   f"IF({x}pick == 1, 1e308 * 10, IF({x}pick == 2, -1e308 * 10, "
                   f"IF({x}pick == 3, 1e308 * 10 - 1e308 * 10, {x}0)))"}]
    fn = CALLS[name]
    same = "SHIFT({z}, 1) == SHIFT({z}, 1)"
    hoisted = fn.format(a="A", b="B", c="C")
    per_bin = fn.format(**{x: f"IF({same}, {x.upper()}, {x.upper()})" for x in "abc"})
    per_bin_2 = fn.format(**{x: f"IF({same}, {y}, {y})" for x, y in zip("abc", "BCA", strict=True)})
    nodes += [{"id": "h", "kind": "expr", "expr": f"IF({same.format(z='h')}, {hoisted}, {hoisted})"},
              {"id": "p", "kind": "expr", "expr": per_bin.format(z="p")},
              {"id": "q", "kind": "expr", "expr": per_bin_2.format(z="q")}]
    text = json.dumps({"schemaVersion": 1, "grid": {"bins": bins, "binSize": 1, "binUnit": "hours"}, "nodes": nodes})
    python, compiled = both(load_model(text).model)
    assert all(s.state.startswith("compiled") for s in compiled.jit.sites), compiled.jit
    expected = python.evaluate()
    assert_same(expected, compiled.evaluate())
    with in_place():
        assert_same(expected, compiled.evaluate())


# ---------------------------------------------------------------------------
# external series read in place, blocks reused, threads

WAVE_THEN_LOOP = """\
schemaVersion: 1
grid: {bins: {bins}, binSize: 1, binUnit: hours}
nodes:
  - {id: a, values: {values}}
  - {id: x, kind: expr, expr: 'SHIFT(x, 1) * 0.5 + a'}
  - {id: y, kind: expr, expr: 'SHIFT(y, 1) * 0.25 + SHIFT(x, 1)'}
  - {id: q, kind: expr, expr: 'MAX(0, SHIFT(q, 1) + x - 3 * y)'}
"""


def wave_then_loop(bins: int) -> str:
    """A wave (loop y reads loop x's past: bin-major, so their rows are strided) feeding a loop q."""
    values = [float((5 * t) % 7) for t in range(bins)]
    return WAVE_THEN_LOOP.replace("{bins}", str(bins)).replace("{values}", str(values))


def test_a_wave_feeding_a_loop_is_read_in_place_through_its_strides(reads: str) -> None:
    python, compiled = both(load_model(wave_then_loop(9)).model)
    assert [s.layout for s in compiled.jit.sites] == ["bin-major", "series-major"]
    r = compiled.evaluate()
    assert r["x"].strides != (8,)  # a column of the wave's block, read in place by the loop's kernel
    assert_same(python.evaluate(), r)
    sets: list[dict[str, object]] = [{"a": 1.0}, {"a": [float(t) for t in range(9)]}, {}]
    many_p, many_c = python.evaluate_many(sets=sets), compiled.evaluate_many(sets=sets)
    assert all(same_bits(many_p[n], many_c[n]) for n in python.order)


@pytest.mark.parametrize(("value", "expected"), [
    (np.arange(4.0), (0, 1)),  # one series for every lane
    (np.arange(12.0).reshape(3, 4), (4, 1)),  # a series per lane
    (np.arange(4.0).reshape(1, 4), (0, 1)),
    (np.arange(24.0).reshape(3, 4, 2)[:, :, 1], (8, 2)),  # a column of a bin-major block
    (np.float64(2.5), (0, 0)),
])
def test_an_external_is_placed_by_its_address_and_strides(value: np.ndarray, expected: tuple[int, int]) -> None:
    held: list[np.ndarray] = []
    address, lane, step = jit._place(value, 3, 4, held)
    assert (lane, step) == expected
    if not held:
        assert address == value.ctypes.data


@pytest.mark.parametrize("value", [np.arange(4), np.arange(4.0)[::-1], [0.0, 1.0, 2.0, 3.0]],
                         ids=["integers", "reversed", "a list"])
def test_an_external_a_pointer_cannot_follow_is_converted_and_held_until_read(value: object) -> None:
    held: list[np.ndarray] = []
    address, lane, step = jit._place(value, 3, 4, held)
    [copy] = held
    assert (address, lane, step) == (copy.ctypes.data, 0, 1)
    assert copy.dtype == np.float64 and copy.tolist() == np.asarray(value).tolist()


def test_an_external_of_the_wrong_shape_is_an_error() -> None:
    with pytest.raises(ValueError, match=r"a series of shape \(5,\) where \(3, 4\) lanes were expected"):
        jit._place(np.arange(5.0), 3, 4, [])
    with pytest.raises(ValueError, match="where"):
        jit._place(np.zeros((2, 4)), 3, 4, [])


def test_a_result_handed_out_never_changes_when_the_plan_is_evaluated_again(reads: str) -> None:
    text = pipeline(2, 5000)  # a pooled block per site (POOL_MIN_BYTES)
    python, compiled = both(load_model(text).model)
    caps = [{"cap1": float(c), "arrivals": [float((c * t) % 17) for t in range(5000)]} for c in (3, 9, 14)]
    kept = [compiled.evaluate(set=c) for c in caps]  # each evaluation while the ones before are alive
    kept_many = compiled.evaluate_many(sets=caps)
    for c, r in zip(caps, kept, strict=True):
        compiled.evaluate(set=c)
        compiled.evaluate_many(sets=caps[::-1])
        assert_same(python.evaluate(set=c), r)
    expected = python.evaluate_many(sets=caps)
    assert all(same_bits(kept_many[n], expected[n]) for n in python.order)


@pytest.mark.parametrize("bins", [40, 5000])
def test_an_override_of_a_series_whose_address_is_kept_is_read_and_the_kept_one_again_after(bins: int) -> None:
    """After two runs a kernel keeps the addresses of the const series handed in both times; set= replaces one."""
    python, compiled = both(load_model(pipeline(2, bins)).model)
    [site] = [s for s in compiled.jit.sites if "backlog1" in s.members]
    for _ in range(3):
        assert_same(python.evaluate(), compiled.evaluate())
    assert site.kernel is not None and site._stable is not None
    assert "cap1" in {name for _, name, _ in site._stable[1]}
    other = {"cap1": [float(t % 7) for t in range(bins)]}
    assert_same(python.evaluate(set=other), compiled.evaluate(set=other))
    assert not same_bits(compiled.evaluate(set=other)["backlog1"], compiled.evaluate()["backlog1"])
    assert_same(python.evaluate(), compiled.evaluate())


def test_a_block_is_reused_once_its_results_are_dropped() -> None:
    p = flowtime.plan(load_model(pipeline(1, 5000)).model, jit=True)
    [site] = p.jit.sites
    for _ in range(5):
        p.evaluate()  # dropped at once
    assert site._pool is not None and len(site._pool) == 1
    kept = [p.evaluate(), p.evaluate()]
    assert len(site._pool) == 3 - 1  # one block per result alive, at most two kept (engine.blocks.KEEP)
    assert kept[0]["backlog1"].base is not kept[1]["backlog1"].base


@pytest.mark.parametrize("text", [pipeline(3, 5000), pipeline(3, 40), wave_then_loop(5000)],
                         ids=["in place and pooled", "copied and fresh", "wave"])
def test_threads_evaluating_one_plan_at_once_never_see_each_others_inputs(text: str) -> None:
    """The kernels release the GIL: two threads run the same sites at once, each on its own inputs and blocks."""
    p = flowtime.plan(load_model(text).model, jit=True)
    bins, name = p.bins, "cap1" if "cap1" in p.consts else "a"
    sets = [{name: [float((k * 7 + t) % 13) for t in range(bins)]} for k in range(2)]
    expected = [p.evaluate(set=s) for s in sets]
    expected_many = p.evaluate_many(sets=sets)
    failures: list[str] = []
    start = threading.Barrier(2)

    def work(k: int) -> None:
        start.wait()
        for i in range(60):
            r = p.evaluate(set=sets[k]) if i % 3 else p.evaluate_many(sets=sets[k:] + sets[:k])
            want = expected[k] if i % 3 else None
            for n in p.order:
                got, ok = (r[n], same_bits(r[n], want[n])) if want is not None else (
                    r[n], same_bits(r[n][0], expected_many[n][k]) and same_bits(r[n][1], expected_many[n][1 - k]))
                if not ok:
                    failures.append(f"thread {k}, round {i}, {n}: {got}")

    threads = [threading.Thread(target=work, args=(k,)) for k in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert failures == []


HEAD = ("schemaVersion: 1\ngrid: {bins: 6, binSize: 1, binUnit: hours}\nnodes:\n"
        "  - {id: a, values: [1, 2, 3, 4, 5, 6]}\n")


@pytest.mark.parametrize("fn", ["EXP(a * 0.1)", "LOG(a + 1)", "POW(a, 0.5)"])
def test_a_loop_calling_exp_log_or_pow_falls_back_to_the_python_kernel_and_says_so(fn: str) -> None:
    text = HEAD + (f"  - {{id: q, kind: expr, expr: 'SHIFT(q, 1) * 0.5 + {fn}'}}\n"
                   "  - {id: r, kind: expr, expr: 'SHIFT(r, 1) + a'}\n")
    python, compiled = both(load_model(text).model)
    by_members = {s.members[0]: s.state for s in compiled.jit.sites}
    name = fn.split("(")[0]
    assert by_members["r"].startswith("compiled")
    assert by_members["q"] == f"python: {name} has no bit-identical compiled form (0015)"
    assert f"# Python kernel kept: {name} has no bit-identical compiled form" in compiled.source()
    assert_same(python.evaluate(), compiled.evaluate())


def test_a_kernel_too_long_to_compile_quickly_falls_back() -> None:
    text = HEAD + f"  - {{id: q, kind: expr, expr: 'SHIFT(q, 1){' + a' * 2000}'}}\n"
    python, compiled = both(load_model(text).model)
    [site] = compiled.jit.sites
    assert site.state == f"python: more than {jit.MAX_STATEMENTS} per-bin statements: compiling would take too long"
    assert compiled.evaluate()["q"].tolist() == [2000, 6000, 12000, 20000, 30000, 42000]  # 2000 a a bin
    assert_same(python.evaluate(), compiled.evaluate())


def test_without_numba_the_python_kernels_run(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "numba", None)  # makes `import numba` fail
    monkeypatch.setattr(jit, "_COMPILED", {})
    python, compiled = both(load_model(pipeline(2, 5)).model)
    assert [s.state for s in compiled.jit.sites] == [f"python: {jit.NO_NUMBA}"] * 2
    assert_same(python.evaluate(), compiled.evaluate())


def test_auto_compiles_a_loop_from_its_second_evaluation_and_never_a_tiny_one() -> None:
    big = flowtime.plan(load_model(pipeline(2, jit.AUTO_MIN_WORK)).model)
    small = flowtime.plan(load_model(pipeline(2, 8)).model)
    assert big.jit.mode is None and small.jit.mode is None
    first = big.evaluate()
    assert [s.kernel for s in big.jit.sites] == [None, None]
    assert big.jit.sites[0].state == "python: not compiled yet"
    second = big.evaluate()
    assert all(s.state.startswith("compiled") for s in big.jit.sites)
    assert_same(first, second)
    for _ in range(3):
        small.evaluate()
    assert [s.kernel for s in small.jit.sites] == [None, None]
    off = flowtime.plan(load_model(pipeline(2, jit.AUTO_MIN_WORK)).model, jit=False)
    for _ in range(3):
        off.evaluate()
    assert [s.state for s in off.jit.sites] == ["python: not compiled (jit=False)"] * 2


def test_a_long_first_evaluation_compiles_at_once() -> None:
    p = flowtime.plan(load_model(pipeline(1, 16)).model)
    p.evaluate_many(sets=[{}] * (jit.AUTO_EAGER_WORK // 16))
    assert p.jit.sites[0].state.startswith("compiled")


def test_plans_are_kept_per_model_and_jit_choice() -> None:
    model = load_model(pipeline(1, 4)).model
    assert flowtime.plan(model) is flowtime.plan(model)
    assert flowtime.plan(model, jit=True) is flowtime.plan(model, jit=True)
    assert flowtime.plan(model, jit=True) is not flowtime.plan(model, jit=False)


# ---------------------------------------------------------------------------
# processes


def _python(code: str, cache: Path) -> list[str]:
    env = {**os.environ, "FLOWTIME_CACHE_DIR": str(cache)}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=ROOT, check=True)
    return done.stdout.split("\n")[:-1]


def test_a_new_process_loads_the_compiled_kernel_from_the_disk_cache(tmp_path: Path) -> None:
    text = pipeline(2, 6).replace("MAX(0,", "MAX(-1,")  # a shape no other test compiles
    code = ("import flowtime, sys\nfrom flowtime.model.load import load_model\n"
            f"p = flowtime.plan(load_model({text!r}).model, jit=True)\n"
            "s = p.jit.sites[0]\nstats = s.kernel.dispatcher.stats\n"
            "print(s.state)\nprint(sum(stats.cache_hits.values()), sum(stats.cache_misses.values()))\n"
            "print(p.evaluate()['backlog2'].tolist())\n")
    first = _python(code, tmp_path)
    assert first[:2] == ["compiled: compiled", "0 1"]
    files = sorted(p.suffix for p in (tmp_path / "jit").iterdir())
    assert files == [".nbc", ".nbi"]  # one kernel: its index and its object code
    second = _python(code, tmp_path)
    assert second[:2] == ["compiled: loaded from the disk cache", "1 0"]  # nothing compiled
    assert second[2] == first[2]
    [index] = (tmp_path / "jit").glob("*.nbi")
    index.write_bytes(b"not a pickle")  # a damaged cache: compiled again, without it
    third = _python(code, tmp_path)
    assert third[0].startswith("compiled: compiled (no disk cache: ")
    assert third[2] == first[2]


def test_evaluating_a_model_once_never_imports_numba() -> None:
    """The start-up path (``flowtime run``): a model with loops, evaluated, and again (too small to compile)."""
    code = ("import sys, flowtime\nfrom flowtime.model.load import load_model\n"
            "m = load_model(open('examples/staged-pipeline.yaml').read()).model\n"
            "flowtime.evaluate(m)\nflowtime.evaluate(m)\nprint('numba' in sys.modules)\n")
    assert _python(code, ROOT / "nonexistent") == ["False"]
