"""Time-of-day profiles: built-in shapes, inline weights, resampling - numbers worked out by hand."""

from __future__ import annotations

import pytest

from flowtime.sim import profiles
from flowtime.sim.profiles import ProfileProblem, builtin, normalise, resample, resolve


def test_inline_weights_are_normalised_to_mean_one() -> None:
    assert resolve({"kind": "inline", "weights": [1, 3]}, 2).weights == (0.5, 1.5)
    assert resolve({"kind": "inline", "weights": [2, 2, 8]}, 3).weights == (0.5, 0.5, 2.0)


def test_resample_reads_linearly_between_the_sample_below_and_the_next() -> None:
    # positions i/4 * 1 = 0, .25, .5, .75 between 0 and 4
    assert resample([0.0, 4.0], 4) == [0.0, 1.0, 2.0, 3.0]
    # positions i/4 * 2 = 0, .5, 1, 1.5 over [1, 2, 4]
    assert resample([1.0, 2.0, 4.0], 4) == [1.0, 1.5, 2.0, 3.0]
    # positions i/2 * 3 = 0, 1.5 over [1, 2, 4, 8]: shrinking keeps the first sample
    assert resample([1.0, 2.0, 4.0, 8.0], 2) == [1.0, 3.0]
    assert resample([5.0, 7.0], 2) == [5.0, 7.0]  # same length: unchanged


def test_normalise_refuses_a_zero_average() -> None:
    with pytest.raises(ProfileProblem, match="positive average"):
        normalise([0.0, 0.0])


def test_builtin_at_288_bins_is_the_hourly_shape_over_its_mean() -> None:
    w = builtin("hub-rush-hour", 288)
    assert len(w) == 288
    # hourly weights sum to 18.14, so the mean is 18.14 / 24; each hour fills twelve bins
    assert w[0] == pytest.approx(0.2 * 24 / 18.14)
    assert w[:12] == [w[0]] * 12
    assert w[12 * 17] == pytest.approx(1.5 * 24 / 18.14)  # the evening peak, 17:00
    assert sum(w) / 288 == pytest.approx(1.0)


@pytest.mark.parametrize(("name", "hour", "weight", "total"), [
    ("weekday-office", 11, 1.3, 15.47),
    ("three-shift", 0, 0.9, 23.78),
    ("three-shift", 11, 1.15, 23.78),
])
def test_each_builtin_profile_keeps_its_hourly_weights(name: str, hour: int, weight: float, total: float) -> None:
    assert builtin(name, 288)[12 * hour] == pytest.approx(weight * 24 / total)


def test_builtin_resampled_to_24_bins() -> None:
    w = builtin("hub-rush-hour", 24)
    # bin 1 sits at 1/24 * 287 = 11.9583: the last bin of hour 0 (0.2) towards the first of hour 1 (0.18)
    assert w[1] / w[0] == pytest.approx((0.2 + (0.18 - 0.2) * (287 / 24 - 11)) / 0.2)
    assert sum(w) / 24 == pytest.approx(1.0)  # normalised again after resampling


def test_builtin_names_are_case_insensitive_and_kind_defaults_to_builtin() -> None:
    p = resolve({"name": "Hub-Rush-Hour"}, 288)
    assert (p.kind, p.name) == ("builtin", "Hub-Rush-Hour")
    assert p.weights == tuple(builtin("hub-rush-hour", 288))


@pytest.mark.parametrize(("raw", "bins", "field", "words"), [
    ({"kind": "inline", "weights": [1, 2, 3]}, 2, "weights", "exactly grid.bins (2) values, got 3"),
    ({"kind": "inline", "weights": [1, -1]}, 2, "weights", "must not be negative"),
    ({"kind": "inline"}, 2, None, "non-empty weights"),
    ({"kind": "builtin", "name": "night-owl"}, 2, "name", "unknown builtin profile 'night-owl'"),
    ({"kind": "builtin"}, 2, None, "needs a name"),
    ({"kind": "weekly"}, 2, "kind", "not supported"),
])
def test_profile_problems_name_the_field(raw: dict[str, object], bins: int, field: str | None, words: str) -> None:
    with pytest.raises(ProfileProblem) as info:
        resolve(raw, bins)
    assert info.value.field == field and words in str(info.value)


def test_the_library_has_the_three_reference_profiles_of_24_hours() -> None:
    assert sorted(profiles.BUILTIN_HOURLY) == ["hub-rush-hour", "three-shift", "weekday-office"]
    assert all(len(h) == 24 for h in profiles.BUILTIN_HOURLY.values())
