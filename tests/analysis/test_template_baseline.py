"""
Warning baseline: every built-in Sim template, every reference template (with its defaults) and every
example model, run through the analyser; the codes of severity >= warning and how many of each must
match ``warning_baseline.json`` exactly, so a change that makes a shipped model warn fails here.

Each non-empty entry is explained in docs/decisions/0026-invariant-analyser.md. To accept a change,
rerun with FLOWTIME_UPDATE_WARNING_BASELINE=1 (it rewrites the file) and explain the entry there.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from flowtime.analysis.invariants import analyse
from flowtime.engine import evaluate
from flowtime.model.load import LoadedModel, load_model
from flowtime.sim.catalog import Catalog
from flowtime.sim.workspace import Workspace

ROOT = Path(__file__).resolve().parents[2]
BASELINE = Path(__file__).with_name("warning_baseline.json")
SOURCES = {  # key prefix -> templates directory (None: only the built-in library)
    "library": (ROOT / "src" / "flowtime" / "sim" / "library", None),
    "reference": (ROOT / "tests" / "sim" / "reference_templates", ROOT / "tests" / "sim" / "reference_templates"),
    "reference_head": (ROOT / "tests" / "sim" / "reference_templates_head",
                       ROOT / "tests" / "sim" / "reference_templates_head"),
}
TEMPLATES = [f"{prefix}/{p.stem}" for prefix, (folder, _) in SOURCES.items() for p in sorted(folder.glob("*.yaml"))]
EXAMPLES = [f"examples/{p.stem}" for p in sorted((ROOT / "examples").glob("*.yaml"))]
UPDATE = os.environ.get("FLOWTIME_UPDATE_WARNING_BASELINE") == "1"
_seen: dict[str, dict[str, int]] = {}


@pytest.fixture(scope="module")
def workspaces(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Workspace]:
    root = tmp_path_factory.mktemp("baseline")
    return {prefix: Workspace(Catalog.load(folder), root / prefix) for prefix, (_, folder) in SOURCES.items()}


@pytest.fixture(scope="module")
def baseline() -> Iterator[dict[str, dict[str, int]]]:
    data: dict[str, dict[str, int]] = json.loads(BASELINE.read_text(encoding="utf-8"))
    yield data
    if UPDATE and _seen:
        merged = {**data, **_seen}
        BASELINE.write_text(json.dumps(dict(sorted(merged.items())), indent=2, sort_keys=True) + "\n",
                            encoding="utf-8")


def _counts(loaded: LoadedModel) -> dict[str, int]:
    found = analyse(loaded.model, evaluate(loaded.model).series)
    return dict(sorted(Counter(f.code for f in found if f.at_least("warning")).items()))


def _check(key: str, counts: dict[str, int], baseline: dict[str, dict[str, int]]) -> None:
    _seen[key] = counts
    if UPDATE:
        return
    assert counts == baseline.get(key), (
        f"{key}: the analyser now reports {counts} (baseline {baseline.get(key)}). If this is intended, rerun "
        f"with FLOWTIME_UPDATE_WARNING_BASELINE=1 to rewrite {BASELINE.name} and explain the entry in "
        "docs/decisions/0026-invariant-analyser.md; otherwise the change made a shipped model warn.")


@pytest.mark.parametrize("key", TEMPLATES)
def test_a_template_warns_as_its_baseline_says(key: str, workspaces: dict[str, Workspace],
                                              baseline: dict[str, dict[str, int]]) -> None:
    prefix, template_id = key.split("/")
    generated = workspaces[prefix].generate(template_id, persist=False).generated
    _check(key, _counts(generated.loaded), baseline)


@pytest.mark.parametrize("key", EXAMPLES)
def test_an_example_warns_as_its_baseline_says(key: str, baseline: dict[str, dict[str, int]]) -> None:
    path = ROOT / f"{key}.yaml"
    _check(key, _counts(load_model(path.read_text(encoding="utf-8"), str(path))), baseline)


def test_the_baseline_names_every_model_and_no_other(baseline: dict[str, dict[str, int]]) -> None:
    assert sorted(baseline) == sorted([*TEMPLATES, *EXAMPLES])
