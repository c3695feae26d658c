"""Class parts share repeated subexpressions as hidden nodes (``model.shared_parts``): same bits, computed once."""

from __future__ import annotations

from pathlib import Path

import flowtime
from flowtime.expr.parser import parse_expression
from flowtime.expr.syntax import Ref, to_text
from flowtime.model.load import load_model
from flowtime.model.shared_parts import share_parts

ROOT = Path(__file__).resolve().parents[2]


def test_a_subexpression_two_parts_repeat_is_one_node_they_both_read() -> None:
    parts = [("x#class#A", "x", parse_expression("a1 * x / (a1 + b1)")),
             ("x#class#B", "x", parse_expression("b1 * x / (a1 + b1)"))]
    rewritten, shared = share_parts(parts)
    assert [(n, to_text(t)) for n, t in shared] == [("x#part0", "a1 + b1")]
    assert [to_text(t) for _, t in rewritten] == ["a1 * x / x#part0", "b1 * x / x#part0"]


def test_numbers_are_told_apart_by_their_bits_and_literal_arguments_are_never_shared() -> None:
    from flowtime.expr.syntax import BinOp, Call, Num

    plus_zero, minus_zero = BinOp("+", Ref("q"), Num(0.0)), BinOp("+", Ref("q"), Num(-0.0))
    parts = [("p#class#A", "p", BinOp("*", plus_zero, plus_zero)),
             ("p#class#B", "p", BinOp("*", minus_zero, minus_zero)),
             ("p#class#C", "p", BinOp("+", Call("SHIFT", (Ref("q"), Num(2.0))), Call("SHIFT", (Ref("r"), Num(2.0)))))]
    rewritten, shared = share_parts(parts)
    assert [t for _, t in shared] == [plus_zero, minus_zero]  # == calls them equal; their bits are not
    assert str(Num(-0.0).value) == "-0.0" and shared[1][1].right.value.hex() == "-0x0.0p+0"  # type: ignore[union-attr]
    assert rewritten[2][1] == parts[2][2]  # SHIFT's lag 2 is a literal: nothing shared


def test_a_class_aware_queue_loop_stays_small_enough_to_compile() -> None:
    text = (ROOT / "examples" / "classes-router.yaml").read_text()
    p = flowtime.plan(load_model(text).model, jit=True)
    assert any("#part" in n for n in p.order)
    assert p.jit.sites and all(s.state.startswith("compiled") for s in p.jit.sites), p.jit
    assert p.evaluate().classes["hub_queue"]["Airport"].tolist() == [2, 4, 6, 8]
