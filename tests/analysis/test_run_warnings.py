"""run.json: the analyser's findings follow the loader's and engine's problems; a repeated code is said once."""

from __future__ import annotations

from pathlib import Path

from flowtime.artifacts.writer import write_run
from flowtime.engine import evaluate
from flowtime.model.load import load_model

MODEL = """\
schemaVersion: 1
grid: {bins: 3, binSize: 1, binUnit: hours}
nodes:
  - {id: a, values: [4, 4, 4]}
  - {id: s, values: [2, 5, 2]}
  - {id: typo, values: [1, 1, 1], colour: red}
topology:
  nodes:
    - {id: S, kind: service, semantics: {arrivals: a, served: s}}
    - {id: Z, kind: sink, semantics: {arrivals: s}}
  edges:
    - {from: S, to: Z, lag: 1}
"""


def _warnings(text: str, tmp_path: Path) -> list[dict[str, object]]:
    lm = load_model(text)
    record = write_run(lm, evaluate(lm.model), tmp_path)
    return record.run["warnings"]  # type: ignore[no-any-return]


def test_findings_come_after_the_loaders_problems_located_by_node_and_bin(tmp_path: Path) -> None:
    warnings = _warnings(MODEL, tmp_path)
    problems = [w for w in warnings if "code" not in w]
    findings = [w for w in warnings if "code" in w]
    assert warnings == problems + findings
    assert any("colour" in str(p["message"]) for p in problems)
    by_code = {(w["code"], w["nodeId"]): w for w in findings}
    # served 5 > arrivals 4 in bin 1: ratio 1.25
    exceeds = by_code[("served_exceeds_arrivals", "S")]
    assert (exceeds["bins"], exceeds["binCount"], exceeds["value"], exceeds["severity"]) == ([1], 1, 1.25, "warning")
    assert by_code[("edge_behavior_violation_lag", "S")]["edgeIds"] == ["S-_Z"]
    # S is a service without capacity, processing time or served count: three infos
    assert {c for c, n in by_code if n == "S"} >= {"missing_capacity_series", "missing_processing_time_series",
                                                    "missing_served_count_series"}
    # the loader warns about the lag too; the finding says it once
    assert not [p for p in problems if str(p["message"]).startswith("edge_behavior_violation_lag")]


def test_ignored_codes_are_left_out_of_run_json_with_the_loaders_warning_of_that_code(tmp_path: Path) -> None:
    text = MODEL + "analysis: {ignore: [edge_behavior_violation_lag, missing_capacity_series]}\n"
    warnings = _warnings(text, tmp_path)
    assert not [w for w in warnings if w.get("code") in ("edge_behavior_violation_lag", "missing_capacity_series")]
    assert not [w for w in warnings if "edge_behavior_violation_lag" in str(w["message"])]
    assert [w["code"] for w in warnings if w.get("code") == "served_exceeds_arrivals"] == ["served_exceeds_arrivals"]
