"""
An experiment's result on the terminal and in files.

Sweeps print their table (parameters -> metrics); Monte Carlo the spread of each
metric over the replications and, per captured series, what its bands say; the
numerical kinds their ``answer`` (scalars as lines, small lists of records as
tables) and how many points they evaluated. Every kind goes through the same
code: what a kind adds is read from the result's JSON, not from its class.
Files: ``.csv`` and ``.parquet`` hold the table, ``.json`` everything.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import typer

from flowtime.cli.output import num, print_table

SUFFIXES = (".csv", ".parquet", ".json")
SMALL = 20  # a list of records up to this long is printed as a table; longer ones are left to --json


def check_output(path: Path) -> None:
    if path.suffix.lower() not in SUFFIXES:
        raise typer.BadParameter(f"{path}: write .csv, .parquet or .json", param_hint="--output")


def write_output(result: Any, path: Path) -> None:
    """The table as CSV or Parquet (a ``point`` column, then parameters, then metrics), or the full JSON."""
    path.parent.mkdir(parents=True, exist_ok=True)
    suffix = path.suffix.lower()
    if suffix == ".json":
        path.write_text(json.dumps(result.to_json(), allow_nan=False, indent=1) + "\n", encoding="utf-8")
        return
    table = result.table.reset_index()
    if suffix == ".csv":
        table.to_csv(path, index=False)
    else:
        table.to_parquet(path, index=False)


def _cell(v: Any) -> str:
    if isinstance(v, bool) or v is None or isinstance(v, str):
        return "" if v is None else str(v)
    if isinstance(v, int | float):
        return num(float(v))
    if isinstance(v, list) and all(isinstance(x, int | float | str) or x is None for x in v) and len(v) <= 8:
        return "[" + ", ".join(_cell(x) for x in v) + "]"
    if isinstance(v, Mapping) and all(not isinstance(x, list | Mapping) for x in v.values()) and len(v) <= 8:
        return ", ".join(f"{k}={_cell(x)}" for k, x in v.items())
    n = len(v) if isinstance(v, list | Mapping) else 1
    return f"({n} entries; see --json)"


def _records(v: Any) -> list[Mapping[str, Any]] | None:
    """``v`` as rows of a small table: a short list of flat records."""
    if not isinstance(v, list) or not v or len(v) > SMALL or not all(isinstance(x, Mapping) for x in v):
        return None
    if any(isinstance(x, Mapping) for r in v for x in r.values()):
        return None
    return list(v)


def print_answer(answer: Mapping[str, Any], prefix: str = "", known: Sequence[Any] = ()) -> None:
    """Scalars as ``key: value``; short lists of records as tables; nested mappings by their keys.
    Values in ``known`` (the parameter and metric names the header already said) are left out."""
    for key, value in answer.items():
        if any(value == k for k in known):
            continue
        label = f"{prefix}{key}"
        rows = _records(value)
        if rows is not None:
            headers = list(dict.fromkeys(k for r in rows for k in r))
            print_table(headers, [[_cell(r.get(h)) for h in headers] for r in rows], title=f"{label}:")
        elif isinstance(value, Mapping) and any(isinstance(x, list | Mapping) for x in value.values()):
            print_answer(value, prefix=f"{label}.")
        else:
            typer.echo(f"{label}: {_cell(value)}")


def _table_rows(result: Any, limit: int | None = None) -> list[list[str]]:
    values = np.concatenate([result.points, result.metrics], axis=1)
    shown = values if limit is None else values[:limit]
    return [[str(k), *(num(float(v)) for v in row)] for k, row in enumerate(shown)]


def _metric_spread(result: Any) -> None:
    """Per metric over the replications: mean, standard deviation and percentiles (NaN points counted apart)."""
    rows = []
    for j, name in enumerate(result.metric_names):
        col = result.metrics[:, j]
        finite = col[np.isfinite(col)]
        if finite.size == 0:
            rows.append([name, "NaN", "", "", "", "", str(col.size)])
            continue
        p5, p50, p95 = np.percentile(finite, [5, 50, 95])
        rows.append([name, num(float(finite.mean())), num(float(finite.std(ddof=1)) if finite.size > 1 else 0.0),
                     num(float(p5)), num(float(p50)), num(float(p95)), str(col.size - finite.size)])
    if rows:
        print_table(["metric", "mean", "sd", "p5", "p50", "p95", "NaN"], rows)


def _describe_bands(result: Any) -> None:
    """One line per captured series: the median's range and where the outer band is widest."""
    if not result.bands:
        return
    qs = list(result.percentiles)
    low, high = min(qs), max(qs)
    for name, bands in result.bands.items():
        lo, hi = bands[qs.index(low)], bands[qs.index(high)]
        width = hi - lo
        at = int(np.nanargmax(width)) if np.isfinite(width).any() else 0
        median = f"; p50 from {num(float(np.nanmin(bands[qs.index(50.0)])))} to " \
                 f"{num(float(np.nanmax(bands[qs.index(50.0)])))}" if 50.0 in qs else ""
        typer.echo(f"bands of {name} (p{low:g}..p{high:g} per bin){median}; widest at bin {at}: "
                   f"{num(float(lo[at]))}..{num(float(hi[at]))}")


def print_result(result: Any, model_name: str, backend: str) -> None:
    seed = "no seed" if result.seed is None else f"seed {result.seed}"
    typer.echo(f"{result.kind} of {model_name}: {result.n} points, {seed}, backend {backend}")
    if result.answer is not None:
        typer.echo(f"parameters: {', '.join(result.parameters)}; metrics: {', '.join(result.metric_names)}")
    headers: Sequence[str] = ["point", *result.parameters, *result.metric_names]
    if result.kind == "montecarlo":
        _metric_spread(result)
        _describe_bands(result)
        return
    if result.answer is not None:
        print_answer(result.answer, known=[list(result.parameters), list(result.metric_names)])
        typer.echo(f"{result.n} points evaluated (every one: -o FILE.csv or --json)")
        return
    print_table(headers, _table_rows(result))
