"""
Time-of-day profiles: the weights that shape a profiled pmf node over the grid.

A template's pmf node may carry ``profile: {kind: builtin, name: ...}`` or
``profile: {kind: inline, weights: [...]}``; generation turns it into a const
node ``E[pmf] * weight[t]`` (``flowtime.sim.lowering``). The rules are the
reference Sim's (engine-head.md §15 Profiles; decision 0023):

* a built-in profile is 24 hourly weights, each repeated for the twelve
  5-minute bins of its hour (288 values), normalised to mean 1, resampled
  linearly to ``bins`` and normalised again;
* inline weights must be exactly ``bins`` values, all >= 0, and are
  normalised to mean 1.

Plain Python floats, in the reference's order of operations, so the numbers
are the reference's to the last bit.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

BINS_PER_HOUR = 12  # 5-minute bins
PROFILE_KINDS = ("builtin", "inline")

# The reference's TimeOfDayProfileLibrary (23min/FlowTime), hour 0 .. 23.
BUILTIN_HOURLY: dict[str, tuple[float, ...]] = {
    # Dual-peak weekday: morning ingress, evening egress.
    "weekday-office": (
        0.18, 0.16, 0.15, 0.15, 0.2, 0.3,
        0.45, 0.7, 0.95, 1.15, 1.25, 1.3,
        1.25, 1.15, 1.05, 1.0, 0.95, 0.85,
        0.65, 0.5, 0.38, 0.3, 0.25, 0.2,
    ),
    # 24/7 manufacturing: a slightly stronger day shift, lighter nights.
    "three-shift": (
        0.9, 0.9, 0.9, 0.92, 0.95, 0.98,
        1.0, 1.03, 1.06, 1.1, 1.12, 1.15,
        1.12, 1.08, 1.05, 1.02, 1.0, 0.98,
        0.96, 0.94, 0.92, 0.9, 0.9, 0.9,
    ),
    # Transit hub: pronounced commuter peaks.
    "hub-rush-hour": (
        0.2, 0.18, 0.17, 0.17, 0.2, 0.35,
        0.7, 1.2, 1.4, 1.25, 1.0, 0.85,
        0.8, 0.85, 0.95, 1.1, 1.35, 1.5,
        1.35, 1.0, 0.65, 0.4, 0.3, 0.22,
    ),
}


class ProfileProblem(ValueError):
    """A profile that cannot be resolved; ``field`` is the key inside ``profile`` it is about."""

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


@dataclass(frozen=True)
class Profile:
    """A resolved profile: ``bins`` weights with mean 1, and what it was."""

    kind: str
    name: str | None
    weights: tuple[float, ...]


def normalise(weights: Sequence[float]) -> list[float]:
    """
    Scaled to mean 1.

    >>> normalise([1, 3])
    [0.5, 1.5]
    """
    if not weights:
        raise ProfileProblem("a profile needs at least one weight")
    total = 0.0
    for w in weights:
        total += w
    average = total / len(weights)
    if not average > 0:
        raise ProfileProblem("profile weights must have a positive average")
    scale = 1.0 / average
    return [w * scale for w in weights]


def resample(source: Sequence[float], n: int) -> list[float]:
    """
    ``n`` values read linearly off ``source``: value i is at position
    ``i / n * (len - 1)``, between the sample below and the next one.

    >>> resample([0.0, 4.0], 4)
    [0.0, 1.0, 2.0, 3.0]
    >>> resample([1.0, 2.0, 4.0], 4)
    [1.0, 1.5, 2.0, 3.0]
    """
    if n == len(source):
        return list(source)
    out: list[float] = []
    last = len(source) - 1
    for i in range(n):
        position = i / n * last
        lower = math.floor(position)
        upper = min(lower + 1, last)
        fraction = position - lower
        out.append(source[lower] + (source[upper] - source[lower]) * fraction)
    return out


def expand_hourly(hourly: Sequence[float]) -> list[float]:
    """Each hourly weight repeated for its twelve 5-minute bins."""
    return [w for w in hourly for _ in range(BINS_PER_HOUR)]


def builtin(name: str, bins: int) -> list[float]:
    """The built-in profile ``name`` (any case) at ``bins`` weights of mean 1."""
    hourly = BUILTIN_HOURLY.get(name.strip().lower())
    if hourly is None:
        raise ProfileProblem(f"unknown builtin profile '{name}'; the built-in profiles are "
                             f"{', '.join(BUILTIN_HOURLY)}", "name")
    return normalise(resample(normalise(expand_hourly(hourly)), bins))


def resolve(raw: Any, bins: int) -> Profile:
    """
    A node's ``profile:`` mapping at ``bins``; raises ``ProfileProblem``.

    >>> resolve({"kind": "inline", "weights": [1, 3]}, 2).weights
    (0.5, 1.5)
    """
    if not isinstance(raw, dict):
        raise ProfileProblem("profile must be a mapping: {kind: builtin, name: ...} or "
                             "{kind: inline, weights: [...]}")
    kind_raw = raw.get("kind")
    kind = "builtin" if kind_raw is None or (isinstance(kind_raw, str) and not kind_raw.strip()) \
        else str(kind_raw).strip().lower()
    if kind not in PROFILE_KINDS:
        raise ProfileProblem(f"profile kind '{kind_raw}' is not supported; use builtin or inline", "kind")
    if kind == "builtin":
        name = raw.get("name")
        if not isinstance(name, str) or not name.strip():
            raise ProfileProblem("a builtin profile needs a name: "
                                 f"{', '.join(BUILTIN_HOURLY)}", "name" if "name" in raw else None)
        return Profile("builtin", name, tuple(builtin(name, bins)))
    weights = raw.get("weights")
    if not isinstance(weights, list) or not weights:
        raise ProfileProblem("an inline profile needs a non-empty weights list",
                             "weights" if "weights" in raw else None)
    if any(isinstance(w, bool) or not isinstance(w, int | float) or not math.isfinite(w) for w in weights):
        raise ProfileProblem("inline profile weights must be finite numbers", "weights")
    if len(weights) != bins:
        raise ProfileProblem(f"inline profile weights must be exactly grid.bins ({bins}) values, "
                             f"got {len(weights)}", "weights")
    if any(w < 0 for w in weights):
        raise ProfileProblem("inline profile weights must not be negative", "weights")
    return Profile("inline", None, tuple(normalise([float(w) for w in weights])))
