"""The ``analysis:`` block: read into ``model.analysis``, located errors and warnings, no effect on the model hash."""

from __future__ import annotations

import pytest

from flowtime.errors import ModelValidationError
from flowtime.model.analysis_settings import DEFAULT_ANALYSIS, AnalysisSettings
from flowtime.model.hashing import model_hash
from flowtime.model.load import load_model

BASE = "schemaVersion: 1\ngrid: {bins: 3, binSize: 1, binUnit: hours}\nnodes:\n  - {id: a, values: [1, 2, 3]}\n"


def test_without_the_block_the_defaults_hold_and_the_hash_is_the_same_with_it() -> None:
    plain = load_model(BASE).model
    assert plain.analysis == DEFAULT_ANALYSIS
    tuned = load_model(BASE + "analysis: {tolerance: 0.5, streakBins: 4}\n").model
    assert tuned.analysis != DEFAULT_ANALYSIS
    assert model_hash(tuned) == model_hash(plain)  # thresholds change no series


def test_every_field_is_read() -> None:
    text = BASE + ("analysis:\n  tolerance: 0.001\n  utilization: {yellow: 0.6, red: 0.8}\n"
                   "  latency: {yellow: 2, red: 3}\n  slaCompletion: 0.9\n  streakBins: 5\n"
                   "  nonStationary: {ratio: 0.3, minBins: 6}\n  ignore: [queue_latency_unreported]\n")
    assert load_model(text).model.analysis == AnalysisSettings(
        tolerance=0.001, utilization_yellow=0.6, utilization_red=0.8, latency_yellow=2.0, latency_red=3.0,
        sla_completion=0.9, streak_bins=5, non_stationary_ratio=0.3, non_stationary_min_bins=6,
        ignore=frozenset({"queue_latency_unreported"}))


def test_a_half_given_pair_keeps_the_other_default() -> None:
    s = load_model(BASE + "analysis: {utilization: {red: 0.95}}\n").model.analysis
    assert (s.utilization_yellow, s.utilization_red) == (0.7, 0.95)


@pytest.mark.parametrize(("block", "where", "words"), [
    ("{tolerance: -1}", "analysis.tolerance", "a number >= 0"),
    ("{tolerance: lots}", "analysis.tolerance", "the text 'lots'"),
    ("{slaCompletion: 1.5}", "analysis.slaCompletion", "between 0 and 1"),
    ("{streakBins: 0}", "analysis.streakBins", "whole number >= 1"),
    ("{utilization: {yellow: 0.9, red: 0.5}}", "analysis.utilization", "must not be above red"),
    ("{latency: 2}", "analysis.latency", "a mapping {yellow, red}"),
    ("{nonStationary: {ratio: 0}}", "analysis.nonStationary.ratio", "above 0 and at most 1"),
    ("{ignore: 3}", "analysis.ignore", "a list of codes"),
    ("[1, 2]", "analysis", "must be a mapping"),
])
def test_a_wrong_value_is_an_error_at_its_path(block: str, where: str, words: str) -> None:
    with pytest.raises(ModelValidationError) as err:
        load_model(BASE + f"analysis: {block}\n")
    [problem] = err.value.problems
    assert (problem.path, problem.line) == (where, 5)
    assert words in problem.message


def test_unknown_keys_and_codes_are_warned_about_with_a_suggestion() -> None:
    lm = load_model(BASE + "analysis:\n  tolerence: 0.1\n  ignore: [queue_negatve, served_negative]\n")
    warned = {(w.path, w.line): w.message for w in lm.warnings}
    assert "did you mean `tolerance`" in warned[("analysis.tolerence", 6)]
    assert "did you mean `queue_negative`" in warned[("analysis.ignore[0]", 7)]
    assert len(warned) == 2
    assert lm.model.analysis.tolerance == DEFAULT_ANALYSIS.tolerance
