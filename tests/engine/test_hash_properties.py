"""Hashes and bytes as properties: reformatting never changes modelHash; same model + seed, same bytes."""

from __future__ import annotations

import random
from pathlib import Path
from tempfile import TemporaryDirectory

import yaml
from hypothesis import given, settings
from hypothesis import strategies as st
from tests.strategies import models

from flowtime.artifacts.writer import model_hash, write_run
from flowtime.engine import evaluate
from flowtime.model.load import load_model


def _shuffle_keys(obj: object, rnd: random.Random) -> object:
    if isinstance(obj, dict):
        items = list(obj.items())
        rnd.shuffle(items)
        return {k: _shuffle_keys(v, rnd) for k, v in items}
    if isinstance(obj, list):
        return [_shuffle_keys(v, rnd) for v in obj]
    return obj


def reformat(text: str, seed: int) -> str:
    """Same model, other text: keys shuffled, other layout, comments, blank lines, float spelling."""
    rnd = random.Random(seed)
    doc = _shuffle_keys(yaml.safe_load(text), rnd)
    out = yaml.safe_dump(doc, sort_keys=False, default_flow_style=rnd.choice([True, False, None]),
                         indent=rnd.choice([2, 4]), width=rnd.choice([40, 80, 4096]))
    comment = "# a comment that changes nothing\n"
    return comment + out if rnd.random() < 0.5 else out + comment


@given(models(), st.integers(0, 10_000))
def test_reformatted_model_text_keeps_the_model_hash(text: str, seed: int) -> None:
    other = reformat(text, seed)
    assert model_hash(load_model(other).model) == model_hash(load_model(text).model)


def test_expression_spacing_and_redundant_parentheses_do_not_change_the_hash() -> None:
    head = "schemaVersion: 1\ngrid: {bins: 1, binSize: 1, binUnit: hours}\nnodes:\n  - {id: a, values: [1]}\n"
    one = load_model(head + "  - {id: b, kind: expr, expr: 'a+2*a'}\n").model
    two = load_model(head + "  - id: b\n    kind: expr\n    expr: |\n      (a + (2 * a))\n").model
    three = load_model(head + "  - {id: b, kind: expr, expr: '(a + 2) * a'}\n").model
    assert model_hash(one) == model_hash(two) != model_hash(three)


@settings(max_examples=25)
@given(models(), st.integers(0, 2**32 - 1))
def test_same_model_and_seed_give_identical_bytes_and_hashes(text: str, seed: int) -> None:
    loaded = load_model(text)
    with TemporaryDirectory() as d:
        a = write_run(loaded, evaluate(loaded.model, seed=seed, sample_pmf=True), Path(d) / "a")
        b = write_run(load_model(reformat(text, seed)), evaluate(load_model(text).model, seed=seed,
                                                                 sample_pmf=True), Path(d) / "b")
        assert a.manifest["scenarioHash"] == b.manifest["scenarioHash"]
        assert a.manifest["seriesHashes"] == b.manifest["seriesHashes"]
        for sid in a.manifest["seriesHashes"]:
            name = f"series/{sid}.csv"
            assert (a.path / name).read_bytes() == (b.path / name).read_bytes()
