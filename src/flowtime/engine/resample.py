"""
Runs on different grids brought onto one: their common time span, in bins of the coarsest size.

Each run's time axis is an ``Axis`` (bins, minutes per bin, start in minutes from
a shared epoch). ``align`` finds the span every run covers and the target bin
size: the least common multiple of the bin sizes, which is the coarsest size
whenever the sizes nest (15 min, 1 h, 1 d). The span starts at the first instant,
at or after the latest start, that is a bin boundary of every run, and holds as
many whole target bins as fit before the earliest end. ``resample`` then folds
each run's bins of that span into target bins:

* ``sum`` for flows (entities per bin): a 1 h bin holds the sum of its four
  15 min bins, so totals over the span are kept; a NaN bin makes its target NaN.
* ``mean`` for levels and ratios (queue depth, utilization, minutes, ms): the
  mean of the defined (non-NaN) bins; NaN when none is defined.

>>> a, b = Axis(bins=8, bin_minutes=15, start_minute=0), Axis(bins=3, bin_minutes=60, start_minute=0)
>>> al = align([a, b])
>>> al.bin_minutes, al.bins, al.windows
(60, 2, (Window(first=0, factor=4), Window(first=0, factor=1)))
>>> resample(np.arange(8.0), al.windows[0], al.bins, "sum").tolist()
[6.0, 22.0]
>>> resample(np.arange(8.0), al.windows[0], al.bins, "mean").tolist()
[1.5, 5.5]
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal

import numpy as np
import numpy.typing as npt

from flowtime.errors import ConflictError
from flowtime.records import record

Series = npt.NDArray[np.float64]
How = Literal["sum", "mean"]
# Searching for a shared bin boundary walks one period of the bin sizes' lcm; past this many
# steps the sizes are too unlike to compare (e.g. 997 and 991 minutes).
MAX_BOUNDARY_STEPS = 100_000


@record
class Axis:
    """A run's time axis: ``bins`` bins of ``bin_minutes`` from ``start_minute`` (minutes from one epoch)."""

    bins: int
    bin_minutes: int
    start_minute: int = 0

    @property
    def end_minute(self) -> int:
        return self.start_minute + self.bins * self.bin_minutes


@record
class Window:
    """Which of a run's bins make the span: from bin ``first``, ``factor`` source bins per target bin."""

    first: int
    factor: int


@record
class Alignment:
    """The common span: ``bins`` target bins of ``bin_minutes`` from ``start_minute``, and each run's window."""

    bin_minutes: int
    start_minute: int
    bins: int
    windows: tuple[Window, ...]
    resampled: bool = False  # some run's bins are folded or cut: not every run is taken whole, bin by bin


def align(axes: Sequence[Axis]) -> Alignment:
    """
    The span all ``axes`` cover, in bins of the lcm of their sizes; ``ConflictError``
    when they share no whole target bin (disjoint spans, or boundaries that never meet).

    >>> al = align([Axis(4, 60, 0), Axis(4, 60, 120)])
    >>> al.start_minute, al.bins, al.windows, al.resampled
    (120, 2, (Window(first=2, factor=1), Window(first=0, factor=1)), True)
    >>> align([Axis(2, 60, 0), Axis(2, 60, 180)])
    Traceback (most recent call last):
    ...
    flowtime.errors.ConflictError: the runs share no time span: run 1 covers minutes 0-120, run 2 covers minutes 180-300
    """
    if not axes:
        raise ConflictError("no runs to align")
    for i, ax in enumerate(axes, 1):
        if ax.bins < 1 or ax.bin_minutes < 1:
            raise ConflictError(f"run {i} has no bins to compare ({ax.bins} bins of {ax.bin_minutes} minutes)")
    target = math.lcm(*(ax.bin_minutes for ax in axes))
    latest = max(axes, key=lambda ax: ax.start_minute)
    end = min(ax.end_minute for ax in axes)
    if end <= latest.start_minute:
        spans = ", ".join(f"run {i} covers minutes {ax.start_minute}-{ax.end_minute}" for i, ax in enumerate(axes, 1))
        raise ConflictError(f"the runs share no time span: {spans}")
    start = _first_shared_boundary(axes, latest, target)
    bins = (end - start) // target if start is not None else 0
    if start is None or bins < 1:
        raise ConflictError(
            f"the runs overlap for {end - latest.start_minute} minutes, less than one common bin of "
            f"{target} minutes that starts on a bin boundary of every run")
    windows = tuple(Window((start - ax.start_minute) // ax.bin_minutes, target // ax.bin_minutes) for ax in axes)
    whole = all(w.factor == 1 and w.first == 0 and ax.bins == bins for w, ax in zip(windows, axes, strict=True))
    return Alignment(target, start, bins, windows, not whole)


def _first_shared_boundary(axes: Sequence[Axis], latest: Axis, target: int) -> int | None:
    """The first boundary of ``latest`` that is a boundary of every axis (they repeat every ``target`` minutes)."""
    steps = target // latest.bin_minutes
    if steps > MAX_BOUNDARY_STEPS:
        return None
    for j in range(steps):
        t = latest.start_minute + j * latest.bin_minutes
        if all((t - ax.start_minute) % ax.bin_minutes == 0 for ax in axes):
            return t
    return None


def resample(values: Series, window: Window, bins: int, how: How) -> Series:
    """
    ``bins`` target values from ``values``: ``factor`` bins each from bin ``first``, summed or averaged.

    >>> resample(np.array([1.0, np.nan, 3.0, 5.0]), Window(0, 2), 2, "mean").tolist()
    [1.0, 4.0]
    >>> resample(np.array([1.0, np.nan, 3.0, 5.0]), Window(0, 2), 2, "sum").tolist()
    [nan, 8.0]
    """
    stop = window.first + bins * window.factor
    if window.first < 0 or stop > values.size:
        raise ConflictError(f"a window of {bins} x {window.factor} bins from bin {window.first} "
                            f"does not fit {values.size} values")
    block = np.asarray(values[window.first:stop], dtype=np.float64).reshape(bins, window.factor)
    if window.factor == 1:
        return block[:, 0].copy()
    if how == "sum":
        summed: Series = block.sum(axis=1)
        return summed
    defined = ~np.isnan(block)
    counts = defined.sum(axis=1)
    totals = np.where(defined, block, 0.0).sum(axis=1)
    means: Series = np.divide(totals, counts, out=np.full(bins, np.nan), where=counts > 0)
    return means
