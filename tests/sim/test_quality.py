"""The quality report: each check, and the score as the share of checks that pass."""

from __future__ import annotations

from flowtime.sim.quality import QualityReport, validate_text

HEAD = "schemaVersion: 1\ngrid: {bins: 3, binSize: 1, binUnit: hours}\n"


def checks(text: str, unused: list[str] | None = None) -> dict[str, bool]:
    report = validate_text(HEAD + text, unused_parameters=unused)
    return {c.name: c.passed for c in report.quality.checks}


def test_a_clean_model_passes_every_check_and_scores_one() -> None:
    report = validate_text(HEAD + """nodes:
  - {id: d, kind: const, values: [1, 2, 3]}
  - {id: s, kind: expr, expr: "MIN(d, 2)"}
outputs: [{series: s}]
""", unused_parameters=[])
    assert report.valid and report.quality.score == 1.0
    assert [c.name for c in report.quality.checks] == [
        "schema", "has_outputs", "nodes_reach_output", "parameters_used", "capacities_non_negative",
        "no_constant_zero_outputs", "no_warnings"]


def test_score_is_passed_over_applicable_checks() -> None:
    # Fails: nodes_reach_output (spare), capacities_non_negative (neg), no_constant_zero_outputs (z).
    text = """nodes:
  - {id: d, kind: const, values: [1, 2, 3]}
  - {id: neg, kind: const, values: [-1, 0, 1]}
  - {id: spare, kind: const, values: [1, 1, 1]}
  - {id: z, kind: expr, expr: "SHIFT(d * 0, 1) + MAX(0, 0)"}
  - {id: s, kind: expr, expr: "d + neg"}
outputs: [{series: s}, {series: z}]
"""
    report = validate_text(HEAD + text)  # no template: parameters_used does not apply
    assert {c.name: c.passed for c in report.quality.checks} == {
        "schema": True, "has_outputs": True, "nodes_reach_output": False,
        "capacities_non_negative": False, "no_constant_zero_outputs": False, "no_warnings": True}
    assert report.quality.score == round(3 / 6, 3) == 0.5
    failed = {c.name: c.message for c in report.quality.checks if not c.passed}
    assert failed["nodes_reach_output"] == "1 node(s) feed no output: spare"
    assert failed["no_constant_zero_outputs"] == "output(s) zero in every bin whatever the inputs: z"


def test_unused_parameters_and_pmf_checks() -> None:
    text = """nodes:
  - {id: p, kind: pmf, pmf: {values: [1, 2], probabilities: [0.5, 0.5000001]}}
outputs: [{series: p}]
"""
    found = checks(text, unused=["spare"])
    assert found["parameters_used"] is False
    assert found["pmfs_valid"] is False  # needed normalising
    assert found["no_warnings"] is False  # the loader warned about the normalisation
    assert validate_text(HEAD + text, unused_parameters=["spare"]).quality.score == round(5 / 8, 3)


def test_no_outputs_fails_has_outputs_and_skips_the_zero_check() -> None:
    found = checks("nodes:\n  - {id: d, kind: const, values: [1, 2, 3]}\n")
    assert found == {"schema": True, "has_outputs": False, "nodes_reach_output": False,
                     "capacities_non_negative": True, "no_warnings": True}


def test_feedback_loops_are_not_mistaken_for_zero() -> None:
    found = checks("""nodes:
  - {id: a, kind: const, values: [5, 0, 0]}
  - {id: q, kind: expr, expr: "MAX(0, SHIFT(q, 1) + a - 1)"}
outputs: [{series: q}]
""")
    assert found["no_constant_zero_outputs"] is True


def test_an_invalid_model_scores_zero_and_lists_its_problems() -> None:
    report = validate_text(HEAD + "nodes:\n  - {id: d, kind: const, values: [1, 2]}\n", "m.yaml")
    assert not report.valid and report.quality.score == 0.0
    assert [c.name for c in report.quality.checks] == ["schema"]
    assert "has 2 values but grid.bins is 3" in report.problems[0].message
    assert report.to_json()["valid"] is False


def test_report_from_checks_of_nothing_is_zero() -> None:
    assert QualityReport.from_checks([]).score == 0.0


def test_conv_pulse_and_arrays_of_zeros_are_seen_as_zero_and_others_are_not() -> None:
    text = """nodes:
  - {id: d, kind: const, values: [1, 2, 3]}
  - {id: zs, kind: expr, expr: "CONV(d * 0, [0.5, 0.5]) + CONV(d, []) + PULSE(2, 0, 0) + [0, 0]"}
  - {id: echo, kind: expr, expr: "CONV(d, [0, 0.6]) + PULSE(2) + [0, 1]"}
outputs: [{series: zs}, {series: echo}]
"""
    report = validate_text(HEAD + text)
    failed = {c.name: c.message for c in report.quality.checks if not c.passed}
    assert failed["no_constant_zero_outputs"] == "output(s) zero in every bin whatever the inputs: zs"
