"""
Edge series: names the reference gives them, weights, measures from ports, located warnings,
written with every run (also when the outputs name other series), and files named as our series are.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import flowtime
from flowtime.artifacts.writer import write_run
from flowtime.model.load import load_model

HEAD = ("schemaVersion: 1\ngrid: {bins: 2, binSize: 1, binUnit: hours}\nnodes:\n"
        "  - {id: served, values: [12, 6]}\n  - {id: errors, values: [3, 1]}\n"
        "topology:\n  nodes:\n    - {id: Src, kind: service, semantics: {served: served, errors: errors}}\n"
        "    - {id: X, kind: service}\n    - {id: Y, kind: service}\n  edges:\n")


def _run(edges: str, tail: str = "") -> tuple[dict[str, list[float]], list[str]]:
    loaded = load_model(HEAD + edges + tail, "m.yaml")
    r = flowtime.evaluate(loaded.model)
    edge_ids = [n for n in r.output_ids if n.startswith("edge_")]
    return {n: r[n].tolist() for n in edge_ids}, [str(w) for w in loaded.warnings]


def test_a_weight_of_zero_counts_as_one_as_in_the_reference() -> None:
    got, _ = _run("    - {id: a, from: Src, to: X, weight: 0}\n    - {id: b, from: Src, to: Y, weight: 2}\n")
    assert got == {"edge_a_flowVolume": [4, 2], "edge_b_flowVolume": [8, 4]}


def test_a_source_port_naming_a_measure_shares_that_series() -> None:
    got, _ = _run("    - {from: 'Src:errors', to: X}\n    - {from: 'Src:out', to: Y}\n")
    assert got == {"edge_Src_errors-_X_flowVolume": [3, 1], "edge_Src_out-_Y_flowVolume": [12, 6]}


def test_a_terminal_failures_edge_falls_back_to_errors() -> None:
    got, _ = _run("    - {id: t, from: Src, to: X, type: terminal, measure: failures, multiplier: 0.5}\n")
    assert got == {"edge_t_failuresVolume": [1.5, 0.5]}


def test_a_missing_series_is_a_located_warning_and_no_edge_series() -> None:
    got, warnings = _run("    - {id: x, from: X, to: Y}\n"
                         "    - {id: e, from: X, to: Y, type: effort, measure: attempts}\n")
    assert got == {}
    assert any("line 12" in w and "source 'X' has no semantics.served" in w for w in warnings)
    assert any("line 13" in w and "no semantics.attempts" in w for w in warnings)


def test_two_edges_with_one_name_keep_the_first_and_warn() -> None:
    got, warnings = _run("    - {from: Src, to: X, weight: 1}\n    - {from: Src, to: X, weight: 3}\n")
    assert got == {"edge_Src-_X_flowVolume": [3, 1.5]}
    assert any("line 13" in w and "already the series of edge 0" in w for w in warnings)


def test_edge_series_are_written_with_every_run_in_files_named_like_ours(tmp_path: Path) -> None:
    text = HEAD + "    - {id: 'to x', from: Src, to: X}\n" + "outputs:\n  - series: served\n"
    loaded = load_model(text)
    results = flowtime.evaluate(loaded.model)
    assert results.output_ids == ["served", "edge_to_x_flowVolume"]
    record = write_run(loaded, results, tmp_path)
    index = json.loads((record.path / "series" / "index.json").read_text())
    paths = {s["id"]: s["path"] for s in index["series"]}
    assert paths["edge_to_x_flowVolume@EDGE_TO_X_FLOWVOLUME@DEFAULT"] == \
        "series/edge_to_x_flowVolume@EDGE_TO_X_FLOWVOLUME@DEFAULT.csv"
    assert (record.path / paths["edge_to_x_flowVolume@EDGE_TO_X_FLOWVOLUME@DEFAULT"]).read_text().splitlines()[1:] \
        == ["0,12", "1,6"]


def test_edge_series_follow_overrides_of_their_source() -> None:
    p = flowtime.plan(load_model(HEAD + "    - {id: a, from: Src, to: X, weight: 3}\n"
                                        "    - {id: b, from: Src, to: Y, lag: 1}\n").model)
    r = p.evaluate(set={"served": [40, 8]})
    assert (r["edge_a_flowVolume"].tolist(), r["edge_b_flowVolume"].tolist()) == ([30, 6], [0, 10])


@pytest.mark.parametrize("kind", ["topology", "Throughput"])
def test_topology_and_throughput_types_carry_flow(kind: str) -> None:
    got, _ = _run(f"    - {{id: a, from: Src, to: X, type: {kind}}}\n")
    assert got == {"edge_a_flowVolume": [12, 6]}


def test_an_edge_from_a_node_that_failed_to_read_is_a_located_error_not_a_crash() -> None:
    """Src's kind is wrong, so Src is not in the topology read; its edge must not break the edge series."""
    from flowtime.errors import ModelValidationError

    text = HEAD.replace("kind: service, semantics: {served", "kind: servicex, semantics: {served")
    with pytest.raises(ModelValidationError, match="servicex") as info:
        load_model(text + "    - {id: a, from: Src, to: X}\n", "m.yaml")
    assert "m.yaml, line 8" in str(info.value)
