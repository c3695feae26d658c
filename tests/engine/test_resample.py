"""Runs on different grids: the common span and the resampling rule, checked against numbers worked by hand."""

from __future__ import annotations

import numpy as np
import pytest

from flowtime.engine.resample import Axis, Window, align, resample
from flowtime.errors import ConflictError


def test_same_grids_are_taken_whole_bin_by_bin() -> None:
    al = align([Axis(4, 60, 0), Axis(4, 60, 0)])
    assert (al.bin_minutes, al.start_minute, al.bins) == (60, 0, 4)
    assert al.windows == (Window(0, 1), Window(0, 1)) and not al.resampled


def test_a_shorter_run_cuts_the_span_to_its_bins() -> None:
    al = align([Axis(4, 60, 0), Axis(3, 60, 0)])
    assert al.bins == 3 and al.resampled
    assert resample(np.array([1.0, 2.0, 3.0, 4.0]), al.windows[0], al.bins, "sum").tolist() == [1, 2, 3]


def test_quarter_hours_fold_into_hours_flows_summed_levels_averaged() -> None:
    # A: 15-minute bins over 2 h from 00:00; B: hourly bins over 3 h from 00:00. Common: 2 hourly bins.
    al = align([Axis(8, 15, 0), Axis(3, 60, 0)])
    assert (al.bin_minutes, al.bins) == (60, 2)
    flow = np.array([1.0, 2.0, 3.0, 4.0, 10.0, 10.0, 0.0, 0.0])
    assert resample(flow, al.windows[0], 2, "sum").tolist() == [10.0, 20.0]   # 1+2+3+4, 10+10+0+0
    assert resample(flow, al.windows[0], 2, "mean").tolist() == [2.5, 5.0]    # 10/4, 20/4
    assert resample(np.array([7.0, 8.0, 9.0]), al.windows[1], 2, "sum").tolist() == [7.0, 8.0]


def test_later_start_and_coarser_bins_pick_the_shared_boundary() -> None:
    # A: 30-min bins from 00:00 for 6 h (12 bins); B: 2-hour bins from 01:00 for 6 h (3 bins: 01-03, 03-05, 05-07).
    al = align([Axis(12, 30, 0), Axis(3, 120, 60)])
    assert (al.bin_minutes, al.start_minute, al.bins) == (120, 60, 2)  # 01:00-03:00, 03:00-05:00; A ends at 06:00
    assert al.windows == (Window(first=2, factor=4), Window(first=0, factor=1))
    a = np.arange(12.0)  # bins 2..5 -> 2+3+4+5 = 14, bins 6..9 -> 6+7+8+9 = 30
    assert resample(a, al.windows[0], al.bins, "sum").tolist() == [14.0, 30.0]
    assert resample(a, al.windows[0], al.bins, "mean").tolist() == [3.5, 7.5]


def test_sizes_that_do_not_nest_meet_at_their_least_common_multiple() -> None:
    al = align([Axis(8, 45, 0), Axis(6, 60, 0)])  # 45 and 60 minutes: 180-minute bins; A covers 360, B 360
    assert (al.bin_minutes, al.bins) == (180, 2)
    assert al.windows == (Window(0, 4), Window(0, 3))


def test_undefined_bins_are_left_out_of_a_mean_and_spoil_a_sum() -> None:
    ratio = np.array([0.5, np.nan, np.nan, np.nan, 0.2, 0.4])
    assert resample(ratio, Window(0, 2), 3, "mean").tolist()[0] == 0.5
    assert np.isnan(resample(ratio, Window(0, 2), 3, "mean")[1])
    assert resample(ratio, Window(0, 2), 3, "mean")[2] == pytest.approx(0.3)
    assert np.isnan(resample(ratio, Window(0, 2), 3, "sum")[0])


def test_disjoint_spans_are_a_conflict_naming_both_spans() -> None:
    spans = "share no time span: run 1 covers minutes 0-120, run 2 covers minutes 180-300"
    with pytest.raises(ConflictError, match=spans):
        align([Axis(2, 60, 0), Axis(2, 60, 180)])


def test_an_overlap_shorter_than_one_common_bin_is_a_conflict() -> None:
    with pytest.raises(ConflictError, match="less than one common bin of 120 minutes"):
        align([Axis(2, 60, 0), Axis(1, 120, 60)])  # overlap 60..120 only


def test_boundaries_that_never_meet_are_a_conflict() -> None:
    with pytest.raises(ConflictError, match="starts on a bin boundary of every run"):
        align([Axis(10, 60, 0), Axis(10, 60, 30)])  # hourly at :00 and at :30


def test_three_runs_align_together() -> None:
    al = align([Axis(24, 60, 0), Axis(96, 15, 0), Axis(2, 360, 0)])
    assert (al.bin_minutes, al.bins) == (360, 2)
    assert [w.factor for w in al.windows] == [6, 24, 1]
