"""
A fit's observed series from CSV text: every problem located at its file, line and column.

The format is the series-file CSV (decision 0020): the header ``bin_index,value``,
then one row per bin, ``index,number``; an empty value (``3,``) or ``NaN`` is a
missing observation. Unlike a ``file:`` series, where a bin without a row is 0, an
observed series must give a row for every bin of the grid: a bin left out would
otherwise be fitted against 0 (or silently dropped), so a short column is an error
that says which bins are missing. The text comes from a file the edge read
(``settings.observed.file``) or inline over HTTP (``settings.observed.csv``); the
caller says which ``path`` of the spec problems are reported at. Decision 0038.

>>> parse_observed_csv("bin_index,value\\n0,1.5\\n1,\\n", "seen.csv", 2, "settings.observed.file")
[1.5, None]
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from flowtime.errors import ExperimentError, Problem

if TYPE_CHECKING:
    from flowtime.experiments.fit import FitSettings

HEADER = ("bin_index", "value")


def _error(path: str, source: str, line: int, column: int, message: str) -> ExperimentError:
    """One problem at ``path``, its ``str()`` ``source, line L, column C, path: (column name) message``."""
    name = HEADER[column - 1] if 1 <= column <= len(HEADER) else "past the last column"
    return ExperimentError([Problem(path, f"({name}) {message}", line=line, column=column, source=source)])


def parse_observed_csv(text: str, source: str, bins: int, path: str) -> list[float | None]:
    """One value per bin (None: missing) from ``text`` (CSV read from ``source``); ``ExperimentError`` at ``path``."""
    lines = text.splitlines()
    header = [c.strip() for c in lines[0].split(",")] if lines else []
    if tuple(header) != HEADER:
        got = repr(lines[0]) if lines else "an empty file"
        raise _error(path, source, 1, 1, f"the header must be exactly `bin_index,value`, got {got}")
    values: list[float | None] = [None] * bins
    seen: dict[int, int] = {}
    last = 1
    for n, line in enumerate(lines[1:], start=2):
        if not line.strip():
            continue
        last = n
        cells = [c.strip() for c in line.split(",")]
        if len(cells) < len(HEADER):
            raise _error(path, source, n, len(cells) + 1, "missing cell: each row is `bin_index,value` (an empty "
                         "value, `3,`, is a missing observation)")
        if len(cells) > len(HEADER):
            raise _error(path, source, n, len(HEADER) + 1, f"extra cell {cells[len(HEADER)]!r}: each row is "
                         "`bin_index,value`")
        if cells[0] == "":
            raise _error(path, source, n, 1, "missing cell: the bin index is empty")
        try:
            index = int(cells[0])
        except ValueError:
            raise _error(path, source, n, 1, f"the bin index must be a whole number, got {cells[0]!r}") from None
        if not 0 <= index < bins:
            raise _error(path, source, n, 1, f"bin index {index} is outside the grid (0..{bins - 1})")
        if index in seen:
            raise _error(path, source, n, 1, f"bin index {index} is given twice (first on line {seen[index]})")
        seen[index] = n
        cell = cells[1]
        if cell == "" or cell.lower() == "nan":
            continue
        try:
            value = float(cell)
        except ValueError:
            raise _error(path, source, n, 2, f"not a number: {cell!r} (leave it empty for a missing "
                         "observation)") from None
        if not math.isfinite(value):
            raise _error(path, source, n, 2, f"{cell!r} is not a finite number")
        values[index] = value
    missing = [b for b in range(bins) if b not in seen]
    if missing:
        shown = ", ".join(str(b) for b in missing[:10]) + (", ..." if len(missing) > 10 else "")
        raise _error(path, source, last + 1, 1, f"short column: the grid has {bins} bins but the file gives "
                     f"{len(seen)} rows; no row for bin{'s' if len(missing) > 1 else ''} {shown} (give a row "
                     "per bin; an empty value is a missing observation)")
    return values


def observed_of(settings: FitSettings, bins: int) -> npt.NDArray[np.float64]:
    """The observed series of a fit, one value per bin (NaN: missing), checked against the grid's ``bins``."""
    got = settings.observed
    if got.csv is not None:
        values = parse_observed_csv(got.csv, "observed CSV", bins, "settings.observed.csv")
    elif got.values is not None:
        values = got.values
        if len(values) != bins:
            raise ExperimentError([Problem("settings.observed.values", f"gives {len(values)} values for the "
                                                                       f"model's {bins} bins")])
    else:
        raise ExperimentError([Problem("settings.observed.file", "the observed file must be read by the caller "
                                                                 "(flowtime.experiment or the CLI) into values; "
                                                                 "over HTTP give its text as csv")])
    return np.array([np.nan if v is None else v for v in values], dtype=np.float64)
