"""
``--plot out.png``: one picture of an experiment (matplotlib, Agg, imported only when asked).

* sweep: each metric against the first parameter, one line per combination of
  the other parameters (up to ``MAX_LINES``; beyond that, points);
* montecarlo: the percentile bands of the first captured series over time
  (outer pair shaded lightly, the next pair darker, the median as a line; the
  x axis is elapsed time from the grid's bin size, in hours, or minutes for a
  grid shorter than three hours), drawn as steps: a bin's value holds for the bin;
* sensitivity: a tornado (the low and high effects of each parameter on the
  first metric, widest swing on top) when the result has one (local); else a bar chart
  of its global indices (Sobol ST, else S1; Morris mu*) with their intervals.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from flowtime.errors import ExperimentError, Problem

MAX_LINES = 8


def check_plot(spec: Any) -> None:
    """Refuse, before anything runs, a plot the result would not have the data for."""
    if spec.kind == "montecarlo" and not spec.capture:
        raise ExperimentError([Problem("capture", "--plot draws the bands of the first captured series; add "
                                                  "capture: [a series id] to the spec")])
    if spec.kind == "sweep" and (not spec.parameters or not spec.metrics):
        raise ExperimentError([Problem("parameters", "--plot draws metrics against a parameter; the spec needs "
                                                     "both")])


def _figure() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _sweep(plt: Any, result: Any) -> Any:
    m = len(result.metric_names)
    fig, axes = plt.subplots(m, 1, figsize=(7, 2.2 + 2.3 * m), squeeze=False, sharex=True)
    x_all = result.points[:, 0]
    others = result.points[:, 1:]
    keys = [tuple(row) for row in others]
    groups = list(dict.fromkeys(keys))
    for j, name in enumerate(result.metric_names):
        ax = axes[j][0]
        if len(groups) > MAX_LINES:
            ax.plot(x_all, result.metrics[:, j], "o", markersize=3)
        for g in groups if len(groups) <= MAX_LINES else ():
            rows = [k for k, key in enumerate(keys) if key == g]
            order = sorted(rows, key=lambda k: x_all[k])
            label = ", ".join(f"{p}={v:g}" for p, v in zip(result.parameters[1:], g, strict=True)) or None
            ax.plot(x_all[order], result.metrics[order, j], marker="o", label=label)
        ax.set_ylabel(name)
        ax.grid(alpha=0.3)
        if len(groups) > 1 and len(groups) <= MAX_LINES:
            ax.legend(fontsize="small")
    axes[-1][0].set_xlabel(result.parameters[0])
    fig.suptitle(f"sweep: {result.n} points")
    return fig


def _clock(grid: Any) -> tuple[Any, str]:
    """Bin edges as elapsed time: hours, or minutes when the grid spans under three hours."""
    edges = np.arange(grid.bins + 1, dtype=np.float64) * grid.bin_minutes
    if grid.total_minutes < 180:
        return edges, "minutes"
    return edges / 60.0, "hours"


def _bands(plt: Any, result: Any, grid: Any) -> Any:
    name = next(iter(result.bands))
    bands = result.bands[name]
    qs = list(result.percentiles)
    edges, unit = _clock(grid)
    fig, ax = plt.subplots(figsize=(8, 4.2))
    order = sorted(range(len(qs)), key=lambda i: qs[i])
    pairs = [(order[i], order[-1 - i]) for i in range(len(order) // 2)]
    shades = np.linspace(0.2, 0.45, max(1, len(pairs)))
    for (lo, hi), alpha in zip(pairs, shades, strict=True):
        ax.fill_between(edges, np.append(bands[lo], bands[lo][-1]), np.append(bands[hi], bands[hi][-1]),
                        step="post", alpha=float(alpha), color="tab:blue", linewidth=0,
                        label=f"p{qs[lo]:g}-p{qs[hi]:g}")
    if len(order) % 2:
        mid = order[len(order) // 2]
        ax.step(edges, np.append(bands[mid], bands[mid][-1]), where="post", color="tab:blue",
                label=f"p{qs[mid]:g}")
    ax.set_xlabel(f"time ({unit} from the start)")
    ax.set_ylabel(name)
    ax.set_xlim(edges[0], edges[-1])
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small", loc="upper left")
    ax.set_title(f"Monte Carlo: {name}, {result.n} replications")
    return fig


def _tornado(plt: Any, metric: str, effects: list[Mapping[str, Any]]) -> Any:
    fig, ax = plt.subplots(figsize=(7, 2.0 + 0.5 * len(effects)))
    names = [str(e["parameter"]) for e in effects][::-1]  # widest first, on top
    low = [float(e.get("low") or 0.0) for e in effects][::-1]
    high = [float(e.get("high") or 0.0) for e in effects][::-1]
    y = np.arange(len(names))
    ax.barh(y, low, color="tab:blue", label="parameter at low")
    ax.barh(y, high, color="tab:orange", label="parameter at high")
    ax.axvline(0.0, color="black", linewidth=0.8)
    ax.set_yticks(y, names)
    ax.set_xlabel(f"change in {metric}")
    ax.legend(fontsize="small", loc="upper center", bbox_to_anchor=(0.5, -0.3), ncol=2, frameon=False)
    ax.set_title(f"sensitivity of {metric}")
    fig.tight_layout()
    return fig


INDEX_ORDER = ("ST", "S1", "muStar", "mu")  # the index a bar chart shows, the first one the result has


def _indices(plt: Any, answer: Mapping[str, Any], parameters: tuple[str, ...]) -> Any:
    """Global indices of the first metric as bars (Sobol ST, else S1; Morris mu*), with their intervals."""
    per_metric = answer.get("indices")
    if not isinstance(per_metric, Mapping) or not per_metric:
        raise ExperimentError([Problem("settings", "this sensitivity result has no tornado or indices to plot")])
    metric = next(iter(per_metric))
    got = per_metric[metric]
    name = next(k for k in (*INDEX_ORDER, *got) if k in got)
    values = [float(v) if v is not None else np.nan for v in got[name]]
    conf = got.get(f"{name}Conf")
    errors = None if conf is None else [float(v) if v is not None else 0.0 for v in conf]
    y = np.arange(len(parameters))[::-1]
    fig, ax = plt.subplots(figsize=(7, 1.4 + 0.5 * len(parameters)))
    ax.barh(y, values, xerr=errors, color="tab:blue", capsize=3)
    ax.set_yticks(y, list(parameters))
    ax.set_xlabel(f"{name} of {metric}")
    ax.set_title(f"sensitivity ({answer.get('method', '')}) of {metric}")
    fig.tight_layout()
    return fig


def plot_result(result: Any, grid: Any, path: Path) -> None:
    plt = _figure()
    if result.kind == "sweep":
        fig = _sweep(plt, result)
    elif result.kind == "montecarlo":
        fig = _bands(plt, result, grid)
    else:
        answer = result.answer or {}
        tornado = answer.get("tornado")
        if isinstance(tornado, Mapping) and tornado:
            metric = next(iter(tornado))
            fig = _tornado(plt, metric, list(tornado[metric]))
        else:
            fig = _indices(plt, answer, result.parameters)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
