"""`file:` references in the loader: each file becomes one const node, named by its stem when it can be."""

from __future__ import annotations

import numpy as np
import pytest

from flowtime.engine import compile_model, evaluate
from flowtime.errors import ModelValidationError, SeriesFileError
from flowtime.model.files import FileSeries
from flowtime.model.load import load_model

HEAD = "schemaVersion: 1\ngrid: {bins: 3, binSize: 1, binUnit: hours}\n"


def _files(**series: list[float]):  # type: ignore[no-untyped-def]
    def read(ref: str, bins: int) -> FileSeries:
        key = ref.removeprefix("//").rsplit("/", 1)[-1].removesuffix(".csv")
        if key not in series:
            raise SeriesFileError(f"{ref}: file not found")
        assert bins == 3
        return FileSeries(np.array(series[key], dtype=np.float64), ref.removeprefix("//"))
    return read


def _model(arrivals: str, served: str, nodes: str = "") -> str:
    return (HEAD + nodes + "topology:\n  nodes:\n    - id: Hub\n      kind: serviceWithBuffer\n"
            f"      semantics: {{arrivals: '{arrivals}', served: '{served}'}}\n")


def test_each_file_is_a_const_node_named_by_its_stem_that_the_queue_reads() -> None:
    loaded = load_model(_model("file:tele/arrivals.csv", "file:served.csv"), "m.yaml",
                        series_files=_files(arrivals=[5, 1, 0], served=[2, 2, 2]))
    results = evaluate(compile_model(loaded.model))
    assert results.series["arrivals"].tolist() == [5, 1, 0]
    assert results.series["hub_queue"].tolist() == [3, 2, 0]
    hub = loaded.model.topology.nodes[0]
    assert (hub.ref("arrivals").text, hub.ref("arrivals").node) == ("file:tele/arrivals.csv", "arrivals")


def test_one_file_referenced_twice_is_one_node() -> None:
    loaded = load_model(_model("file:a.csv", "file://a.csv"), series_files=_files(a=[1, 1, 1]))
    assert [n.id for n in loaded.model.nodes].count("a") == 1


def test_a_stem_that_names_a_node_gets_an_internal_id_and_a_warning() -> None:
    text = _model("file:arrivals.csv", "served", nodes="nodes:\n  - {id: arrivals, values: [9, 9, 9]}\n"
                  "  - {id: served, values: [1, 1, 1]}\n")
    loaded = load_model(text, "m.yaml", series_files=_files(arrivals=[4, 4, 4]))
    results = evaluate(compile_model(loaded.model))
    assert results.series["arrivals"].tolist() == [9, 9, 9]
    assert results.series["arrivals#file1"].tolist() == [4, 4, 4]
    assert results.series["hub_queue"].tolist() == [3, 6, 9]
    assert "arrivals#file1" not in results.shown
    assert [w.message for w in loaded.warnings] == [
        "topology node 'Hub': semantics.arrivals `file:arrivals.csv`: the stem 'arrivals' is taken by another node, "
        "so this file's series is the internal node 'arrivals#file1' (not shown in runs); rename the file to show it"]


def test_without_a_reader_a_file_reference_is_a_located_error_saying_how_to_allow_it() -> None:
    with pytest.raises(ModelValidationError) as info:
        load_model(_model("file:a.csv", "file:a.csv"), "body")
    text = str(info.value)
    assert "2 errors in body" in text
    assert "body, line 7, column 29, topology.nodes.Hub.semantics.arrivals" in text
    assert "FLOWTIME_TELEMETRY_ROOT" in text


def test_a_file_that_cannot_be_read_is_reported_once_at_its_reference() -> None:
    with pytest.raises(ModelValidationError) as info:
        load_model(_model("file:nope.csv", "file:served.csv"), "m.yaml", series_files=_files(served=[1, 1, 1]))
    errors = [p for p in info.value.problems if p.severity == "error"]
    assert [(p.path, p.message) for p in errors] == [
        ("topology.nodes.Hub.semantics.arrivals",
         "topology node 'Hub': semantics.arrivals `file:nope.csv`: nope.csv: file not found")]
