"""Model diff: every kind of difference between two models, in words, node by node."""

from __future__ import annotations

from flowtime.model.diff import diff_models
from flowtime.model.load import load_model
from flowtime.model.overrides import apply_overrides
from flowtime.model.schema import Model

HEAD = "schemaVersion: 1\ngrid: {bins: 4, binSize: 1, binUnit: hours}\nnodes:\n"


def m(nodes: str, head: str = HEAD, tail: str = "") -> Model:
    return load_model(head + nodes + tail).model


def changes(a: str, b: str, **kw: str) -> list[tuple[str, str, str]]:
    return [(c.where, c.kind, c.detail) for c in diff_models(m(a), m(b, **kw))]


def test_identical_models_and_cosmetic_expression_changes_have_no_difference() -> None:
    a = "  - {id: c, values: [1, 2, 3, 4]}\n  - {id: x, kind: expr, expr: 'MIN(c, 2)*3'}\n"
    b = "  - {id: c, values: [1.0, 2, 3e0, 4]}\n  - {id: x, kind: expr, expr: '(MIN( c ,2)) * 3'}\n"
    assert changes(a, b) == []


def test_values_expressions_kinds_and_pmfs_are_described() -> None:
    a = ("  - {id: c, values: [1, 2, 3, 4]}\n  - {id: k, values: 5}\n  - {id: x, kind: expr, expr: c * 2}\n"
         "  - {id: p, kind: pmf, pmf: {values: [0, 1], probabilities: [0.5, 0.5]}}\n  - {id: gone, values: 0}\n")
    b = ("  - {id: c, values: [1, 9, 3, 8]}\n  - {id: k, values: 6}\n  - {id: x, kind: const, values: 1}\n"
         "  - {id: p, kind: pmf, pmf: {values: [0, 1], probabilities: [0.25, 0.75]}}\n"
         "  - {id: new, kind: expr, expr: c}\n")
    assert changes(a, b) == [
        ("c", "values", "2 of 4 bins, first bin 1: 2 -> 9"),
        ("k", "values", "5 -> 6 in every bin"),
        ("x", "kind", "expr c * 2 -> const 1 in every bin"),
        ("p", "pmf", "{0: 0.5, 1: 0.5} -> {0: 0.25, 1: 0.75}"),
        ("gone", "removed", "const 0 in every bin"),
        ("new", "added", "expr c"),
    ]


def test_grid_outputs_and_seed_are_compared() -> None:
    a = "  - {id: c, values: 1}\n"
    diff = changes(a, a, head=HEAD.replace("binUnit: hours", "binUnit: days"),
                   tail="outputs:\n  - {series: c, as: c.csv}\nrng: {kind: pcg32, seed: 7}\n")
    assert diff == [
        ("grid", "grid", "4 bins of 1 hours -> 4 bins of 1 days"),
        ("outputs", "outputs", "none -> c as c.csv"),
        ("rng", "rng", "seed None -> 7"),
    ]


def test_an_override_is_exactly_the_difference_it_makes() -> None:
    base = m("  - {id: cap, values: 10}\n  - {id: x, kind: expr, expr: cap * 2}\n")
    edited, _ = apply_overrides(base, {"cap": 12})
    assert [(c.where, c.detail) for c in diff_models(base, edited)] == [("cap", "10 -> 12 in every bin")]
