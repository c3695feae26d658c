"""
The reference's window (fixture) form: `window` for the grid, kind-less topology nodes read as
services, `variables` / `constraints` beside it; what stays an error outside that form.
"""

from __future__ import annotations

from pathlib import Path

import pytest

import flowtime
from flowtime.errors import ModelValidationError
from flowtime.model.hashing import model_hash
from flowtime.model.load import LoadedModel, load_model
from flowtime.series_files import beside

WINDOW = ("window: {bins: 2, binSize: 10, binUnit: minutes, startTimeUtc: '2025-10-07T00:00:00Z'}\n"
          "topology:\n  nodes:\n    - id: Svc\n      semantics: {arrivals: 'file:a.csv', served: 'file:a.csv'}\n"
          "variables: []\nconstraints: []\n")


def _load(tmp_path: Path, text: str, csv: str = "bin_index,value\n0,4\n1,5\n") -> LoadedModel:
    (tmp_path / "a.csv").write_text(csv)
    (tmp_path / "m.yaml").write_text(text)
    return load_model(text, "m.yaml", series_files=beside(tmp_path / "m.yaml"))


def test_the_window_gives_the_grid_and_the_files_the_series(tmp_path: Path) -> None:
    loaded = _load(tmp_path, WINDOW)
    model = loaded.model
    assert (model.grid.bins, model.grid.bin_minutes) == (2, 10)
    assert model.topology.nodes[0].kind == "service"
    assert loaded.warnings == []
    assert flowtime.evaluate(model)["a"].tolist() == [4, 5]


def test_a_bad_window_is_located_at_it(tmp_path: Path) -> None:
    with pytest.raises(ModelValidationError) as info:
        _load(tmp_path, WINDOW.replace("bins: 2, ", ""))
    assert "window.bins is required" in str(info.value)
    assert "m.yaml, line 1" in str(info.value)


def test_variables_and_top_level_constraints_that_say_something_are_warned_ignored(tmp_path: Path) -> None:
    loaded = _load(tmp_path, WINDOW.replace("variables: []", "variables: [{name: x}]"))
    warnings = [str(w) for w in loaded.warnings]
    assert len(warnings) == 1 and "line 6" in warnings[0] and "'variables' of the window form is ignored" in warnings[0]


def test_outside_the_window_form_a_topology_node_still_needs_a_kind(tmp_path: Path) -> None:
    text = "schemaVersion: 1\ngrid: {bins: 2, binSize: 10, binUnit: minutes}\n" + WINDOW.split("\n", 1)[1]
    with pytest.raises(ModelValidationError) as info:
        _load(tmp_path, text)
    assert "topology node 'Svc' needs `kind`" in str(info.value)


def test_a_file_with_nan_hashes_and_differs_from_zero(tmp_path: Path) -> None:
    nan = _load(tmp_path, WINDOW, "bin_index,value\n0,4\n1,NaN\n").model
    zero = _load(tmp_path, WINDOW, "bin_index,value\n0,4\n1,0\n").model
    assert model_hash(nan) != model_hash(zero)
    empty = _load(tmp_path, WINDOW, "bin_index,value\n0,4\n1,\n").model  # an empty cell is NaN too
    assert model_hash(nan) == model_hash(empty)
