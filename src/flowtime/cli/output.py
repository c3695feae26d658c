"""
Tables for the terminal: a summary of series (min, mean, max, last) and plain rows.

On a terminal the tables are drawn with rich; piped or redirected they are
plain aligned text (no colour codes in files, and rich's import is not paid by
scripts). Numbers show up to 8 significant digits; exact values are in the CSVs.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

MAX_ROWS = 40


def num(v: float | None) -> str:
    """
    >>> num(1234.5), num(0.1 + 0.2), num(float("nan")), num(None)
    ('1234.5', '0.3', 'NaN', '')
    """
    if v is None:
        return ""
    f = float(v)
    if math.isnan(f):
        return "NaN"
    if math.isinf(f):
        return "Infinity" if f > 0 else "-Infinity"
    text = f"{f:.8g}"
    return "0" if text == "-0" else text


def series_stats(values: npt.NDArray[np.float64]) -> tuple[str, str, str, str]:
    """(min, mean, max, last) of one series; NaN-aware, empty cells for an empty series."""
    if values.size == 0:
        return ("", "", "", "")
    finite = values[np.isfinite(values)]
    if finite.size == 0:
        return (num(float(values.min())), "NaN", num(float(values.max())), num(float(values[-1])))
    with np.errstate(all="ignore"):
        return (num(float(np.min(values))), num(float(np.mean(values))), num(float(np.max(values))),
                num(float(values[-1])))


def summary_rows(series: Iterable[tuple[str, npt.NDArray[np.float64]]]) -> list[list[str]]:
    return [[name, *series_stats(values)] for name, values in series]


def print_table(headers: Sequence[str], rows: Sequence[Sequence[str]], *, numeric_from: int = 1,
                title: str | None = None, more: int = 0, stream: Any = None) -> None:
    """One table to ``stream`` (stdout): columns from ``numeric_from`` right-aligned."""
    out = stream or sys.stdout
    shown = list(rows[:MAX_ROWS]) if len(rows) > MAX_ROWS else list(rows)
    hidden = more + len(rows) - len(shown)
    if out.isatty():
        from rich.console import Console
        from rich.table import Table

        table = Table(title=title, title_justify="left", show_edge=False, pad_edge=False, header_style="bold")
        for i, h in enumerate(headers):
            table.add_column(h, justify="right" if i >= numeric_from else "left", overflow="fold")
        for row in shown:
            table.add_row(*row)
        console = Console(file=out, highlight=False)
        console.print(table)
        if hidden:
            console.print(f"... and {hidden} more")
        return
    widths = [max(len(h), *(len(r[i]) for r in shown)) if shown else len(h) for i, h in enumerate(headers)]

    def line(cells: Sequence[str]) -> str:
        parts = [c.rjust(w) if i >= numeric_from else c.ljust(w)
                 for i, (c, w) in enumerate(zip(cells, widths, strict=True))]
        return "  ".join(parts).rstrip()

    if title:
        out.write(title + "\n")
    out.write("\n".join([line(headers), *(line(r) for r in shown)]) + "\n")
    if hidden:
        out.write(f"... and {hidden} more\n")
