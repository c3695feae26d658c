"""parse_yaml's fast paths (the tag loader, the plain build) give what the safe loader and ``_build`` give."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from flowtime.errors import ModelSyntaxError
from flowtime.model import yamltext
from flowtime.model.yamltext import parse_yaml

ROOT = Path(__file__).parents[2]
FILES = sorted(p for p in ROOT.glob("**/*.yaml") if ".venv" not in p.parts and "node_modules" not in p.parts)
# Plain scalars of every implicit type and spelling YAML 1.1 resolves, and tagged odd ones.
SCALARS = [
    "1", "0", "00", "012", "0x1F", "0b101", "0o7", "1_000", "-5", "+5", "1.5", "-1.5", "-0.0", "1.5e+3", "1e5",
    ".5", "1.", ".inf", "-.inf", ".nan", ".NaN", "null", "~", "Null", "''", "yes", "no", "on", "True", "false",
    "2001-12-14", "2001-12-14t21:59:43.10-05:00", "1:30", "1:30.5", "190:20:30", "é", "²", "١٢", "1" * 305,
    "1" * 299, "!!float '+-5'", "!!float nan", "!!int '0x10'", "!!str 12", "!!binary aGVsbG8=", "'quoted'",
    '"1.5"', "!!float ' 1.5 '", "!!int '²'", "!!int '١٢'", "!!float ''", "!!bool maybe", "!!int 1.5", "x",
]


def _nodes(n: Any) -> Any:
    """A composed node tree as plain data: tags, values, styles and marks."""
    marks = (n.start_mark.index, n.start_mark.line, n.start_mark.column, n.end_mark.index)
    if isinstance(n, yaml.ScalarNode):
        return ("scalar", n.tag, n.value, n.style, marks)
    if isinstance(n, yaml.SequenceNode):
        return ("seq", n.tag, n.flow_style, marks, [_nodes(i) for i in n.value])
    return ("map", n.tag, n.flow_style, marks, [(_nodes(k), _nodes(v)) for k, v in n.value])


def _slow(text: str) -> Any:
    """What parse_yaml gave before its fast paths: the safe loader's tree built by ``_build``."""
    root = yaml.compose(text, Loader=yaml.CSafeLoader)
    if root is None:
        return None, []
    problems: list[Any] = []
    try:
        data = yamltext._build(root, (), yamltext._ScalarBuilder(), problems, depth=0)
    except yamltext._TooDeep:
        return None, ["too deep"]
    return data, [(p.message, p.line, p.column) for p in problems]


def _outcome(text: str) -> Any:
    try:
        data, _ = parse_yaml(text)
    except ModelSyntaxError as exc:
        return "error", [(p.message, p.line, p.column) for p in exc.problems]
    return "data", data


def _same(text: str) -> None:
    try:
        want, problems = _slow(text)
    except yaml.YAMLError:
        return
    assert _nodes(yaml.compose(text, Loader=yamltext._TagLoader)) == _nodes(yaml.compose(text, Loader=yaml.CSafeLoader))
    got = _outcome(text)
    if problems:
        assert got[0] == "error" and sorted(got[1]) == sorted(problems)
    else:  # repr: NaN is NaN, 1 is not 1.0 nor True
        assert got[0] == "data" and repr(got[1]) == repr(want) and type(got[1]) is type(want)


@pytest.mark.parametrize("path", FILES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_yaml_file_of_the_repository_parses_as_the_safe_loader_and_build_parse_it(path: Path) -> None:
    _same(path.read_text(encoding="utf-8"))


@settings(max_examples=400, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(SCALARS), st.sampled_from(SCALARS)), min_size=1, max_size=6),
       st.sampled_from(["block", "flow", "list", "nested", "merge"]))
def test_odd_scalars_parse_as_the_safe_loader_and_build_parse_them(pairs: list[tuple[str, str]], style: str) -> None:
    if style == "block":
        text = "\n".join(f"{k}: {v}" for k, v in pairs)
    elif style == "flow":
        text = "{" + ", ".join(f"{k}: {v}" for k, v in pairs) + "}"
    elif style == "list":
        text = "[" + ", ".join(x for pair in pairs for x in pair) + "]"
    elif style == "nested":
        text = "a:\n" + "".join(f"  - [{k}, {{v: {v}}}]\n" for k, v in pairs)
    else:
        text = "base: &b {" + ", ".join(f"k{i}: {v}" for i, (_, v) in enumerate(pairs)) + "}\nx: {<<: *b, =: 1}\n"
    _same(text)


def test_a_plain_document_is_built_without_the_long_way(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[object] = []
    monkeypatch.setattr(yamltext, "_build", lambda *a, **k: calls.append(a) or {})
    data, smap = parse_yaml("a: 1\nb: [x, 2.5, {c: null}]\n")
    assert data == {"a": 1, "b": ["x", 2.5, {"c": None}]} and not calls
    assert smap.find(("b", 1)) == (2, 8)
    parse_yaml("a: 1\na: 2\n")  # a duplicate key: the long way reports it
    assert calls


def test_problems_found_the_long_way_keep_their_place() -> None:
    with pytest.raises(ModelSyntaxError, match=r"line 3, column 1, a: duplicate key 'a'"):
        parse_yaml("a: 1\nb: 2\na: 3\n")
    with pytest.raises(ModelSyntaxError, match=r"line 2, column 8, b\[1\]: integer too large"):
        parse_yaml("a: 1\nb: [1, " + "9" * 301 + "]\n")


def test_a_registered_path_resolver_sends_composing_back_to_the_safe_loader(monkeypatch: pytest.MonkeyPatch) -> None:
    assert yamltext._tag_loader_applies()
    monkeypatch.setattr(yamltext._TagLoader, "yaml_path_resolvers", {(("a",), None): "tag:yaml.org,2002:str"})
    assert not yamltext._tag_loader_applies()
    assert parse_yaml("a: 1\n")[0] == {"a": 1}


@pytest.mark.parametrize("tag", ["!!set", "!!omap", "!!pairs", "!!seq", "!!map"])
def test_a_collection_tag_on_a_scalar_is_a_located_problem(tag: str) -> None:
    with pytest.raises(ModelSyntaxError, match=rf"line 2, column 4, b: cannot read 'x' as {tag[2:]}"):
        parse_yaml(f"a: 1\nb: {tag} x\n")
