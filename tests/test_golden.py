"""
The golden corpus: small models whose every value was computed by hand.

``tests/cases/<name>/model.yaml`` is evaluated and each
``expected/<node>.csv`` (header ``t,value``, one row per bin) is compared with
the node's series: exactly, or within the number in ``tolerance.txt`` when the
case has one. ``expected/<node>@<NODE>@<Class>.csv`` is the node's series of
that flow class (``Results.classes``, named as the run's class series files).
An ``outputs.txt`` lists the expected output ids, in order.

A case may read ``file:`` series: they resolve beside its ``model.yaml`` (as
``flowtime run`` does), and an error case's beside it in ``errors/`` - except
``telemetry_root_*`` cases, read as over HTTP with ``errors/files`` the root.

``tests/cases/errors/<name>.yaml`` must fail to load. Each line of the
matching ``.expected`` file is a substring of the error text (``\\n`` stands
for a line break), except the directives ``line: N`` (some problem is reported
on line N), ``problems: N`` (exactly N errors) and ``error: ClassName``.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

import numpy as np
import pytest

from flowtime.engine import compile_model, evaluate
from flowtime.errors import ModelError, ModelSyntaxError, ModelValidationError
from flowtime.model.load import load_model
from flowtime.series_files import beside, within

CASES = Path(__file__).parent / "cases"
ERRORS = CASES / "errors"

ERROR_CLASSES: dict[str, type[ModelError]] = {
    "ModelSyntaxError": ModelSyntaxError,
    "ModelValidationError": ModelValidationError,
}

# Cases whose expected values follow the spec but the engine disagrees; each is
# an open bug (see the reason). strict: the mark must go once the bug is fixed.
KNOWN_ENGINE_BUGS: dict[str, str] = {}


def _case_dirs() -> list[Path]:
    return sorted(
        p for p in CASES.iterdir() if (p / "model.yaml").is_file() and (p / "expected").is_dir()
    )


def _error_files() -> list[Path]:
    return sorted(ERRORS.glob("*.yaml"))


def _param(path: Path, name: str) -> object:
    marks = []
    if name in KNOWN_ENGINE_BUGS:
        marks.append(pytest.mark.xfail(strict=True, reason=KNOWN_ENGINE_BUGS[name]))
    return pytest.param(path, id=name, marks=marks)


def _read_expected(path: Path) -> np.ndarray:
    rows = list(csv.reader(io.StringIO(path.read_text())))
    assert rows[0] == ["t", "value"], f"{path}: header must be t,value"
    assert [int(r[0]) for r in rows[1:]] == list(range(len(rows) - 1)), (
        f"{path}: t must count 0, 1, 2, ..."
    )
    return np.array([float(r[1]) for r in rows[1:]], dtype=np.float64)


def test_the_corpus_is_large_enough() -> None:
    """The corpus is the main check of evaluation semantics; keep it broad."""
    assert len(_case_dirs()) >= 30
    assert len(_error_files()) >= 20


@pytest.mark.parametrize("case", [_param(p, p.name) for p in _case_dirs()])
def test_case_evaluates_to_its_hand_computed_series(case: Path) -> None:
    loaded = load_model((case / "model.yaml").read_text(), f"{case.name}/model.yaml",
                        series_files=beside(case / "model.yaml"))
    results = evaluate(compile_model(loaded.model))
    tolerance_file = case / "tolerance.txt"
    tolerance = float(tolerance_file.read_text()) if tolerance_file.exists() else None
    expected_files = sorted((case / "expected").glob("*.csv"))
    assert expected_files, f"{case.name}: expected/ holds no CSV"
    for csv_path in expected_files:
        node_id = csv_path.stem
        expected = _read_expected(csv_path)
        if "@" in node_id:  # a class series: node@NODE@Class
            node, upper, cls = node_id.split("@")
            assert upper == node.upper(), f"{csv_path.name}: the middle part is the node id in capitals"
            assert cls in results.classes.get(node, {}), f"{case.name}: no class {cls} series for {node}"
            actual = results.classes[node][cls]
        else:
            actual = results.series[node_id]
        assert actual.dtype == np.float64
        assert actual.shape == (loaded.model.grid.bins,), f"{node_id}: one value per bin"
        assert expected.shape == actual.shape, f"{node_id}: expected CSV has {expected.size} rows"
        if tolerance is None:
            np.testing.assert_array_equal(actual, expected, err_msg=f"{case.name}: node {node_id}")
        else:
            np.testing.assert_allclose(
                actual,
                expected,
                rtol=tolerance,
                atol=tolerance,
                err_msg=f"{case.name}: node {node_id}",
            )
    outputs_file = case / "outputs.txt"
    if outputs_file.exists():
        assert results.output_ids == outputs_file.read_text().split()


@pytest.mark.parametrize("model_file", [_param(p, p.stem) for p in _error_files()])
def test_invalid_model_is_rejected_with_a_located_message(model_file: Path) -> None:
    lines = [
        ln for ln in model_file.with_suffix(".expected").read_text().splitlines() if ln.strip()
    ]
    expected_lines = [int(ln.split(":", 1)[1]) for ln in lines if ln.startswith("line: ")]
    counts = [int(ln.split(":", 1)[1]) for ln in lines if ln.startswith("problems: ")]
    classes = [
        ERROR_CLASSES[ln.split(":", 1)[1].strip()] for ln in lines if ln.startswith("error: ")
    ]
    substrings = [
        ln.replace("\\n", "\n")
        for ln in lines
        if not ln.startswith(("line: ", "problems: ", "error: "))
    ]
    assert substrings, f"{model_file.name}: the .expected file names no message text"

    # telemetry_root_* cases read files as the HTTP API does: inside a root (errors/files), never outside it
    files = within(ERRORS / "files") if model_file.stem.startswith("telemetry_root_") else beside(model_file)
    with pytest.raises(classes[0] if classes else ModelError) as info:
        load_model(model_file.read_text(), model_file.name, series_files=files)

    text = str(info.value)
    for s in substrings:
        assert s in text, f"{s!r} missing from:\n{text}"
    errors = [p for p in info.value.problems if p.severity == "error"]
    reported_lines = {p.line for p in errors}
    for line in expected_lines:
        assert line in reported_lines, (
            f"no problem on line {line}; lines: {sorted(reported_lines, key=str)}"
        )
    for n in counts:
        assert len(errors) == n, text


def test_every_error_case_has_an_expected_file() -> None:
    assert [p.stem for p in _error_files()] == sorted(p.stem for p in ERRORS.glob("*.expected"))


def _warnings(text: str) -> list[str]:
    loaded = load_model(text)
    assert all(w.severity == "warning" for w in loaded.warnings)
    return [str(w) for w in loaded.warnings]


def test_unknown_top_level_key_is_a_warning_with_a_hint() -> None:
    text = (CASES / "arithmetic_operators" / "model.yaml").read_text() + "nodez: []\n"
    warnings = _warnings(text)
    assert len(warnings) == 1
    assert "nodez" in warnings[0]
    assert "did you mean `nodes`" in warnings[0]


def test_pmf_normalisation_is_a_warning() -> None:
    warnings = _warnings((CASES / "pmf_normalised" / "model.yaml").read_text())
    assert len(warnings) == 1
    assert "nodes.value.pmf" in warnings[0]
    assert "normalised" in warnings[0]


def test_pmf_summing_to_one_up_to_float_noise_is_not_warned() -> None:
    assert _warnings((CASES / "pmf_decimal_probabilities" / "model.yaml").read_text()) == []


def test_legacy_bin_minutes_is_converted_with_a_warning() -> None:
    loaded = load_model((CASES / "legacy_bin_minutes" / "model.yaml").read_text())
    grid = loaded.model.grid
    assert (grid.bins, grid.bin_size, grid.bin_unit.value) == (3, 2, "hours")
    assert len(loaded.warnings) == 1
    message = str(loaded.warnings[0])
    assert "binMinutes" in message
    assert "binSize: 2" in message
    assert "hours" in message


@pytest.mark.parametrize(
    ("minutes", "size", "unit"),
    [
        (1, 1, "minutes"),
        (90, 90, "minutes"),
        (60, 1, "hours"),
        (120, 2, "hours"),
        (1440, 1, "days"),
        (2880, 2, "days"),
        (10080, 1, "weeks"),
        (4320, 3, "days"),
    ],
)
def test_legacy_bin_minutes_picks_the_largest_unit_that_divides_evenly(
    minutes: int, size: int, unit: str
) -> None:
    loaded = load_model(f"schemaVersion: 1\ngrid: {{bins: 2, binMinutes: {minutes}}}\n")
    assert (loaded.model.grid.bin_size, loaded.model.grid.bin_unit.value) == (size, unit)
    assert loaded.model.grid.bin_minutes == minutes


def test_a_valid_model_has_no_warnings() -> None:
    assert _warnings((CASES / "feedback_self_backlog" / "model.yaml").read_text()) == []


SAMPLED = CASES / "pmf_sampled" / "model.yaml"


def test_sampled_pmf_gives_identical_series_for_the_same_seed() -> None:
    model = load_model(SAMPLED.read_text()).model
    first = evaluate(model, seed=42)
    second = evaluate(compile_model(model), seed=42)
    assert first.seed == second.seed == 42
    assert sorted(first.sampled) == ["arrivals", "size"]
    for node_id in ("arrivals", "size", "work"):
        np.testing.assert_array_equal(first.series[node_id], second.series[node_id])


def test_sampled_pmf_draws_each_bin_from_the_pmf_values() -> None:
    results = evaluate(load_model(SAMPLED.read_text()).model, seed=42)
    arrivals, size = results.series["arrivals"], results.series["size"]
    assert set(arrivals.tolist()) <= {100.0, 200.0}
    assert set(size.tolist()) <= {1.0, 2.0, 3.0}
    assert len(set(arrivals.tolist()) | set(size.tolist())) > 2, "draws vary from bin to bin"
    np.testing.assert_array_equal(results.series["work"], arrivals * size)


def test_sampled_pmf_uses_rng_seed_from_the_model_when_none_is_given() -> None:
    model = load_model(SAMPLED.read_text()).model
    implicit = evaluate(model)
    explicit = evaluate(model, seed=7)
    assert implicit.seed == 7
    assert implicit.warnings == []
    np.testing.assert_array_equal(implicit.series["work"], explicit.series["work"])


def test_sampled_pmf_differs_between_seeds() -> None:
    model = load_model(SAMPLED.read_text()).model
    series = {tuple(evaluate(model, seed=s).series["work"].tolist()) for s in (1, 2, 3)}
    assert len(series) > 1


def test_sample_pmf_flag_samples_nodes_that_default_to_expectation() -> None:
    model = load_model((CASES / "pmf_mapping_expectation" / "model.yaml").read_text()).model
    a = evaluate(model, seed=5, sample_pmf=True)
    b = evaluate(model, seed=5, sample_pmf=True)
    assert sorted(a.sampled) == ["demand", "signed", "small"]
    assert set(a.series["demand"].tolist()) <= {10.0, 20.0}
    for node_id in a.series:
        np.testing.assert_array_equal(a.series[node_id], b.series[node_id])
    assert evaluate(model).series["demand"].tolist() == [17.5, 17.5, 17.5]
