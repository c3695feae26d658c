"""Window facts: each code triggered by a model built for it, and a near miss that must not trigger."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

import flowtime
from flowtime.analysis.findings import Finding
from flowtime.analysis.metrics import derive
from flowtime.analysis.windows import ALIASES, WINDOW_CODES, long_runs, streaks, window_facts
from flowtime.model.analysis_settings import AnalysisSettings
from flowtime.model.load import load_model


def facts(arrivals: list[float], depth: list[float], *, served: list[float] | None = None,
          capacity: list[float] | None = None, sla: float | None = None, kind: str = "queue",
          settings: AnalysisSettings | None = None, start: int = 0, end: int | None = None) -> list[Finding]:
    n = len(arrivals)
    served = served or [1.0] * n
    extra = ", capacity: cap" if capacity else ""
    extra += f", slaMin: {sla}" if sla is not None else ""
    text = (f"schemaVersion: 1\ngrid: {{bins: {n}, binSize: 1, binUnit: minutes}}\nnodes:\n"
            f"  - {{id: arr, values: {arrivals}}}\n  - {{id: srv, values: {served}}}\n"
            f"  - {{id: depth, values: {depth}}}\n"
            + (f"  - {{id: cap, values: {capacity}}}\n" if capacity else "")
            + f"topology:\n  nodes:\n    - {{id: Q, kind: {kind}, semantics: {{arrivals: arr, served: srv, "
            f"queueDepth: depth{extra}}}}}\n")
    model = load_model(text).model
    settings = settings or AnalysisSettings()
    return window_facts(model, derive(model, flowtime.evaluate(model).series, settings), settings, start, end)


def codes(found: list[Finding]) -> list[str]:
    return [f.code for f in found]


FLAT = [5.0] * 6
ZERO = [0.0] * 6


def test_arrivals_whose_halves_differ_by_more_than_a_quarter_are_non_stationary() -> None:
    [f] = facts([10, 10, 20, 20], [0, 0, 0, 0])
    # first half mean 10, second 20: |10 - 20| = 10 > 0.25 x 20
    assert (f.code, f.severity, f.node, f.value) == ("non_stationary", "info", "Q", 0.5)
    assert "littles-law-non-stationary" in f.hint and ALIASES["non_stationary"] == "littles-law-non-stationary"
    assert f.bins == () and f.count == 0  # about the whole window, not some of its bins


def test_arrivals_within_a_quarter_or_a_window_below_min_bins_are_not_non_stationary() -> None:
    assert facts([10, 10, 12, 12], [0, 0, 0, 0]) == []  # 2 <= 0.25 x 12
    assert facts([10, 10, 20], [0, 0, 0]) == []  # 3 bins < minBins 4
    assert codes(facts([10, 10, 20], [0, 0, 0], settings=AnalysisSettings(non_stationary_min_bins=2))) == [
        "non_stationary"]  # halves [10] and [10, 20]: 10 vs 15, 5 > 3.75


def test_non_stationary_is_only_about_nodes_with_a_queue_time() -> None:
    text = ("schemaVersion: 1\ngrid: {bins: 4, binSize: 1, binUnit: minutes}\nnodes:\n"
            "  - {id: arr, values: [10, 10, 20, 20]}\ntopology:\n  nodes:\n"
            "    - {id: S, kind: service, semantics: {arrivals: arr, served: arr}}\n")
    model = load_model(text).model
    assert window_facts(model, derive(model, flowtime.evaluate(model).series)) == []


def test_a_queue_rising_three_bins_in_a_row_is_a_growth_streak() -> None:
    [f] = facts(FLAT, [0, 1, 2, 3, 3, 4])
    # rises in bins 1, 2, 3 (a streak of 3) and 5 (alone); the streak's rise: 3 - 0
    assert (f.code, f.severity, f.bins, f.count, f.value) == ("backlog_growth_streak", "info", (1, 2, 3), 3, 3.0)


def test_two_rises_in_a_row_or_a_flat_bin_between_are_not_a_growth_streak() -> None:
    assert facts(FLAT, [0, 1, 2, 2, 3, 4]) == []
    assert facts(FLAT, [0, 1, 2, 2 + 1e-9, 3, 3]) == []  # a rise within the tolerance is no rise


def test_arrivals_above_capacity_three_bins_in_a_row_are_an_overload() -> None:
    [f] = facts([12, 12, 15, 12, 9, 9], ZERO, capacity=[10, 10, 10, 10, 10, 10])
    # arrivals / capacity: 1.2, 1.2, 1.5, 1.2, 0.9, 0.9: bins 0-3, the worst 1.5 (halves 13 vs 10: stationary)
    assert (f.code, f.severity, f.bins, f.count, f.value) == ("backlog_overload_ratio", "info", (0, 1, 2, 3), 4,
                                                               1.5)


def test_arrivals_at_capacity_or_an_interrupted_overload_are_not_an_overload() -> None:
    assert facts([10, 10, 10, 10, 10, 10], ZERO, capacity=[10] * 6) == []  # ratio 1 is not above 1
    assert facts([12, 12, 5, 12, 12, 5], ZERO, capacity=[10] * 6) == []


def test_latency_above_sla_three_bins_in_a_row_is_an_age_risk() -> None:
    [f] = facts(FLAT, [4, 6, 7, 6, 2, 2], sla=5)
    # latency = depth / served (1 per bin of a minute): 6, 7, 6 above 5 in bins 1-3
    assert (f.code, f.severity, f.bins, f.count, f.value) == ("backlog_age_risk", "info", (1, 2, 3), 3, 7.0)


def test_latency_at_sla_or_without_an_sla_is_not_an_age_risk() -> None:
    assert facts(FLAT, [5, 5, 5, 5, 2, 2], sla=5) == []
    assert facts(FLAT, [4, 6, 7, 6, 2, 2]) == []


def test_streaks_are_found_within_the_window_and_reported_in_grid_bins() -> None:
    depth = [0, 1, 2, 3, 3, 3, 3, 4, 5, 6]
    arrivals = [5.0] * 10
    assert [(f.code, f.bins) for f in facts(arrivals, depth)] == [("backlog_growth_streak", (1, 2, 3, 7, 8))]
    [f] = facts(arrivals, depth, start=0, end=6)  # bins 0..5: only the first streak
    assert (f.bins, f.count, f.value) == ((1, 2, 3), 3, 3.0)
    [f] = facts(arrivals, depth, start=5)
    # bins 5..9: rises in 7, 8, 9 (bin 5 has no earlier bin in the window)
    assert (f.bins, f.count, f.value) == ((7, 8, 9), 3, 3.0)
    assert facts(arrivals, depth, start=3, end=7) == []


def test_longer_streak_settings_and_ignored_codes_are_respected() -> None:
    assert facts(FLAT, [0, 1, 2, 3, 3, 4], settings=AnalysisSettings(streak_bins=4)) == []
    assert facts(FLAT, [0, 1, 2, 3, 4, 5], settings=AnalysisSettings(ignore=frozenset({"backlog_growth_streak"}))) == []


def test_streaks_marks_every_bin_of_a_long_enough_run() -> None:
    mask = [True, True, False, True, True, True, True, False, True]
    assert streaks(np.array(mask), 2).tolist() == [True, True, False, True, True, True, True,
                                                                    False, False]


def test_every_window_code_has_a_severity_and_a_hint() -> None:
    assert set(WINDOW_CODES) == {"non_stationary", "backlog_growth_streak", "backlog_overload_ratio",
                                 "backlog_age_risk"}
    assert {sev for sev, _ in WINDOW_CODES.values()} <= {"info", "warning", "error"}
    assert all(hint for _, hint in WINDOW_CODES.values())


@settings(max_examples=200, deadline=None)
@given(st.lists(st.lists(st.booleans(), min_size=0, max_size=40), min_size=1, max_size=6)
       .filter(lambda rows: len({len(r) for r in rows}) == 1), st.integers(0, 8))
def test_long_runs_keeps_exactly_the_bins_of_runs_at_least_that_long(rows: list[list[bool]], length: int) -> None:
    # the plain definition: walk each row, measure every run of True, keep it when it is long enough
    expected = []
    for row in rows:
        out, i = [False] * len(row), 0
        while i < len(row):
            if not row[i]:
                i += 1
                continue
            j = i
            while j < len(row) and row[j]:
                j += 1
            if j - i >= max(length, 1):
                out[i:j] = [True] * (j - i)
            i = j
        expected.append(out)
    mask = np.array(rows, dtype=bool).reshape(len(rows), -1)
    assert long_runs(mask, length).tolist() == expected
    for row, want in zip(mask, expected, strict=True):
        assert streaks(row, length).tolist() == want
