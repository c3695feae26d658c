"""Run folders: layout, canonical CSV bytes, hashes that ignore formatting, atomic and deterministic writes."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest

from flowtime.artifacts.canonical import format_number, series_csv
from flowtime.artifacts.writer import clean_temp_folders, write_run
from flowtime.engine import evaluate
from flowtime.model.hashing import model_hash
from flowtime.model.load import load_model

MODEL = """\
# A small model
schemaVersion: 1
provenance:
  modelId: model_20250101T000000Z_abcdef12
  templateId: demo
grid: {bins: 3, binSize: 1, binUnit: hours}
nodes:
  - id: demand
    kind: const
    values: [10, 20, 30]
  - id: served
    kind: expr
    expr: "MIN(demand, 25) * 0.5"
outputs:
  - series: served
    as: served.csv
"""

REFORMATTED = """\
schemaVersion: 1
nodes:
  - kind: const
    id: demand
    values: [10.0, 20.0, 3e1]
  - {expr: 'MIN(demand, 25) * 0.5', id: served, kind: expr}   # comment
grid:
  binUnit: HOURS
  bins: 3
  binSize: 1
outputs: [{series: served, as: served.csv}]
"""


def run(tmp_path: Path, text: str = MODEL, **kw):
    loaded = load_model(text, "model.yaml")
    return write_run(loaded, evaluate(loaded.model, seed=kw.pop("seed", None)), tmp_path, **kw)


def test_run_folder_has_the_reference_layout(tmp_path: Path) -> None:
    rec = run(tmp_path)
    files = sorted(str(p.relative_to(rec.path)) for p in rec.path.rglob("*") if p.is_file())
    assert files == ["manifest.json", "run.json", "series/index.json", "series/served@SERVED@DEFAULT.csv",
                     "spec.yaml"]
    assert (rec.path / "series/served@SERVED@DEFAULT.csv").read_bytes() == b"t,value\n0,5\n1,10\n2,12.5\n"


def test_spec_keeps_the_text_but_not_the_provenance_block(tmp_path: Path) -> None:
    spec = (run(tmp_path).path / "spec.yaml").read_text()
    assert "provenance" not in spec and "modelId" not in spec
    assert spec.startswith("# A small model\nschemaVersion: 1\n")
    assert 'expr: "MIN(demand, 25) * 0.5"' in spec


def test_index_records_the_as_name_and_manifest_hashes_verify(tmp_path: Path) -> None:
    rec = run(tmp_path)
    index = json.loads((rec.path / "series/index.json").read_text())
    assert index["series"][0]["as"] == "served.csv"
    for sid, h in rec.manifest["seriesHashes"].items():
        data = (rec.path / "series" / f"{sid}.csv").read_bytes()
        assert h == "sha256:" + hashlib.sha256(data).hexdigest()


def test_model_hash_ignores_formatting_comments_key_order_and_number_spelling() -> None:
    assert model_hash(load_model(MODEL).model) == model_hash(load_model(REFORMATTED).model)


def test_model_hash_changes_when_a_value_changes() -> None:
    assert model_hash(load_model(MODEL).model) != model_hash(load_model(MODEL.replace("30]", "31]")).model)


def test_same_model_and_seed_give_identical_bytes(tmp_path: Path) -> None:
    a, b = run(tmp_path / "a", seed=5), run(tmp_path / "b", seed=5)
    assert a.manifest["scenarioHash"] == b.manifest["scenarioHash"]
    assert a.manifest["seriesHashes"] == b.manifest["seriesHashes"]


def test_deterministic_run_id_reuses_the_existing_run(tmp_path: Path) -> None:
    first = run(tmp_path, deterministic_id=True)
    again = run(tmp_path, REFORMATTED, deterministic_id=True)
    assert first.run_id.startswith("run_deterministic_")
    assert again.run_id == first.run_id and again.reused


def test_no_temporary_folder_is_left_behind(tmp_path: Path) -> None:
    run(tmp_path)
    (tmp_path / ".tmp-run_x-1234").mkdir()
    assert clean_temp_folders(tmp_path) == 1
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".tmp")] == []


@pytest.mark.parametrize(("value", "text"), [
    (8.0, "8"), (0.1 + 0.2, "0.30000000000000004"), (17.05, "17.05"), (-0.0, "-0"), (1e-05, "1E-05"),
    (2.5e-07, "2.5E-07"), (1e15, "1E+15"), (1.2345678901234568e17, "1.2345678901234568E+17"),
    (0.0001, "0.0001"), (100000000000000.0, "100000000000000"), (123456789012345.6, "123456789012345.6"),
    (float("inf"), "Infinity"), (float("-inf"), "-Infinity"), (float("nan"), "NaN"),
])
def test_numbers_are_written_like_the_reference(value: float, text: str) -> None:
    assert format_number(value) == text


def test_fast_csv_paths_agree_with_the_exact_formatter() -> None:
    rng = np.random.default_rng(3)
    arr = np.concatenate([rng.uniform(-1e3, 1e3, 200), np.round(rng.uniform(0, 100, 50)), [1e-5, 3e20, -0.0]])
    body = series_csv(arr).decode().splitlines()[1:]
    assert [line.split(",")[1] for line in body] == [format_number(x) for x in arr.tolist()]


# -- per-class series ------------------------------------------------------------------------------

CLASSES = """schemaVersion: 1
grid: {bins: 2, binSize: 1, binUnit: hours}
classes: [{id: Order}, {id: Refund}]
traffic:
  arrivals:
    - {nodeId: ingest, classId: Order, pattern: {kind: constant, ratePerBin: 3}}
    - {nodeId: ingest, classId: Refund, pattern: {kind: constant, ratePerBin: 1}}
nodes:
  - {id: ingest, kind: const, values: [4, 8]}
  - {id: other, kind: const, values: [1, 1]}
  - {id: served, kind: expr, expr: EXPR}
"""


def _run_of(text: str, tmp_path: Path) -> tuple[Path, dict[str, object]]:
    loaded = load_model(text)
    record = write_run(loaded, evaluate(loaded.model), tmp_path)
    return record.path, record.run


def test_class_series_are_written_beside_the_totals(tmp_path: Path) -> None:
    folder, run = _run_of(CLASSES.replace("EXPR", "ingest / 2"), tmp_path)
    assert (folder / "series" / "served@SERVED@Order.csv").read_text() == "t,value\n0,1.5\n1,3\n"
    assert (folder / "series" / "served@SERVED@Refund.csv").read_text() == "t,value\n0,0.5\n1,1\n"
    assert [p.name for p in (folder / "series").glob("other@*")] == ["other@OTHER@DEFAULT.csv"]  # no class reaches it
    assert run["classCoverage"] == "full"
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["classCoverage"] == "full"
    assert "served@SERVED@Order" in manifest["seriesHashes"]
    index = json.loads((folder / "series" / "index.json").read_text())
    order = next(e for e in index["series"] if e["id"] == "served@SERVED@Order")
    assert (order["nodeId"], order["class"], order["classKind"]) == ("served", "Order", "specific")


def test_a_class_series_that_is_not_finite_is_left_out_and_coverage_is_partial(tmp_path: Path) -> None:
    _, run = _run_of(CLASSES.replace("EXPR", "SQRT(ingest - 6)"), tmp_path)  # bin 0: SQRT(-2)
    ids = [s["id"] for s in run["series"]]  # type: ignore[attr-defined]
    assert "served@SERVED@Order" not in ids and "ingest@INGEST@Order" in ids
    assert run["classCoverage"] == "partial"


def test_a_model_without_classes_has_no_class_coverage(tmp_path: Path) -> None:
    _, run = _run_of(CLASSES.split("classes:")[0] + "nodes:\n  - {id: a, kind: const, values: [1, 2]}\n",
                     tmp_path)
    assert run["classCoverage"] == "none"
    assert [s["id"] for s in run["series"]] == ["a@A@DEFAULT"]  # type: ignore[attr-defined]
