"""
Feedback loops that read each other's past: scheduled on one level and stepped
together as a wave (engine.schedule, engine.feedback), checked against a
bin-by-bin interpreter that knows nothing of either.
"""

from __future__ import annotations

import json

import pytest
from hypothesis import event, given
from hypothesis import strategies as st
from tests.engine.oracle import interpret, same_bits
from tests.fuzz.harness import fuzz_settings

from flowtime.artifacts.canonical import series_csv
from flowtime.engine import compile_model, evaluate
from flowtime.engine.feedback import loop_kernel, wave_kernel
from flowtime.engine.schedule import levels
from flowtime.model.load import load_model

HEAD = "schemaVersion: 1\ngrid: {bins: 6, binSize: 1, binUnit: hours}\nnodes:\n"


def chain(n: int) -> str:
    """n delays in a row: each stock keeps half of itself and gets the previous stock's outflow."""
    body = "  - {id: inflow, values: [8, 8, 0, 0, 0, 0]}\n"
    for k in range(1, n + 1):
        src = "inflow" if k == 1 else f"out{k - 1}"
        body += f"  - {{id: s{k}, kind: expr, expr: 'SHIFT(s{k}, 1) + SHIFT({src}, 1) - SHIFT(out{k}, 1)'}}\n"
        body += f"  - {{id: out{k}, kind: expr, expr: 's{k} * 0.5'}}\n"
    return HEAD + body


def test_a_chain_of_delays_is_one_level_and_one_wave() -> None:
    graph = compile_model(load_model(chain(5)).model)
    schedule = levels(graph)
    assert [lv.nodes for lv in schedule] == [["inflow"], []]
    assert len(schedule[1].waves) == 1 and len(schedule[1].waves[0]) == 5
    # The first stock reads the inflow, the other four read a peer: two shapes, one of them a vector group.
    kernel = wave_kernel([graph.components[c] for c in schedule[1].waves[0]], graph.exprs)
    assert sorted(len(g.components) for g in kernel.groups) == [1, 4]


def test_a_chain_of_delays_by_hand() -> None:
    r = evaluate(load_model(chain(3)).model)
    # s1: 0, 8, 12, 6, 3, 1.5 (keeps half, plus the inflow of the bin before)
    assert r["s1"].tolist() == [0, 8, 12, 6, 3, 1.5]
    assert r["out1"].tolist() == [0, 4, 6, 3, 1.5, 0.75]
    # s2[t] = s2[t-1] * 0.5 + out1[t-1]
    assert r["s2"].tolist() == [0, 0, 4, 8, 7, 5]
    assert r["s3"].tolist() == [0, 0, 0, 2, 5, 6]
    assert all(not r[n].flags.writeable for n in r.order)


def test_a_compound_shift_argument_reads_a_peers_present_after_every_peer_stepped() -> None:
    # b's history argument mixes its own and a's present values: recorded at the end of each bin.
    text = HEAD + (
        "  - {id: x, values: [1, 2, 3, 4, 5, 6]}\n"
        "  - {id: a, kind: expr, expr: 'SHIFT(a, 1) + x'}\n"
        "  - {id: b, kind: expr, expr: 'SHIFT(b + a * 10, 1) + SHIFT(a, 2)'}\n"
    )
    graph = compile_model(load_model(text).model)
    assert [len(lv.waves) for lv in levels(graph)] == [0, 1]
    r = evaluate(graph)
    assert r["a"].tolist() == [1, 3, 6, 10, 15, 21]
    # b[t] = b[t-1] + 10 a[t-1] + a[t-2]
    assert r["b"].tolist() == [0, 10, 41, 104, 210, 370]
    assert r["b"].tolist() == interpret(graph)["b"]


def test_lags_beyond_the_grid_and_lag_zero_peers_split_levels() -> None:
    text = HEAD + (
        "  - {id: a, kind: expr, expr: 'SHIFT(a, 1) + 1'}\n"
        "  - {id: b, kind: expr, expr: 'SHIFT(b, 1) + SHIFT(a, 9)'}\n"  # beyond the grid: always 0
        "  - {id: c, kind: expr, expr: 'SHIFT(c, 1) + a'}\n"  # reads a's present: a later level
    )
    graph = compile_model(load_model(text).model)
    assert [([len(w) for w in lv.waves], len(lv.alone)) for lv in levels(graph)] == [([2], 0), ([], 1)]
    r = evaluate(graph)
    assert r["b"].tolist() == [0] * 6
    assert r["c"].tolist() == [1, 3, 6, 10, 15, 21]


def test_loops_that_differ_only_in_their_numbers_share_a_kernel_and_keep_their_numbers() -> None:
    # more loops than bins, so each number's column must not be mistaken for a series
    numbers = [(1, 3), (2, 1), (0.5, 4), (1, 0), (3, 0.5), (1, 2), (0, 5), (1.5, 1)]
    text = HEAD + "".join(
        f"  - {{id: q{i}, kind: expr, expr: 'SHIFT(q{i}, 1) * {r} + SHIFT({k}, 1)'}}\n"
        for i, (r, k) in enumerate(numbers)
    )
    graph = compile_model(load_model(text).model)
    [level] = levels(graph)
    kernels = [loop_kernel(graph.components[c], graph.exprs) for c in level.alone]
    assert len(kernels) == 8 and len({k.shape_key for k in kernels}) == 1  # one vector kernel for all
    r = evaluate(graph)
    assert r["q0"].tolist() == [0, 3, 6, 9, 12, 15]
    assert r["q1"].tolist() == [0, 1, 3, 7, 15, 31]
    assert r["q2"].tolist() == [0, 4, 6, 7, 7.5, 7.75]
    assert r["q7"].tolist() == [0, 1, 2.5, 4.75, 8.125, 13.1875]
    expected = interpret(graph)
    assert all(r[n].tolist() == expected[n] for n in graph.order)


def test_a_delay_chain_with_a_rate_per_stage_is_still_two_groups() -> None:
    body = "  - {id: inflow, values: [8, 8, 0, 0, 0, 0]}\n"
    for k in range(1, 6):
        src = "inflow" if k == 1 else f"out{k - 1}"
        body += f"  - {{id: s{k}, kind: expr, expr: 'SHIFT(s{k}, 1) + SHIFT({src}, 1) - SHIFT(out{k}, 1)'}}\n"
        body += f"  - {{id: out{k}, kind: expr, expr: 's{k} * {k / 10}'}}\n"
    graph = compile_model(load_model(HEAD + body).model)
    [wave] = levels(graph)[1].waves
    kernel = wave_kernel([graph.components[c] for c in wave], graph.exprs)
    assert sorted(len(g.components) for g in kernel.groups) == [1, 4]
    r = evaluate(graph)
    expected = interpret(graph)
    assert all(r[n].tolist() == expected[n] for n in graph.order)
    # out1 = 0, 0.8, 1.52 (10 % of s1 = 0, 8, 15.2); s2 = 0, 0, 0.8, 2.16 keeps 80 % and gets out1
    assert r["out2"].tolist()[:4] == pytest.approx([0, 0, 0.16, 0.432])


def test_a_loop_writes_the_same_bytes_alone_or_batched_with_a_look_alike() -> None:
    """Found in review: MAX(0, -0) gave 0 on floats and -0 in a NumPy batch, so a CSV changed with a neighbour."""
    q = "  - {id: q, kind: expr, expr: 'MAX(0, SHIFT(q, 1) * -1) + CEIL(SHIFT(q, 1) - 0.5)'}\n"
    p = "  - {id: p, kind: expr, expr: 'MAX(0, SHIFT(p, 1) * -2) + CEIL(SHIFT(p, 1) - 0.25)'}\n"
    alone, batched = evaluate(load_model(HEAD + q).model), evaluate(load_model(HEAD + q + p).model)
    assert same_bits(alone["q"], batched["q"])
    assert series_csv(alone["q"]) == series_csv(batched["q"])


def test_a_feedback_expression_thousands_of_terms_deep_evaluates() -> None:
    """Was refused past 400 levels (the per-bin code generator recursed); a long sum is a valid model."""
    terms = " + a" * 2000  # 8,000 characters: within the default expression length limit
    loop = f"  - {{id: q, kind: expr, expr: 'SHIFT(q, 1){terms}'}}\n"
    text = HEAD + "  - {id: a, values: [1, 1, 1, 1, 1, 1]}\n" + loop
    assert evaluate(load_model(text).model)["q"].tolist() == [2000, 4000, 6000, 8000, 10000, 12000]


def test_small_nodes_between_loops_are_written_into_them_so_the_loops_step_together() -> None:
    # the staged pipeline of examples/, with each hand-off as a node of its own
    text = HEAD + (
        "  - {id: arrivals, values: [12, 18, 25, 20, 8, 4]}\n"
        "  - {id: served1, kind: expr, expr: 'MIN(15, arrivals + SHIFT(backlog1, 1))'}\n"
        "  - {id: backlog1, kind: expr, expr: 'MAX(0, SHIFT(backlog1, 1) + arrivals - served1)'}\n"
        "  - {id: in2, kind: expr, expr: 'SHIFT(served1, 1)'}\n"
        "  - {id: served2, kind: expr, expr: 'MIN(12, in2 + SHIFT(backlog2, 1))'}\n"
        "  - {id: backlog2, kind: expr, expr: 'MAX(0, SHIFT(backlog2, 1) + in2 - served2)'}\n"
        "  - {id: in3, kind: expr, expr: 'SHIFT(served2, 1) * 1'}\n"
        "  - {id: served3, kind: expr, expr: 'MIN(10, in3 + SHIFT(backlog3, 1))'}\n"
        "  - {id: backlog3, kind: expr, expr: 'MAX(0, SHIFT(backlog3, 1) + in3 - served3)'}\n"
    )
    graph = compile_model(load_model(text).model)
    assert [([len(w) for w in lv.waves], lv.nodes) for lv in levels(graph)] == [
        ([], ["arrivals"]), ([3], []), ([], ["in2", "in3"])]
    r = evaluate(graph)
    assert r["served2"].tolist() == [0, 12, 12, 12, 12, 12]
    assert r["backlog2"].tolist() == [0, 0, 3, 6, 9, 12]
    assert r["in3"].tolist() == [0, 0, 12, 12, 12, 12]
    assert r["served3"].tolist() == [0, 0, 10, 10, 10, 10]
    expected = interpret(graph)
    assert all(same_bits(r[n], expected[n]) for n in graph.order)


# ---------------------------------------------------------------------------
# the property: any mesh of linked loops gives the interpreter's numbers

OPS = ("+", "-", "*", "/", "<", ">=", "==")
CALLS = ("MIN", "MAX", "ABS", "CLAMP", "IF", "FLOOR", "CEIL", "ROUND", "MOD", "SQRT", "STEP", "CONV", "PULSE",
         "ARRAY")
KERNELS = ("[0, 0.6, 0.3, 0.1]", "[0.5, -1]", "2", "[]", "[1, 1, 1, 1, 1, 1, 1, 1]")


@st.composite
def terms(draw: st.DrawFn, atoms: list[str], depth: int = 0) -> str:
    if depth >= 2 or draw(st.integers(0, 2)) == 0:
        return draw(st.sampled_from(atoms))
    kind = draw(st.sampled_from(("op", "call")))
    a = draw(terms(atoms, depth + 1))
    b = draw(terms(atoms, depth + 1))
    if kind == "op":
        return f"({a} {draw(st.sampled_from(OPS))} {b})"
    name = draw(st.sampled_from(CALLS))
    if name in ("ABS", "FLOOR", "CEIL", "ROUND", "SQRT"):
        return f"{name}({a})"
    if name == "CONV":  # reads a's history: every lag up to the kernel's length
        return f"CONV({a}, {draw(st.sampled_from(KERNELS))})"
    if name == "PULSE":
        period, phase = draw(st.integers(1, 3)), draw(st.integers(0, 4))
        return draw(st.sampled_from([f"PULSE({period}, {phase}, {a})", f"PULSE({period})"]))
    if name == "ARRAY":  # a bare array literal: values[t], 0 past its end
        return f"({a} + [1, -2, 0.5])"
    if name in ("CLAMP", "IF"):
        return f"{name}({a}, {b}, {draw(terms(atoms, depth + 1))})"
    return f"{name}({a}, {b})"


@st.composite
def meshes(draw: st.DrawFn) -> str:
    """
    Components built from a few shapes (so some run as vector groups), each
    with its own constants, each reading an earlier component's past - directly,
    lagged beyond the grid, or through a compound SHIFT of its present - or a
    constant series (standing alone), plus acyclic nodes between levels.
    """
    bins = draw(st.integers(1, 7))
    values = st.lists(st.sampled_from([0.0, 1.0, -2.0, 0.5, 3.0, 10.0]), min_size=bins, max_size=bins)
    nodes: list[dict[str, object]] = [
        {"id": "a", "kind": "const", "values": draw(values)},
        {"id": "b", "kind": "const", "values": draw(values)},
    ]
    n_shapes = draw(st.integers(1, 3))
    shapes = []
    for _ in range(n_shapes):
        lag = draw(st.integers(1, bins + 1))
        own = f"SHIFT({{m0}}, {draw(st.integers(1, 2))})"
        peer_reads = [f"SHIFT({{peer}}, {lag})", f"SHIFT({{peer}} + {{m0}} * 2, {lag})", f"SHIFT({{peer}}, {bins + 2})"]
        peer_read = draw(st.sampled_from(peer_reads))
        atoms = ["a", "b", "{k}", own, peer_read, "{peer}"]
        m0 = f"{own} + {peer_read} + {draw(terms(atoms))}"
        two = draw(st.booleans())
        m1 = f"{{m0}} * 0.5 + {draw(terms(['a', '{m0}', 'SHIFT({m1}, 1)']))}" if two else None
        if two:
            m0 += " - SHIFT({m1}, 1)"
        shapes.append((m0, m1))
    n_comps = draw(st.integers(2, 7))
    members: list[str] = []  # every loop member so far: the peers later components may read
    for c in range(n_comps):
        m0, m1 = shapes[draw(st.integers(0, n_shapes - 1))]
        # an earlier loop's member, or a constant: then this loop stands alone (and may batch)
        peer = draw(st.sampled_from([*members, "b"])) if members else "a"
        if members and draw(st.integers(0, 3)) == 0:
            # an acyclic node between two loops: read as a finished series, or (small, reading
            # only the past) written into the loops that read it
            lag = draw(st.integers(1, 3))
            mid = draw(st.sampled_from([f"{peer} * 2 + SHIFT({peer}, 1)", f"SHIFT({peer}, {lag}) * 0.5 + b",
                                        f"MAX(0, SHIFT({peer}, {lag}) - a) + SHIFT(b, 1)"]))
            nodes.append({"id": f"mid{c}", "kind": "expr", "expr": mid})
            peer = f"mid{c}"
        # each loop its own number: loops of one shape differ in their constants
        k = draw(st.sampled_from(["0.5", "2", "-1", "3", "0.25", "1e3", "-0.5", "0"]))
        names = {"m0": f"c{c}m0", "m1": f"c{c}m1", "peer": peer, "k": k}
        nodes.append({"id": f"c{c}m0", "kind": "expr", "expr": m0.format(**names)})
        members.append(f"c{c}m0")
        if m1 is not None:
            nodes.append({"id": f"c{c}m1", "kind": "expr", "expr": m1.format(**names)})
            members.append(f"c{c}m1")
    nodes.append({"id": "total", "kind": "expr", "expr": " + ".join(members)})
    return json.dumps({"schemaVersion": 1, "grid": {"bins": bins, "binSize": 1, "binUnit": "hours"},
                       "nodes": nodes})


@fuzz_settings(300)
@given(meshes())
def test_linked_loops_give_the_numbers_of_a_bin_by_bin_interpreter(text: str) -> None:
    graph = compile_model(load_model(text).model)
    waves = [w for lv in levels(graph) for w in lv.waves]
    groups = [g for w in waves for g in wave_kernel([graph.components[c] for c in w], graph.exprs).groups]
    alone = max((len(lv.alone) for lv in levels(graph)), default=0)
    event(f"waves: {len(waves)}, vector groups: {sum(len(g.components) > 1 for g in groups)}, "
          f"most loops alone on a level: {min(alone, 2)}")
    results = evaluate(graph)
    expected = interpret(graph)
    for n in graph.order:
        assert same_bits(results[n], expected[n]), (n, results[n], expected[n])
    # and again on the same compiled graph: kernels are reused, nothing leaks between evaluations
    again = evaluate(graph)
    assert all(same_bits(again[n], results[n]) for n in graph.order)
