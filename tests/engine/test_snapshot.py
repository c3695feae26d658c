"""
Every example and golden case computes the same bytes as the engine of commit afb5759.

``series_snapshot.json`` holds, per model and run option (no seed; seed 11 with PMF
sampling), the model hash and the SHA-256 of each series' canonical CSV, recorded
with that commit's engine before the loader, parser and evaluation were reshaped.
A refactor that changes one bit of one value of any series fails here.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from flowtime.artifacts.canonical import series_csv
from flowtime.engine import evaluate
from flowtime.model.hashing import model_hash
from flowtime.model.load import load_model
from flowtime.series_files import beside

ROOT = Path(__file__).resolve().parents[2]
SNAPSHOT = json.loads((Path(__file__).parent / "series_snapshot.json").read_text())


def _path(name: str) -> Path:
    return ROOT / name / "model.yaml" if name.startswith("tests/cases/") else ROOT / name


@pytest.mark.parametrize("key", sorted(SNAPSHOT))
def test_series_and_hashes_equal_the_recorded_engine(key: str) -> None:
    name, seed_part, sample_part = key.split("|")
    seed = None if seed_part == "seed=None" else int(seed_part.removeprefix("seed="))
    loaded = load_model(_path(name).read_text(encoding="utf-8"), name, series_files=beside(_path(name)))
    results = evaluate(loaded.model, seed=seed, sample_pmf=sample_part == "sample=True")
    got = {n: hashlib.sha256(series_csv(results.series[n])).hexdigest() for n in results.order}
    assert model_hash(loaded.model) == SNAPSHOT[key]["modelHash"]
    assert got == SNAPSHOT[key]["series"]


def test_the_snapshot_covers_every_example_and_golden_case() -> None:
    names = {k.split("|")[0] for k in SNAPSHOT}
    assert {f"examples/{p.name}" for p in (ROOT / "examples").glob("*.yaml")} <= names
    assert {f"tests/cases/{p.parent.name}" for p in (ROOT / "tests/cases").glob("*/model.yaml")} <= names
