"""
Satellites (0029): the small acyclic nodes next to a standalone loop - one it
reads (a head), one reading it (a tail) - are computed by the loop's step: in
its compiled kernel, bin by bin, or by programs around the Python kernel. Which
nodes qualify (``schedule.satellites``), and that either way every series has
the bits the programs give.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from tests.engine.oracle import same_bits

import flowtime
from flowtime.engine import jit
from flowtime.engine.schedule import levels, loop_expressions, satellites
from flowtime.expr import functions as fx
from flowtime.model.graph import graph_of
from flowtime.model.load import load_model

compiled_only = pytest.mark.skipif(importlib.util.find_spec("numba") is None,
                                   reason="numba is not installed: the compiled kernels are the optional extra [jit]")


@pytest.fixture(scope="module", autouse=True)
def _cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Compiled kernels go to a directory of this test run, not the user's cache."""
    path = tmp_path_factory.mktemp("jit-cache")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("FLOWTIME_CACHE_DIR", str(path))
        yield path


def text(*nodes: str, bins: int = 4, a: list[float] | None = None) -> str:
    a = [5.0, 1.0, 4.0, 0.0] if a is None else a
    lines = [f"  - {{id: a, values: {a}}}", *(f"  - {n}" for n in nodes)]
    return f"schemaVersion: 1\ngrid: {{bins: {bins}, binSize: 1, binUnit: hours}}\nnodes:\n" + "\n".join(lines) + "\n"


CAP = "{id: cap, kind: expr, expr: 'MIN(a, 3)'}"
Q = "{id: q, kind: expr, expr: 'MAX(0, SHIFT(q, 1) + a - cap)'}"
LATE = "{id: late, kind: expr, expr: 'q - cap'}"
QUEUE = text(CAP, Q, LATE)


def near(source: str, compilable: object = jit.compilable) -> dict[int, tuple[list[str], list[str]]]:
    g = graph_of(load_model(source).model)
    asts = loop_expressions(g)
    return satellites(g, levels(g, asts), asts, compilable)  # type: ignore[arg-type]


def assert_same(a: flowtime.Results, b: flowtime.Results) -> None:
    assert a.order == b.order
    for n in a.order:
        assert same_bits(a[n], b[n]), (n, a[n], b[n])


# ---------------------------------------------------------------------------
# which nodes


def test_a_node_the_loop_reads_and_one_reading_it_go_with_it_and_a_tail_of_a_tail_too() -> None:
    assert near(QUEUE) == {0: (["cap"], ["late"])}
    chained = text(CAP, Q, LATE, "{id: later, kind: expr, expr: 'late * 2'}")
    assert near(chained) == {0: (["cap"], ["late", "later"])}


def test_a_node_read_before_the_loops_step_stays_where_it_is() -> None:
    # `side` sits on the loop's level (cap's level + 1): it runs before the loop's step, so cap must too
    side = text(CAP, Q, LATE, "{id: side, kind: expr, expr: 'cap * 2'}")
    assert near(side) == {0: ([], ["late"])}
    # read after the loop's step only: cap may go with the loop
    after = text(CAP, Q, LATE, "{id: after, kind: expr, expr: 'late + cap'}")
    assert near(after) == {0: (["cap"], ["late", "after"])}


def test_a_node_two_loops_read_or_one_reading_two_loops_stays_where_it_is() -> None:
    other = "{id: p, kind: expr, expr: 'MAX(0, SHIFT(p, 1) + a - cap)'}"
    both = "{id: both, kind: expr, expr: 'q + p'}"
    assert near(text(CAP, Q, other, both)) == {}


def test_a_node_the_kernel_cannot_write_bit_for_bit_or_too_big_stays_where_it_is() -> None:
    exp = text(CAP, Q, "{id: grown, kind: expr, expr: 'EXP(q)'}")
    assert near(exp) == {0: (["cap"], [])}
    assert near(exp, lambda e: True) == {0: (["cap"], ["grown"])}  # EXP is kept out by jit.compilable alone
    big = text(CAP, Q, "{id: big, kind: expr, expr: '" + " + ".join(["q"] * 40) + "'}")  # 79 syntax nodes
    assert near(big) == {0: (["cap"], [])}


def test_loops_of_a_wave_take_no_satellites() -> None:
    wave = text("{id: q1, kind: expr, expr: 'SHIFT(q1, 1) + a'}",
                "{id: q2, kind: expr, expr: 'SHIFT(q2, 1) + SHIFT(q1, 1)'}",
                "{id: out2, kind: expr, expr: 'q2 * 2'}")
    assert near(wave) == {}


def test_a_function_replaced_in_the_table_keeps_its_node_out_of_the_kernel(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(fx.FUNCTIONS, "MIN", dataclasses.replace(fx.FUNCTIONS["MIN"],
                                                                 vector=lambda *xs: fx.v_min(*xs) + 1.0))
    assert near(QUEUE) == {0: ([], ["late"])}
    r = flowtime.plan(load_model(QUEUE).model, jit=True).evaluate()
    # cap = MIN(a, 3) + 1 = 4, 2, 4, 1; q = max(0, q' + a - cap) = 1, 0, 0, 0 (0 + 0 - 1 < 0)
    assert r["cap"].tolist() == [4, 2, 4, 1]
    assert r["q"].tolist() == [1, 0, 0, 0]
    assert r["late"].tolist() == [-3, -2, -4, -1]


# ---------------------------------------------------------------------------
# computed with the loop


@compiled_only
def test_the_compiled_kernel_computes_the_satellites_with_the_bits_of_the_programs() -> None:
    model = load_model(QUEUE).model
    python, compiled = flowtime.plan(model, jit=False), flowtime.plan(model, jit=True)
    r = compiled.evaluate()
    [site] = compiled.jit.sites
    assert site.absorbs and site.satellites == {"cap", "late"} and site.members == ["q"]
    # cap = 3, 1, 3, 0; q = 5 - 3 = 2, 2 + 1 - 1 = 2, 2 + 4 - 3 = 3, 3 + 0 - 0 = 3; late = q - cap
    assert r["cap"].tolist() == [3, 1, 3, 0]
    assert r["q"].tolist() == [2, 2, 3, 3]
    assert r["late"].tolist() == [-1, 1, 0, 3]
    assert not any(r[n].flags.writeable for n in r.order)
    assert python.jit.sites[0].satellites == frozenset()  # jit=False: the programs compute them, as before
    assert_same(python.evaluate(), r)


@compiled_only
def test_overrides_and_scenarios_reach_the_satellites_in_the_kernel() -> None:
    model = load_model(QUEUE).model
    python, compiled = flowtime.plan(model, jit=False), flowtime.plan(model, jit=True)
    r = compiled.evaluate(set={"a": 2})
    # a = 2: cap = 2, q = max(0, q' + 2 - 2) = 0, late = -2 in every bin
    assert (r["cap"].tolist(), r["q"].tolist(), r["late"].tolist()) == ([2] * 4, [0] * 4, [-2] * 4)
    assert_same(python.evaluate(set={"a": 2}), r)
    many = compiled.evaluate_many(sets=[{}, {"a": 2}, {"a": [0, 9, 0, 9]}])
    for k, given in enumerate([{}, {"a": 2}, {"a": [0, 9, 0, 9]}]):
        alone = python.evaluate(set=given)
        assert all(same_bits(many[n][k], alone[n]) for n in alone.order), given
    # a = 0, 9, 0, 9: cap = 0, 3, 0, 3; q = 0, 6, 6, 12; late = 0, 3, 6, 9
    assert many["late"][2].tolist() == [0, 3, 6, 9]


@compiled_only
def test_auto_gives_the_same_bits_before_and_after_the_kernel_takes_the_satellites() -> None:
    bins = jit.AUTO_MIN_WORK
    source = text(CAP, Q, LATE, bins=bins, a=[float((7 * t) % 6) for t in range(bins)])
    p = flowtime.plan(load_model(source).model)
    first = p.evaluate()
    [site] = p.jit.sites
    assert site.kernel is None and not site.absorbs
    second = p.evaluate()
    assert site.kernel is not None and site.absorbs
    assert_same(first, second)
    assert_same(flowtime.plan(load_model(source).model, jit=False).evaluate(), second)


@compiled_only
def test_a_kernel_too_long_with_its_satellites_is_compiled_without_them(monkeypatch: pytest.MonkeyPatch) -> None:
    g = graph_of(load_model(QUEUE).model)
    asts = loop_expressions(g)
    alone, together = jit.body(["q"], asts).statements, jit.body(["cap", "q", "late"], asts).statements
    assert alone < together
    monkeypatch.setattr(jit, "MAX_STATEMENTS", alone)
    p = flowtime.plan(load_model(QUEUE).model, jit=True)
    [site] = p.jit.sites
    assert site.state.startswith("compiled") and not site.absorbs
    r = p.evaluate()
    assert r["late"].tolist() == [-1, 1, 0, 3]
    assert_same(flowtime.plan(load_model(QUEUE).model, jit=False).evaluate(), r)


def test_without_a_kernel_the_programs_compute_the_satellites(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "numba", None)  # makes `import numba` fail
    monkeypatch.setattr(jit, "_COMPILED", {})
    p = flowtime.plan(load_model(QUEUE).model, jit=True)
    [site] = p.jit.sites
    assert site.state == f"python: {jit.NO_NUMBA}" and site.satellites == {"cap", "late"}
    r = p.evaluate()
    assert r["cap"].tolist() == [3, 1, 3, 0]
    assert r["late"].tolist() == [-1, 1, 0, 3]
    many = p.evaluate_many(sets=[{}, {"a": 2}])
    assert np.array_equal(many["late"], [[-1, 1, 0, 3], [-2, -2, -2, -2]])
