"""
Programs (engine.program): acyclic nodes as NumPy calls into pooled blocks.

The oracle here is ``program.tree_value``: the expression computed by the
vector functions of ``expr.functions`` directly (what the generated code of
earlier releases called), with fresh arrays for every operation.
"""

from __future__ import annotations

import threading
from typing import Any

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from tests.engine.oracle import same_bits
from tests.fuzz.harness import fuzz_settings
from tests.strategies import expressions, series

import flowtime
from flowtime.engine import program
from flowtime.engine.program import Program, tree_value
from flowtime.expr.parser import parse_expression
from flowtime.expr.syntax import Expr, Ref, to_text, walk
from flowtime.model.load import load_model

HEAD = "schemaVersion: 1\ngrid: {bins: 6, binSize: 1, binUnit: hours}\nnodes:\n"
CHAIN = HEAD + ("  - {id: a, values: [1, 2, 3, 4, 5, 6]}\n"
                "  - {id: b, kind: expr, expr: 'a * 2 + 1'}\n"
                "  - {id: c, kind: expr, expr: 'MIN(b, 9) - SHIFT(a, 2) / a'}\n")


def _inputs(bins: int) -> st.SearchStrategy[dict[str, Any]]:
    zeros = st.lists(st.sampled_from([0.0, -0.0, 1.0, -2.5]), min_size=bins, max_size=bins)
    return st.fixed_dictionaries({"a": series(bins) | zeros, "b": series(bins) | zeros})


@fuzz_settings(300)
@given(expressions(valid=True, names=("a", "b"), max_leaves=12), st.integers(1, 9), st.data())
def test_a_program_gives_the_bits_of_the_vector_functions(e: Expr, bins: int, data: st.DataObject) -> None:
    given_values = data.draw(_inputs(bins))
    arrays = {k: np.array(v, dtype=np.float64) for k, v in given_values.items()}
    for arr in arrays.values():
        arr.flags.writeable = False
    with np.errstate(all="ignore"):
        expected = np.broadcast_to(tree_value(e, bins, arrays), (bins,))
    refs = sorted({x.name for x in walk(e) if isinstance(x, Ref)})
    p = Program(["x"], {"x": e}, {"x": refs}, bins)
    values: dict[str, Any] = dict(arrays)
    with np.errstate(all="ignore"):
        p.run(values, None)
    assert same_bits(values["x"], expected), (to_text(e), values["x"], expected)
    assert not values["x"].flags.writeable
    # K scenarios at once: a varying input as (K, bins) rows, each row as evaluated alone
    lanes = np.stack([arrays["a"], arrays["a"][::-1]])
    lanes.flags.writeable = False
    many: dict[str, Any] = {"a": lanes, "b": arrays["b"]}
    with np.errstate(all="ignore"):
        p.run(many, 2)
        flipped = np.broadcast_to(tree_value(e, bins, {"a": lanes[1], "b": arrays["b"]}), (bins,))
    got = np.broadcast_to(many["x"], (2, bins))
    assert same_bits(got[0], expected) and same_bits(got[1], flipped)


def test_a_divisor_shared_by_scenario_rows_zeroes_the_same_bins_of_every_row() -> None:
    # a / b where only a varies: b's zero bins are +0 in each of the K rows (found by the property above)
    p = Program(["x"], {"x": parse_expression("a / b")}, {"x": ["a", "b"]}, 3)
    lanes = np.array([[1.0, 2.0, 3.0], [0.0, 5.0, 6.0]])
    values: dict[str, Any] = {"a": lanes, "b": np.array([0.0, 2.0, 0.0])}
    with np.errstate(all="ignore"):
        p.run(values, 2)
    assert np.broadcast_to(values["x"], (2, 3)).tolist() == [[0.0, 1.0, 0.0], [0.0, 2.5, 0.0]]


def test_numbers_alone_are_computed_once_while_planning() -> None:
    p = flowtime.plan(load_model(HEAD + "  - {id: a, values: 1}\n"
                                 "  - {id: x, kind: expr, expr: 'a * (2 + 3) / 10 + SQRT(16)'}\n").model)
    listing = p.source()
    assert "x = a * 5.0" in listing and "x = x / 10.0" in listing and "x = x + 4.0" in listing
    assert p.evaluate()["x"].tolist() == [4.5] * 6


def test_results_handed_out_never_change_and_blocks_are_reused_once_dropped() -> None:
    p = flowtime.plan(load_model(CHAIN).model)
    first = p.evaluate(set={"a": 1})
    kept = {n: first[n].copy() for n in ("b", "c")}
    second = p.evaluate(set={"a": 2})  # the first results are alive: a second block
    assert not np.shares_memory(first["b"], second["b"])
    for n, before in kept.items():
        assert same_bits(first[n], before)
    address = second["c"].__array_interface__["data"][0]
    expected = second["c"].copy()
    del second
    third = p.evaluate(set={"a": 2})  # nothing refers to the second block: it is written again
    assert third["c"].__array_interface__["data"][0] == address
    assert same_bits(third["c"], expected)
    with pytest.raises(ValueError):
        third["c"][0] = 1.0  # read-only


def test_a_view_of_a_result_keeps_its_block_from_being_reused() -> None:
    p = flowtime.plan(load_model(CHAIN).model)
    part = p.evaluate(set={"a": 3})["b"][2:4]
    before = part.copy()
    for k in range(3):
        p.evaluate(set={"a": 10 + k})
    assert same_bits(part, before)


def test_threads_evaluating_one_plan_never_see_each_others_values() -> None:
    p = flowtime.plan(load_model(CHAIN).model)
    expected = {k: p.evaluate(set={"a": k})["c"].copy() for k in range(8)}
    failures: list[str] = []

    def worker(offset: int) -> None:
        for i in range(300):
            k = (i + offset) % 8
            got = p.evaluate(set={"a": k})["c"]
            if not same_bits(got, expected[k]):
                failures.append(f"a={k}: {got.tolist()} != {expected[k].tolist()}")

    threads = [threading.Thread(target=worker, args=(j,)) for j in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert failures == []


def test_parts_nested_deeper_than_the_walk_are_computed_by_one_call(monkeypatch: pytest.MonkeyPatch) -> None:
    text = "a - (a * 0.5 - (MAX(a, 2) - (SHIFT(a, 1) / (a - 3) - (a < 4))))"
    model = load_model(HEAD + "  - {id: a, values: [1, 2, 3, 4, 5, 6]}\n"
                       f"  - {{id: x, kind: expr, expr: '{text}'}}\n").model
    shallow = flowtime.plan(model).evaluate()["x"]
    monkeypatch.setattr(program, "DEEP", 1)
    deep = flowtime.plan(load_model(HEAD + "  - {id: a, values: [1, 2, 3, 4, 5, 6]}\n"
                                    f"  - {{id: x, kind: expr, expr: '{text}'}}\n").model)
    assert "(nested part)" in deep.source()
    assert same_bits(deep.evaluate()["x"], shallow)
    many = deep.evaluate_many(sets=[{"a": 1}, {}])["x"]
    assert same_bits(many[1], shallow)
