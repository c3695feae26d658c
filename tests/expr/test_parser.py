"""Expression text -> syntax tree: numbers, precedence, names and caret errors."""

from __future__ import annotations

import re

import pytest

from flowtime.errors import ExpressionError, ModelError
from flowtime.expr.parser import parse_expression
from flowtime.expr.syntax import Array, BinOp, Call, Num, Ref, Unary, to_text


def a() -> Ref:
    return Ref("a")


def b() -> Ref:
    return Ref("b")


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("1e3", 1000.0),
        ("1E3", 1000.0),
        (".5", 0.5),
        ("2.", 2.0),
        ("2.50", 2.5),
        ("25e-1", 2.5),
        ("2e+1", 20.0),
        ("1.5e2", 150.0),
        (".25e1", 2.5),
        ("0", 0.0),
        ("007", 7.0),
    ],
)
def test_number_forms_parse_to_their_value(text: str, value: float) -> None:
    assert parse_expression(text) == Num(value)


def test_a_leading_minus_is_unary_not_part_of_the_number() -> None:
    assert parse_expression("-5") == Unary("-", Num(5.0))


def test_subtraction_groups_to_the_left() -> None:
    assert parse_expression("8 - 2 - 1") == BinOp("-", BinOp("-", Num(8.0), Num(2.0)), Num(1.0))


def test_division_groups_to_the_left() -> None:
    assert parse_expression("a / b / 2") == BinOp("/", BinOp("/", a(), b()), Num(2.0))


def test_multiplication_binds_tighter_than_addition() -> None:
    assert parse_expression("a + b * 2") == BinOp("+", a(), BinOp("*", b(), Num(2.0)))
    assert parse_expression("a * b + 2") == BinOp("+", BinOp("*", a(), b()), Num(2.0))


def test_parentheses_override_precedence() -> None:
    assert parse_expression("(a + b) * 2") == BinOp("*", BinOp("+", a(), b()), Num(2.0))
    assert parse_expression("a - (b - 1)") == BinOp("-", a(), BinOp("-", b(), Num(1.0)))
    assert parse_expression("((a))") == a()


def test_unary_minus_binds_tighter_than_multiplication() -> None:
    assert parse_expression("-a * b") == BinOp("*", Unary("-", a()), b())
    assert parse_expression("a - -b") == BinOp("-", a(), Unary("-", b()))
    assert parse_expression("--a") == Unary("-", Unary("-", a()))


def test_comparison_binds_looser_than_arithmetic() -> None:
    assert parse_expression("a + 1 < b * 2") == BinOp(
        "<", BinOp("+", a(), Num(1.0)), BinOp("*", b(), Num(2.0))
    )


@pytest.mark.parametrize("op", ["<", "<=", ">", ">=", "==", "!="])
def test_every_comparison_operator_parses(op: str) -> None:
    assert parse_expression(f"a {op} b") == BinOp(op, a(), b())


def test_comparisons_chain_to_the_left() -> None:
    assert parse_expression("1 < 2 < 3") == BinOp("<", BinOp("<", Num(1.0), Num(2.0)), Num(3.0))


@pytest.mark.parametrize("text", ["min(a, b)", "MIN(a, b)", "Min(a,b)", "mIn( a , b )"])
def test_function_names_are_case_insensitive(text: str) -> None:
    assert parse_expression(text) == Call("MIN", (a(), b()))


def test_node_references_keep_their_case() -> None:
    assert parse_expression("Demand") == Ref("Demand")
    assert parse_expression("Demand") != parse_expression("demand")


def test_a_name_followed_by_a_parenthesis_is_a_call() -> None:
    assert parse_expression("shift (a, 1)") == Call("SHIFT", (a(), Num(1.0)))
    assert parse_expression("shift") == Ref("shift")


def test_calls_take_any_number_of_arguments_at_parse_time() -> None:
    """Arity is checked by the loader against the function table, not by the grammar."""
    assert parse_expression("MAX()") == Call("MAX", ())
    assert parse_expression("MAX(a, b, 1, 2)") == Call("MAX", (a(), b(), Num(1.0), Num(2.0)))


def test_nodes_remember_their_columns_but_compare_without_them() -> None:
    tree = parse_expression("a + MIN(b, 2)")
    assert isinstance(tree, BinOp)
    assert (tree.left.column, tree.right.column) == (1, 5)
    assert isinstance(tree.right, Call)
    assert tree.right.args[0].column == 9
    assert tree == BinOp("+", Ref("a", column=40), Call("MIN", (b(), Num(2.0))))


def _caret_column(exc: ExpressionError) -> int:
    """The 1-based column the caret line points at, relative to the expression line."""
    *_, expr_line, caret_line = str(exc).splitlines()
    return caret_line.index("^") - expr_line.index(exc.expression) + 1


@pytest.mark.parametrize(
    ("text", "column"),
    [
        ("a + @b", 5),
        ("a + * b", 5),
        ("a b", 3),
        ("42 a", 4),
        ("a + b)", 6),
        ("MIN(a,)", 7),
        ("MIN(a b)", 7),
        ("a ^ 2", 3),
        ("a + ", 4),
        ("(a + b", 7),
        ("MIN(a, 2", 9),
    ],
)
def test_syntax_error_points_a_caret_at_the_column(text: str, column: int) -> None:
    with pytest.raises(ExpressionError) as info:
        parse_expression(text)
    assert info.value.column == column
    assert info.value.expression == text
    assert f"column {column}" in info.value.message
    assert _caret_column(info.value) == column
    lines = str(info.value).splitlines()
    assert lines[0] == info.value.message
    assert lines[1].strip() == text.strip()


def test_syntax_error_text_is_message_expression_and_caret() -> None:
    with pytest.raises(
        ExpressionError, match=r"unexpected character '@' at column 5\n    a \+ @b\n        \^$"
    ):
        parse_expression("a + @b")


@pytest.mark.parametrize("text", ["", "   "])
def test_an_empty_expression_is_rejected(text: str) -> None:
    with pytest.raises(ExpressionError, match="empty expression"):
        parse_expression(text)


def test_expression_errors_are_model_errors() -> None:
    with pytest.raises(ModelError):
        parse_expression("a +")


def test_nesting_beyond_the_limit_is_rejected() -> None:
    with pytest.raises(ExpressionError, match="nests 6 levels deep; the limit is 5"):
        parse_expression("((((((a))))))", max_nesting=5)
    assert parse_expression("(((((a)))))", max_nesting=5) == a()


def test_an_overlong_expression_is_rejected() -> None:
    with pytest.raises(ExpressionError, match="the limit is 10"):
        parse_expression("a + b + c + d", max_length=10)


@pytest.mark.parametrize(
    ("text", "printed"),
    [
        ("(a - b) - c", "a - b - c"),
        ("a - (b - c)", "a - (b - c)"),
        ("(a * b) + c", "a * b + c"),
        ("a * (b + c)", "a * (b + c)"),
        ("-(a + b)", "-(a + b)"),
        ("min(a,b)", "MIN(a, b)"),
        ("2.50", "2.5"),
        ("1e3", "1000"),
        ("(a < b) == 1", "a < b == 1"),
        ("a < (b == 1)", "a < (b == 1)"),
    ],
)
def test_printing_uses_the_fewest_parentheses(text: str, printed: str) -> None:
    assert to_text(parse_expression(text)) == printed


def _shape(e: object) -> list[object]:
    from flowtime.expr.syntax import children

    label = getattr(e, "op", getattr(e, "name", getattr(e, "value", None)))
    return [type(e).__name__, label, e.column, [_shape(c) for c in children(e)]]  # type: ignore[attr-defined, arg-type]


def _outcome(text: str) -> dict[str, object]:
    try:
        return {"ok": _shape(parse_expression(text))}
    except ExpressionError as exc:
        return {"err": str(exc), "column": exc.column}


def test_trees_columns_and_error_messages_match_the_recorded_corpus() -> None:
    """1,245 texts (valid, mutated, hand-picked) answer exactly as the recorded parser did."""
    import json
    from pathlib import Path

    cases = json.loads((Path(__file__).parent / "parser_corpus.json").read_text(encoding="utf-8"))["cases"]
    assert len(cases) > 1000
    wrong = {t: (_outcome(t), want) for t, want in cases.items() if json.loads(json.dumps(_outcome(t))) != want}
    assert not wrong, list(wrong.items())[:3]


def test_columns_count_from_the_start_of_a_multi_line_expression() -> None:
    e = parse_expression("a\n+ MIN(b,\n  c)")
    assert isinstance(e, BinOp) and isinstance(e.right, Call)
    assert (e.column, e.right.column, e.right.args[1].column) == (1, 5, 14)


def test_a_long_flat_sum_parses_without_recursion() -> None:
    e = parse_expression(" + ".join(["a"] * 5000), max_length=100_000)
    depth = 0
    while isinstance(e, BinOp):
        e, depth = e.left, depth + 1
    assert depth == 4999


def test_array_literals_parse_to_their_values_and_print_canonically() -> None:
    e = parse_expression("CONV(errors, [0.0, 0.6,0.3 , .1])")
    assert e == Call("CONV", (Ref("errors"), Array((0.0, 0.6, 0.3, 0.1))))
    assert isinstance(e, Call) and e.args[1].column == 14
    assert to_text(e) == "CONV(errors, [0, 0.6, 0.3, 0.1])"
    assert parse_expression("[]") == Array(())
    assert parse_expression("[-1, +2, 1e2]") == Array((-1.0, 2.0, 100.0))
    assert parse_expression("[1, 2] * a") == BinOp("*", Array((1.0, 2.0)), a())


def test_a_minus_zero_in_an_array_is_stored_as_zero() -> None:
    e = parse_expression("[-0]")
    assert isinstance(e, Array) and str(e.values[0]) == "0.0"


def test_conv_pulse_and_step_names_are_case_insensitive() -> None:
    assert parse_expression("conv(a, 2) + Pulse(3) + step(a, b)") == parse_expression(
        "CONV(a, 2) + PULSE(3) + STEP(a, b)")


@pytest.mark.parametrize(
    ("text", "message", "column"),
    [
        ("CONV(a, [0.5, a])", "unexpected 'a' at column 15; expected a number: an array holds number literals", 15),
        ("CONV(a, [0.5, 1 + 2])", "unexpected '+' at column 17; expected ',' or ']'", 17),
        ("[1, [2]]", "unexpected '[' at column 5; expected a number", 5),
        ("[1,]", "unexpected ']' at column 4; expected a number", 4),
        ("CONV(a, [0.5", "expression ends too early at column 13, inside an array literal; expected ',' or ']'", 13),
        ("[--1]", "unexpected '-' at column 3; expected a number", 3),
        ("[1e999]", "number 1e999 is too large for a 64-bit float", 2),
        ("a]", "unexpected ']' at column 2", 2),
    ],
)
def test_array_literal_errors_point_at_the_offending_character(text: str, message: str, column: int) -> None:
    with pytest.raises(ExpressionError, match=re.escape(message)) as info:
        parse_expression(text)
    assert info.value.column == column
    assert str(info.value).endswith("\n    " + text + "\n    " + " " * (column - 1) + "^")
