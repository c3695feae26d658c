"""
Fuzzing the core: every input gives a result or one of FlowTime's own errors,
with a location - never another exception, a hang or a crash.

Inputs: expression text (grammatical, token soup, any unicode, very deep),
model YAML (valid, mutated as data, mutated as text, random text, alias
bombs) and models built in code. ``harness.outcome`` holds the property; the
example counts add up to more than 10,000 in the CI profile.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from hypothesis import event, given
from hypothesis import strategies as st
from tests.engine.oracle import same_bits
from tests.fuzz.harness import (
    FUZZ_LIMITS,
    assert_located,
    checked,
    fuzz_settings,
    outcome,
    run_model,
    time_limit,
)
from tests.fuzz.inputs import EXPR_CHARS, HASHABLE_JUNK, JUNK, ODD_CHARS, TOKENS, YAML_PIECES, mutated
from tests.strategies import expressions, grids, pmfs, series

from flowtime.engine import Results, compile_model, evaluate
from flowtime.errors import (
    ExpressionError,
    FlowTimeError,
    LimitExceeded,
    ModelError,
    ModelSyntaxError,
    ModelValidationError,
)
from flowtime.expr.parser import parse_expression
from flowtime.expr.syntax import to_text
from flowtime.model.limits import Limits
from flowtime.model.load import LoadedModel, load_model
from flowtime.model.schema import BinUnit, ConstNode, ExprNode, Grid, Model

CORPUS = Path(__file__).resolve().parents[1] / "cases"
EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
# Seeds for mutation: the golden corpus (valid models and error cases) and the examples.
SEED_TEXTS = tuple(
    p.read_text(encoding="utf-8")
    for p in sorted([*CORPUS.glob("*/model.yaml"), *CORPUS.glob("errors/*.yaml"), *EXAMPLES.glob("*.yaml")])
)


def _as_data(text: str) -> Any:
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        return None  # an error case that is not YAML: a text seed only


SEED_DOCS = tuple(d for d in map(_as_data, SEED_TEXTS) if isinstance(d, dict))
_Dumper: Any = getattr(yaml, "CSafeDumper", yaml.SafeDumper)


def dump(doc: Any, **options: Any) -> str:
    """YAML text of ``doc``, by libyaml's emitter where it can (generating is most of a fuzz case's time)."""
    try:
        text: str = yaml.dump(doc, Dumper=_Dumper, sort_keys=False, **options)
    except UnicodeEncodeError:  # a lone surrogate: only the Python emitter escapes it
        text = yaml.dump(doc, Dumper=yaml.SafeDumper, sort_keys=False, **options)
    return text


# Nodes of the model that expressions under test live in: a, b const, p pmf,
# x and y the expressions (so they can read each other and themselves).
MODEL_NAMES = ("a", "b", "p", "x", "y")
REF_NAMES = (*MODEL_NAMES, "zz", "A", "e", "SHIFT")


def _expression_doc(bins: int, a: list[float], b: list[float], pmf: dict[str, Any], x: str, y: str) -> str:
    doc = {
        "schemaVersion": 1,
        "grid": {"bins": bins, "binSize": 1, "binUnit": "hours"},
        "nodes": [
            {"id": "a", "kind": "const", "values": a},
            {"id": "b", "kind": "const", "values": b},
            {"id": "p", "kind": "pmf", "pmf": pmf},
            {"id": "x", "kind": "expr", "expr": x},
            {"id": "y", "kind": "expr", "expr": y},
        ],
        "rng": {"kind": "pcg32", "seed": 7},
    }
    return dump(doc)


@st.composite
def expression_models(draw: st.DrawFn, texts: st.SearchStrategy[str]) -> str:
    """Model YAML whose expr nodes x and y hold texts drawn from ``texts``."""
    bins = draw(st.integers(1, 4))
    values = series(bins, magnitude=1e3)
    return _expression_doc(bins, draw(values), draw(values), draw(pmfs(sample=draw(st.booleans()))),
                           draw(texts), draw(texts))


def grammatical(*, valid: bool) -> st.SearchStrategy[str]:
    names = MODEL_NAMES if valid else REF_NAMES
    return expressions(valid=valid, names=names, max_leaves=12).map(to_text)


def token_soup() -> st.SearchStrategy[str]:
    return st.lists(st.sampled_from(TOKENS), max_size=25).map("".join)


def any_text() -> st.SearchStrategy[str]:
    return st.one_of(
        st.text(st.sampled_from(EXPR_CHARS + ODD_CHARS), max_size=40),
        st.text(max_size=20),  # any code point, surrogates included
    )


def any_expression_text() -> st.SearchStrategy[str]:
    return st.one_of(
        grammatical(valid=True),
        grammatical(valid=False),
        token_soup(),
        any_text(),
        mutated(grammatical(valid=True), TOKENS + ODD_CHARS),
    )


# ---------------------------------------------------------------------------
# expression text, parsed on its own


def _check_parse(text: str) -> None:
    with time_limit():
        try:
            tree = parse_expression(text)
        except ExpressionError as exc:
            assert 1 <= exc.column <= len(exc.expression) + 1, (exc.column, exc.expression)
            assert str(exc)
            event("ExpressionError")
            return
    event("parsed")
    # Compared as printed text: dataclass equality recurses and deep trees are legal.
    printed = to_text(tree)
    assert to_text(parse_expression(printed)) == printed, "printing then parsing changed the tree"


@fuzz_settings(2000)
@given(st.one_of(grammatical(valid=False), token_soup()))
def test_parsing_grammatical_or_token_text_gives_a_tree_or_a_located_error(text: str) -> None:
    _check_parse(text)


@fuzz_settings(2000)
@given(st.one_of(any_text(), mutated(grammatical(valid=False), TOKENS + ODD_CHARS)))
def test_parsing_any_text_gives_a_tree_or_a_located_error(text: str) -> None:
    _check_parse(text)


@fuzz_settings(50)
@given(
    st.integers(1, 12_000),
    st.sampled_from([("(", ")"), ("-", ""), ("+", ""), ("- ", ""), ("-(", ")"), ("ABS(", ")"), ("MIN(a, ", ")"),
                     ("SHIFT(", ", 1)"), ("(1 + ", ")"), ("a + ", ""), ("", " + a")]),
)
def test_deep_or_long_expressions_answer_without_recursion_errors(depth: int, wrap: tuple[str, str]) -> None:
    text = wrap[0] * depth + "a" + wrap[1] * depth
    _check_parse(text)
    doc = _expression_doc(2, [1.0, 2.0], [3.0, 4.0], {"values": [1.0], "probabilities": [1.0]}, text, "x")
    out = outcome(doc)
    assert isinstance(out, Results | FlowTimeError | None)


# ---------------------------------------------------------------------------
# expression text inside a model, through load -> compile -> evaluate


@fuzz_settings(1000)
@given(expression_models(st.one_of(grammatical(valid=True), grammatical(valid=False))))
def test_grammatical_expressions_in_a_model_give_results_or_located_errors(text: str) -> None:
    outcome(text)


@fuzz_settings(1000)
@given(expression_models(any_expression_text()))
def test_any_expression_text_in_a_model_gives_results_or_located_errors(text: str) -> None:
    outcome(text)


@fuzz_settings(200)
@given(st.integers(1, 6), grammatical(valid=True), grammatical(valid=True))
def test_models_built_in_code_with_checked_expressions_evaluate(bins: int, x: str, y: str) -> None:
    """Model objects built without the loader, holding expressions the loader would accept."""
    doc = _expression_doc(bins, [1.0] * bins, [2.0] * bins, {"values": [3.0], "probabilities": [1.0]}, x, y)
    if not isinstance(checked(lambda: load_model(doc, limits=FUZZ_LIMITS)), LoadedModel):
        return  # e.g. a loop without SHIFT: models built in code are only promised to work once checked
    grid = Grid(bins=bins, bin_size=1, bin_unit=BinUnit.MINUTES)
    nodes = (
        ConstNode(id="a", values=np.arange(bins, dtype=np.float64)),
        ConstNode(id="b", values=np.full(bins, 2.0)),
        ConstNode(id="p", values=np.full(bins, 3.0)),
        ExprNode(id="x", kind="expr", expr=x),
        ExprNode(id="y", kind="expr", expr=y),
    )
    out = checked(lambda: evaluate(compile_model(Model(grid=grid, nodes=nodes))))
    assert isinstance(out, Results), out


LOOP_VALUES = st.one_of(
    st.floats(-1e3, 1e3),
    st.sampled_from([0.0, -0.0, 0.5, -0.5, 2.5, -2.5, 1e308, -1e308, 5e-324]),
    st.floats(allow_nan=False),
)


@fuzz_settings(300)
@given(
    st.integers(1, 6).flatmap(lambda n: st.tuples(*[st.lists(LOOP_VALUES, min_size=n, max_size=n)] * 2)),
    expressions(valid=True, names=("a", "b", "x"), max_leaves=10).map(to_text),
)
def test_a_feedback_loop_batched_with_its_twin_gives_the_numbers_it_gives_alone(
    values: tuple[list[float], list[float]], expr: str
) -> None:
    """One loop runs per bin on floats; two loops of the same shape run on NumPy vectors. Same numbers."""
    a, b = values
    twin = re.sub(r"\b([abx])\b", r"\g<1>2", expr)
    consts = [{"id": n, "kind": "const", "values": v} for n, v in (("a", a), ("b", b), ("a2", a), ("b2", b))]

    def run(exprs: dict[str, str]) -> Results | FlowTimeError | None:
        nodes = consts + [{"id": k, "kind": "expr", "expr": v} for k, v in exprs.items()]
        grid = {"bins": len(a), "binSize": 1, "binUnit": "hours"}
        return outcome(dump({"schemaVersion": 1, "grid": grid, "nodes": nodes}))

    alone, batched = run({"x": expr}), run({"x": expr, "x2": twin})
    if not isinstance(alone, Results):
        assert not isinstance(batched, Results)
        return
    assert isinstance(batched, Results), batched
    inexact = any(f in expr for f in ("EXP", "LOG", "POW"))  # math vs NumPy may differ in the last bit
    if inexact:
        assert np.allclose(alone["x"], batched["x"], rtol=1e-12, equal_nan=True)
    else:
        assert same_bits(alone["x"], batched["x"])  # 0 and -0 differ: the CSV shows them differently
    assert same_bits(batched["x"], batched["x2"])


# ---------------------------------------------------------------------------
# model YAML: valid, mutated as data, mutated as text, random


@st.composite
def valid_documents(draw: st.DrawFn) -> dict[str, Any]:
    grid = draw(grids(max_bins=6))
    bins = grid["bins"]
    out_expr = draw(expressions(valid=True, names=("a", "b", "p", "q"), max_leaves=8))
    doc: dict[str, Any] = {
        "schemaVersion": 1,
        "grid": grid,
        "nodes": [
            {"id": "a", "kind": "const", "values": draw(series(bins))},
            {"id": "b", "kind": "const", "values": draw(st.one_of(series(bins), st.floats(-1e6, 1e6)))},
            {"id": "p", "kind": "pmf", "pmf": draw(pmfs(sample=draw(st.booleans())))},
            {"id": "q", "kind": "expr", "expr": "MAX(0, SHIFT(q, 1) + a - b)"},
            {"id": "out", "kind": "expr", "expr": to_text(out_expr)},
        ],
    }
    if draw(st.booleans()):
        doc["outputs"] = [{"series": "out", "as": "out.csv"}, {"series": "q*"}]
    if draw(st.booleans()):
        doc["rng"] = {"kind": "pcg32", "seed": draw(st.integers(0, 2**63))}
    if draw(st.booleans()):
        doc["metadata"] = {"title": "fuzz", "tags": ["a", "b"]}
    return doc


def _paths(obj: Any, path: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    yield path
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield from _paths(v, (*path, k))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            yield from _paths(v, (*path, i))


def _at(obj: Any, path: tuple[Any, ...]) -> Any:
    for part in path:
        obj = obj[part]
    return obj


@st.composite
def seed_documents(draw: st.DrawFn) -> dict[str, Any]:
    """Corpus models as data, or (one in five: they cost ten times more to draw) generated valid ones."""
    return draw(valid_documents() if draw(st.integers(0, 4)) == 0 else st.sampled_from(SEED_DOCS))


@st.composite
def mutated_documents(draw: st.DrawFn) -> dict[str, Any]:
    """A model as data with 1-3 edits: delete, replace with junk, rename a key, add or duplicate an item."""
    doc = copy.deepcopy(draw(seed_documents()))
    for _ in range(draw(st.integers(1, 3))):
        path = draw(st.sampled_from(list(_paths(doc))))
        if not path:
            continue
        parent, last = _at(doc, path[:-1]), path[-1]
        op = draw(st.sampled_from(["delete", "replace", "replace", "rename", "add", "duplicate"]))
        if op == "delete":
            del parent[last]
        elif op == "replace":
            parent[last] = copy.deepcopy(draw(JUNK))
        elif op == "rename" and isinstance(parent, dict):
            parent[draw(HASHABLE_JUNK)] = parent.pop(last)
        elif op == "add" and isinstance(parent, dict):
            parent[draw(HASHABLE_JUNK)] = copy.deepcopy(draw(JUNK))
        elif op == "add":
            parent.insert(last, copy.deepcopy(draw(JUNK)))
        elif isinstance(parent, list):
            parent.insert(last, copy.deepcopy(parent[last]))
    return doc


@st.composite
def seed_texts(draw: st.DrawFn) -> str:
    """Corpus model files as written (comments, flow and block style), or corpus models re-dumped."""
    if draw(st.integers(0, 3)):
        return draw(st.sampled_from(SEED_TEXTS))
    flow = draw(st.sampled_from([None, True, False]))
    return dump(draw(st.sampled_from(SEED_DOCS)), default_flow_style=flow, width=draw(st.sampled_from([80, 10**6])))


@st.composite
def mutated_texts(draw: st.DrawFn) -> str:
    """Model files edited as text; duplicated lines make duplicate keys."""
    text = draw(seed_texts())
    lines = text.splitlines(keepends=True)
    if len(lines) > 1 and draw(st.booleans()):
        i = draw(st.integers(0, len(lines) - 1))
        j = draw(st.integers(0, len(lines) - 1))
        lines.insert(j, lines[i])  # duplicate a line: duplicate keys, repeated nodes
        text = "".join(lines)
    return draw(mutated(st.just(text), YAML_PIECES))


@fuzz_settings(300)
@given(valid_documents())
def test_valid_models_evaluate(doc: dict[str, Any]) -> None:
    text = dump(doc)
    out = checked(lambda: run_model(text))
    assert isinstance(out, Results), out
    assert set(out.series) == {"a", "b", "p", "q", "out"}


@fuzz_settings(1500)
@given(mutated_documents())
def test_mutated_models_give_results_or_located_errors(doc: dict[str, Any]) -> None:
    outcome(dump(doc))


@fuzz_settings(1200)
@given(mutated_texts())
def test_models_edited_as_text_give_results_or_located_errors(text: str) -> None:
    outcome(text)


@fuzz_settings(1000)
@given(
    st.one_of(
        st.text(max_size=200),
        st.binary(max_size=200).map(lambda b: b.decode("utf-8", "replace")),
        st.binary(max_size=200).map(lambda b: b.decode("latin-1")),
        st.lists(st.sampled_from(YAML_PIECES), max_size=30).map("".join),
    )
)
def test_random_text_as_a_model_gives_a_located_error(text: str) -> None:
    outcome(text)


@st.composite
def alias_documents(draw: st.DrawFn) -> tuple[str, int]:
    """A valid model carrying a tower of anchors (``levels`` deep, ``fanout`` aliases each); its expanded size."""
    levels = draw(st.integers(1, 10))
    fanout = draw(st.integers(1, 10))
    mapping = draw(st.booleans())
    if mapping:
        tower = ['l0: &l0 {"k0": "lol", "k1": "lol"}']
        tower += [f"l{i}: &l{i} {{" + ", ".join(f'"k{j}": *l{i - 1}' for j in range(fanout)) + "}"
                  for i in range(1, levels + 1)]
    else:
        tower = ['l0: &l0 ["lol", "lol"]']
        tower += [f"l{i}: &l{i} [" + ", ".join([f"*l{i - 1}"] * fanout) + "]" for i in range(1, levels + 1)]
    where = draw(st.sampled_from(["metadata", "top", "values"]))
    head = "schemaVersion: 1\ngrid: {bins: 2, binSize: 1, binUnit: hours}\n"
    node = "nodes:\n  - {id: a, kind: const, values: [1, 2]}\n"
    if where == "metadata":
        text = head + node + "metadata:\n" + "".join(f"  {t}\n" for t in tower)
    elif where == "top":
        text = head + node + "".join(f"{t}\n" for t in tower)
    else:
        text = head + "".join(f"{t}\n" for t in tower) + f"nodes:\n  - {{id: a, kind: const, values: *l{levels}}}\n"
    return text, 2 * fanout**levels


@fuzz_settings(200)
@given(alias_documents())
def test_alias_towers_are_refused_before_they_expand(case: tuple[str, int]) -> None:
    text, expanded = case
    out = outcome(text)
    if expanded > 1_000_000:
        assert isinstance(out, LimitExceeded), f"{expanded} nodes after expansion, got {out!r}"


# ---------------------------------------------------------------------------
# the cases the issue names


def _model_with_expr(expr: str) -> str:
    return (
        "schemaVersion: 1\ngrid: {bins: 3, binSize: 1, binUnit: hours}\nnodes:\n"
        "  - {id: a, kind: const, values: [1, 2, 3]}\n"
        f"  - {{id: x, kind: expr, expr: '{expr}'}}\n"
    )


DEEP = {
    "parentheses": "(" * 10_000 + "1" + ")" * 10_000,
    "unary minus": "-" * 10_000 + "1",
    "calls": "ABS(" * 10_000 + "1" + ")" * 10_000,
}


@pytest.mark.parametrize("limits", [Limits(), Limits(max_expression_length=1_000_000)], ids=["default", "long"])
@pytest.mark.parametrize("expr", DEEP.values(), ids=DEEP.keys())
def test_a_10000_deep_expression_is_a_validation_error_not_a_recursion_error(expr: str, limits: Limits) -> None:
    with pytest.raises(ModelValidationError, match=r"expression (is \d+ characters long|nests \d+ levels)") as info:
        load_model(_model_with_expr(expr), "deep.yaml", limits=limits)
    (problem,) = info.value.problems
    assert (problem.path, problem.line) == ("nodes.x.expr", 5)


@pytest.mark.parametrize("expr", DEEP.values(), ids=DEEP.keys())
def test_parsing_a_10000_deep_expression_raises_expression_error(expr: str) -> None:
    with pytest.raises(ExpressionError, match="nests 10000 levels deep; the limit is 200") as info:
        parse_expression(expr)
    assert info.value.column >= 1


BILLION_LAUGHS = "\n".join(
    ['lol0: &lol0 "lol"']
    + [f"lol{i}: &lol{i} [" + ", ".join([f"*lol{i - 1}"] * 10) + "]" for i in range(1, 10)]
) + "\n"


def test_billion_laughs_raises_limit_exceeded() -> None:
    with pytest.raises(LimitExceeded, match="possible YAML bomb") as info:
        load_model(BILLION_LAUGHS, "bomb.yaml")
    assert info.value.limit_name == "yaml_alias_expansion"


def test_billion_laughs_inside_a_valid_model_raises_limit_exceeded() -> None:
    text = _model_with_expr("a") + "metadata:\n" + "".join(f"  {line}\n" for line in BILLION_LAUGHS.splitlines())
    with pytest.raises(LimitExceeded, match="possible YAML bomb"):
        load_model(text, "bomb.yaml")


def test_duplicate_keys_are_syntax_errors_with_their_line() -> None:
    text = _model_with_expr("a") + "grid: {bins: 4, binSize: 1, binUnit: hours}\n"
    with pytest.raises(ModelSyntaxError, match="duplicate key 'grid'") as info:
        load_model(text, "dup.yaml")
    assert [(p.line, p.path) for p in info.value.problems] == [(6, "grid")]


@pytest.mark.parametrize("value", [".nan", ".inf", "-.inf", "1e400"])
def test_non_finite_values_are_located(value: str) -> None:
    text = _model_with_expr("a").replace("[1, 2, 3]", f"[1, {value}, 3]")
    with pytest.raises(ModelValidationError, match="values must be finite numbers; item 1") as info:
        load_model(text)
    assert [(p.line, p.path) for p in info.value.problems] == [(4, "nodes.a.values[1]")]


@pytest.mark.parametrize("kind", ["queue", "[const]", "{a: 1}", "null", "7"])
def test_unknown_kinds_are_located(kind: str) -> None:
    text = _model_with_expr("a").replace("kind: const", f"kind: {kind}")
    with pytest.raises(ModelValidationError, match="unknown node kind") as info:
        load_model(text)
    assert [(p.line, p.path) for p in info.value.problems] == [(4, "nodes.a.kind")]


# ---------------------------------------------------------------------------
# bugs found by fuzzing, one minimal input each (all fixed; these are regression tests)

_BASE = _model_with_expr("a").replace("  - {id: x, kind: expr, expr: 'a'}\n", "")


def _must_answer(given: str | Model, seconds: float = 2.0) -> Results | FlowTimeError:
    """Results or a located FlowTimeError within ``seconds``, with no known-bug allowance."""
    with time_limit(seconds):
        try:
            if isinstance(given, Model):
                return evaluate(compile_model(given))
            return run_model(given, Limits())
        except FlowTimeError as exc:
            assert_located(exc)
            return exc


@pytest.mark.parametrize("text", ["a: &x [*x]\n", "&a {b: *a}\n", "x: &a {b: [1, {c: *a}]}\n"])
def test_a_recursive_alias_is_refused(text: str) -> None:
    """Found looping forever (and growing memory) in yamltext._expanded_size."""
    assert isinstance(_must_answer(text, seconds=1.0), LimitExceeded)


def test_a_lone_surrogate_in_model_text_is_a_syntax_error() -> None:
    """Found raising UnicodeEncodeError from libyaml (a str from JSON can hold "\\ud800")."""
    out = _must_answer(_BASE + "metadata: {title: \ud800}\n")
    assert isinstance(out, ModelSyntaxError)
    assert [p.line for p in out.problems] == [5]


_DIGITS = "9" * 5000


@pytest.mark.parametrize(
    "text",
    [
        pytest.param(f"schemaVersion: 1\ngrid: {{bins: {_DIGITS}, binSize: 1, binUnit: hours}}\n", id="bins"),
        pytest.param(_BASE.replace("schemaVersion: 1", f"schemaVersion: '{_DIGITS}'"), id="schemaVersion"),
        pytest.param(_BASE + f"rng: {{seed: '{_DIGITS}'}}\n", id="seed"),
    ],
)
def test_an_integer_with_5000_digits_is_a_located_error(text: str) -> None:
    """Found raising ValueError (sys.get_int_max_str_digits)."""
    assert isinstance(_must_answer(text), ModelError)


_HEX = "0x" + "F" * 4000  # fine for int(); over 4300 digits once printed in decimal
_HEX_BUG = "a YAML int over 4300 decimal digits reaches str()/repr()"


@pytest.mark.parametrize(
    "text",
    [
        pytest.param(_HEX, id="top-level"),
        pytest.param(_BASE.replace("schemaVersion: 1", f"schemaVersion: {_HEX}"), id="schemaVersion"),
        pytest.param(_BASE.replace("bins: 3", f"bins: {_HEX}"), id="bins"),
        pytest.param(_BASE + f"  - {{id: x, kind: expr, expr: {_HEX}}}\n", id="expr"),
        pytest.param(_BASE + f"metadata: {{title: {_HEX}}}\n", id="metadata"),
        pytest.param(_BASE + f"outputs: [{_HEX}]\n", id="outputs"),
        pytest.param(_BASE.replace("[1, 2, 3]", f"[{_HEX}, 2, 3]"), id="values"),
        pytest.param(_BASE + f"rng: {{seed: {_HEX}}}\n", id="seed"),
    ],
)
def test_a_hex_integer_with_thousands_of_digits_is_a_located_error(text: str) -> None:
    assert isinstance(_must_answer(text), ModelError)


_SCALAR_BUG = "yamltext._build catches YAMLError and ValueError only around construct_object"


@pytest.mark.parametrize(
    "scalar",
    [
        "2001-02-29",
        "2001-01-01 25:00:00",
        "!!float x",
        pytest.param("!!int ''"),
        pytest.param("!!bool x"),
        pytest.param("!!timestamp x"),
    ],
)
def test_an_impossible_date_or_a_badly_tagged_scalar_is_a_located_syntax_error(scalar: str) -> None:
    """Found raising ValueError, IndexError, KeyError or AttributeError out of PyYAML's constructor."""
    out = _must_answer(_BASE + f"metadata: {{title: {scalar}}}\n")
    assert isinstance(out, ModelSyntaxError)
    assert [(p.line, p.path) for p in out.problems] == [(5, "metadata.title")]


@pytest.mark.parametrize("merge", ["<<: 1", "<<: [1, 2]"])
def test_a_bad_merge_key_is_a_located_syntax_error(merge: str) -> None:
    """Found raising ConstructorError from SafeConstructor.flatten_mapping, outside the loader's try."""
    out = _must_answer(f"schemaVersion: 1\ngrid: {{{merge}}}\n")
    assert isinstance(out, ModelSyntaxError)
    assert all(p.line == 2 for p in out.problems)


def test_a_huge_pmf_mapping_key_is_a_located_error() -> None:
    """Found raising OverflowError from float(k) in load._pmf."""
    assert isinstance(_must_answer(_BASE + "  - {id: p, kind: pmf, pmf: {" + "9" * 400 + ": 1}}\n"), ModelError)


def test_a_superscript_schema_version_is_a_located_error() -> None:
    """Found raising ValueError: load._schema_version called int() on text whose str.isdigit() is true."""
    assert isinstance(_must_answer(_BASE.replace("schemaVersion: 1", "schemaVersion: '²'")), ModelError)


def test_a_control_character_is_a_syntax_error_with_a_line() -> None:
    """Found as a YAML ReaderError turned into a problem with no line and no path."""
    out = _must_answer(_BASE + "metadata: {title: a\x07b}\n")
    assert isinstance(out, ModelSyntaxError)
    assert [p.line for p in out.problems] == [5]


def test_a_long_feedback_expression_answers_quickly() -> None:
    """Found taking ~9 s: evaluate._kernel_source re-folded every subtree (quadratic)."""
    _must_answer(_BASE + "  - {id: x, kind: expr, expr: 'SHIFT(x, 1)" + " + 1" * 2400 + "'}\n", seconds=1.0)


@pytest.mark.parametrize("field", ["id", "as"])
def test_names_ending_in_a_newline_are_rejected(field: str) -> None:
    """Found accepted: NODE_ID and OUTPUT_NAME ended in `$`, which also matches before a final newline."""
    line = '  - {id: "b\\n", kind: expr, expr: a}\n' if field == "id" else 'outputs: [{series: a, as: "a.csv\\n"}]\n'
    assert isinstance(_must_answer(_BASE + line), ModelValidationError)


def test_an_error_on_the_second_line_of_an_expression_names_the_right_character() -> None:
    """Found naming ' ': parser._syntax_error indexed the whole text with Lark's per-line column."""
    with pytest.raises(ExpressionError) as info:
        parse_expression("a +\n @")
    assert "'@'" in info.value.message


@pytest.mark.parametrize("expr", ["SHIFT(a, b)", "SHIFT(a)", "SHIFT(a, -1)", "FOO(a)", "zz + 1"])
def test_a_model_built_in_code_with_a_bad_expression_is_a_located_error(expr: str) -> None:
    """Found hitting an assert (AssertionError, IndexError): compile_model trusted Model objects built in code."""
    grid = Grid(bins=3, bin_size=1, bin_unit=BinUnit.MINUTES)
    out = _must_answer(Model(grid=grid, nodes=(ConstNode(id="a", values=np.ones(3)),
                                               ExprNode(id="x", kind="expr", expr=expr))))
    assert isinstance(out, ModelValidationError)
