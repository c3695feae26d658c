"""The schema tier: the document's shape, checked without resolving references or parsing expressions."""

from __future__ import annotations

from pathlib import Path

import pytest

from flowtime.errors import LimitExceeded, ModelSyntaxError, ModelValidationError
from flowtime.model.limits import Limits
from flowtime.model.load import load_model
from flowtime.model.shape import check_shape
from flowtime.series_files import beside

ROOT = Path(__file__).resolve().parents[2]
MODELS = sorted([*ROOT.glob("examples/*.yaml"), *ROOT.glob("tests/cases/*/model.yaml")])
HEAD = "schemaVersion: 1\ngrid: {bins: 2, binSize: 1, binUnit: hours}\n"


def errors(text: str) -> list[tuple[str, int | None, str]]:
    return [(p.path, p.line, p.message) for p in check_shape(text) if p.severity == "error"]


@pytest.mark.parametrize("path", MODELS, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_model_that_compiles_has_the_right_shape(path: Path) -> None:
    """The tiers are cumulative: the schema tier never rejects what the compile tier accepts."""
    text = path.read_text()
    load_model(text, str(path), series_files=beside(str(path)))
    assert errors(text) == []


def test_expressions_and_references_are_left_to_the_compile_tier() -> None:
    text = HEAD + ("nodes:\n  - {id: a, values: [1, 2]}\n  - {id: b, kind: expr, expr: 'SHFT(aa, 1'}\n"
                   "  - {id: c, kind: expr, expr: 'c + 1'}\n"
                   "outputs:\n  - {series: nowhere}\n")
    assert check_shape(text) == []
    with pytest.raises(ModelValidationError) as caught:
        load_model(text)
    assert {p.path for p in caught.value.problems} >= {"nodes.b.expr", "outputs[0].series"}


def test_shape_problems_are_located_and_all_reported() -> None:
    text = ("schemaVersion: 2\n"
            "grid: {bins: 2, binSize: 1, binUnit: hourz}\n"
            "nodes:\n"
            "  - {id: a, values: [1, 2, 3]}\n"
            "  - {id: b, kind: expr, expr: [1]}\n"
            "  - {id: c, kind: cosnt, values: [1, 2]}\n"
            "outputs: {series: a}\n")
    got = errors(text)
    assert [(path, line) for path, line, _ in got] == [
        ("schemaVersion", 1), ("grid.binUnit", 2), ("nodes.a.values", 4), ("nodes.b.expr", 5),
        ("nodes.c.kind", 6), ("outputs", 7)]
    assert "has 3 values but grid.bins is 2" in got[2][2]
    assert "did you mean" in got[4][2]


def test_the_topology_section_is_checked_for_its_own_structure() -> None:
    text = HEAD + ("nodes:\n  - {id: a, values: [1, 2]}\n"
                   "topology:\n  nodes:\n    - {id: Desk, kind: service, semantics: {arrivals: a, served: a}}\n"
                   "  edges:\n    - {from: Desk, to: Nowhere}\n")
    [(path, line, message)] = errors(text)
    assert path == "topology.edges[0].to" and line == 9 and "Nowhere" in message


def test_text_that_is_not_yaml_raises_and_a_huge_text_is_over_the_limit() -> None:
    with pytest.raises(ModelSyntaxError):
        check_shape("nodes: [")
    with pytest.raises(LimitExceeded):
        check_shape(HEAD, limits=Limits(max_model_bytes=10))


def test_an_empty_or_scalar_document_is_one_error() -> None:
    assert [p for _, _, p in errors("")] == ["model is empty; expected a mapping with schemaVersion, grid and nodes"]
    assert len(errors("5")) == 1
