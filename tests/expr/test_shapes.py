"""The skeleton path (expr/shapes.py) answers exactly as the full parser does, and is taken."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tests.strategies import expressions

from flowtime.errors import ExpressionError
from flowtime.expr import parser, shapes
from flowtime.expr.parser import parse_expression, parse_full, parse_with_outline
from flowtime.expr.syntax import Call, Expr, Ref, children, to_text, walk

ROOT = Path(__file__).parents[2]
CORPUS = json.loads((Path(__file__).parent / "parser_corpus.json").read_text(encoding="utf-8"))["cases"]
# Leaves of each kind to put in place of a text's own: odd spellings, and numbers
# that are not finite floats (the full parser's error must come out).
NAMES = ("x", "e", "E5", "_", "n_10000", "shift", "MIN", "a1", "Served")
NUMBERS = ("0", "7", "1.", ".5", "2.50", "1e3", "1E+5", "3.5e-2", "1e999", "9" * 400, "12345678901234567890")
LEAF = re.compile(r"(?<!\w)(?:((?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?)|([^\W\d]\w*+(?!\s*\()))")


def _fields(e: Any) -> list[object]:
    """A node as its type, its own fields in their stored order (columns included) and its children."""
    own = [(k, v) for k, v in vars(e).items() if k not in ("left", "right", "operand", "args")]
    return [type(e).__name__, list(vars(e)), own, [_fields(c) for c in children(e)]]


def _outcome(parse: Any, text: str) -> dict[str, object]:
    try:
        return {"tree": _fields(parse(text))}
    except ExpressionError as exc:
        return {"error": str(exc), "column": exc.column, "expression": exc.expression}


def _assert_same(text: str) -> None:
    """Parsed twice (the second time through a remembered skeleton) as the full parser does."""
    want = _outcome(parse_full, text)
    assert _outcome(parse_expression, text) == want, text
    assert _outcome(parse_expression, text) == want, text


def _model_texts() -> Iterator[str]:
    for path in sorted([*ROOT.glob("tests/cases/**/*.yaml"), *ROOT.glob("examples/*.yaml"),
                        *ROOT.glob("src/flowtime/sim/library/*.yaml"), *ROOT.glob("tests/sim/**/*.yaml")]):
        for m in re.finditer(r"\bexpr: *(?:\"([^\"\n]*)\"|'([^'\n]*)'|([^\n#{}]+))", path.read_text(encoding="utf-8")):
            yield next(g for g in m.groups() if g is not None).strip()


def _relabel(text: str, pick: int) -> str:
    """``text`` with each leaf replaced by another of the same kind."""
    def swap(m: re.Match[str]) -> str:
        i = m.start() + pick
        return NUMBERS[i % len(NUMBERS)] if m.group(1) is not None else NAMES[i % len(NAMES)]

    return LEAF.sub(swap, text)


@pytest.fixture(autouse=True)
def _no_skeletons() -> Iterator[None]:
    shapes.clear()
    yield
    shapes.clear()


def test_corpus_texts_and_their_relabelled_twins_parse_as_the_full_parser_parses_them() -> None:
    texts = [*CORPUS, *_model_texts()]
    assert len(texts) > 1200
    for text in texts:
        _assert_same(text)
    for pick in range(4):
        for text in texts:
            _assert_same(_relabel(text, pick))


@settings(max_examples=300, deadline=None)
@given(expressions(max_leaves=30), st.integers(0, 50), st.sampled_from(["", " ", "  ", "\n", "\t"]))
def test_random_trees_printed_and_relabelled_parse_as_the_full_parser_parses_them(
    e: Expr, pick: int, space: str
) -> None:
    text = to_text(e)
    spaced = text.replace(" ", space).replace("(", "(" + space)
    for t in (text, spaced, _relabel(text, pick), _relabel(spaced, pick + 1)):
        _assert_same(t)


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet="ab1.5e+-*/()<>=!, _MINSHIFT\n", max_size=24))
def test_random_texts_parse_or_fail_as_the_full_parser_says(text: str) -> None:
    _assert_same(text)
    _assert_same(_relabel(text, 3))


@pytest.mark.parametrize("text", ["((((((a))))))", "--((1e+5))", "a - -b", "+-+-a * 2", "a + b * 2", "MIN(a, b)"])
@pytest.mark.parametrize(("nesting", "length"), [(2, 100), (3, 100), (5, 100), (200, 4), (200, 9)])
def test_limits_give_the_full_parsers_answer(text: str, nesting: int, length: int) -> None:
    want = _outcome(lambda t: parse_full(t, max_nesting=nesting, max_length=length), text)
    for _ in range(2):
        assert _outcome(parse_expression, text) == _outcome(parse_full, text)
        assert _outcome(lambda t: parse_expression(t, max_nesting=nesting, max_length=length), text) == want


class _Counting(parser._Parser):
    calls = 0

    def __init__(self, text: str) -> None:
        _Counting.calls += 1
        super().__init__(text)


def test_the_full_parser_reads_one_text_of_each_skeleton(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(parser, "_Parser", _Counting)
    _Counting.calls = 0
    texts = [f"base_{i % 10} * 1.5 + n_{i} * 0.{i + 1}" for i in range(500)]
    texts += [f"MIN(q_{i}, {i}) - SHIFT(q_{i}, {i % 3})" for i in range(500)]
    trees = [parse_expression(t) for t in texts]
    assert _Counting.calls == 2
    assert [_fields(t) for t in trees] == [_fields(parse_full(t)) for t in texts]


def test_a_text_that_fails_is_not_remembered_for_its_skeleton(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ExpressionError, match="too large for a 64-bit float"):
        parse_expression("a * 1e999")
    assert parse_expression("a * 2.5") == parse_full("a * 2.5")
    monkeypatch.setattr(parser, "_Parser", _Counting)
    _Counting.calls = 0
    parse_expression("b * 7")
    assert _Counting.calls == 0
    with pytest.raises(ExpressionError, match="too large for a 64-bit float") as info:
        parse_expression("b * 1e999")
    assert info.value.column == 5


def test_the_outline_lists_calls_and_names_in_source_order() -> None:
    for text in ("MIN(a, b) * 0.5 + a", "SHIFT(q, 1) + MAX(0, q - d)", "2 * 3", "-x"):
        tree, outline = parse_with_outline(text)
        assert tree == parse_full(text)
        assert outline is not None
        calls, names = outline
        assert calls == tuple((c.name, len(c.args)) for c in walk(tree) if isinstance(c, Call))
        assert names == tuple(n.name for n in walk(tree) if isinstance(n, Ref))


def test_texts_the_skeleton_path_leaves_alone_have_no_outline() -> None:
    for text in ("a + é", "a +", " + ".join(["a"] * (shapes.MAX_LEAVES + 1))):
        try:
            tree, outline = parse_with_outline(text)
        except ExpressionError:
            continue
        assert outline is None and tree == parse_full(text)


def test_skeletons_are_forgotten_past_the_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(shapes, "MAX_SHAPES", 3)
    for k in range(10):
        parse_expression("a" + " + a" * k)
    assert len(shapes._SHAPES) <= 3


def test_a_text_of_the_last_skeleton_is_read_without_splitting(monkeypatch: pytest.MonkeyPatch) -> None:
    parse_expression("base_1 * 1.5 + n_0 * 0.5")
    splits: list[str] = []
    real = shapes._split
    monkeypatch.setattr(shapes, "_split", lambda text: splits.append(text) or real(text))
    texts = [f"base_{i} * 1.{i} + n_{i - 1} * 0.5" for i in range(2, 50)]
    assert [_fields(parse_expression(t)) for t in texts] == [_fields(parse_full(t)) for t in texts]
    assert not splits
    assert _fields(parse_expression("MIN(a, 2)")) == _fields(parse_full("MIN(a, 2)"))  # another skeleton: split
    assert splits == ["MIN(a, 2)"]


def test_texts_with_an_array_literal_are_read_by_the_full_parser() -> None:
    for text in ("CONV(a, [0.0, 0.6, 0.3, 0.1])", "a + [1, -2]", "CONV(a, [0.5, b])", "[1,"):
        assert not parser._shaped(text, parser.MAX_NESTING, parser.MAX_EXPRESSION_LENGTH)
        assert _outcome(parse_expression, text) == _outcome(parse_full, text)
