"""
Array parameters that follow the grid's bins.

A const node whose ``values:`` is a whole-array placeholder needs exactly
``grid.bins`` values. When ``bins`` changes, an array the caller left at its
default is repeated (its pattern tiled) or trimmed to fit, with a warning
saying so; an array the caller gave with another length is an error naming
the length needed. See docs/decisions/0010-array-parameters-follow-bins.md.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from typing import Any

from flowtime.errors import Problem
from flowtime.model.parameters import fit_to_length
from flowtime.sim.template import WHOLE_PLACEHOLDER, Template


def grid_bins(template: Template, resolved: Mapping[str, Any]) -> int | None:
    """``grid.bins`` as the rendered model will have it; None when it is not a whole number yet."""
    grid = template.body.get("grid")
    raw = grid.get("bins") if isinstance(grid, dict) else None
    if isinstance(raw, str):
        m = WHOLE_PLACEHOLDER.match(raw)
        raw = resolved.get(m.group(1)) if m else None
    if isinstance(raw, bool) or not isinstance(raw, int) or raw < 1:
        return None
    return raw


@dataclass(frozen=True)
class Fitted:
    """
    Parameter values with per-bin arrays fitted to ``bins``.

    ``defaults`` holds each per-bin array's default as fitted (what "left at
    its default" means at this ``bins``); ``warnings`` say what was fitted.
    """

    values: dict[str, Any]
    bins: int | None = None
    defaults: dict[str, Any] = field(default_factory=dict)
    warnings: tuple[Problem, ...] = ()
    problems: tuple[Problem, ...] = ()


def fit_arrays(template: Template, resolved: Mapping[str, Any], given: Collection[str], *,
               max_array_length: int | None = None) -> Fitted:
    """
    Fit the per-bin arrays of ``resolved`` to the grid's bins. Names in
    ``given`` were sent by the caller and are never changed: a wrong length
    there is a problem.
    """
    values = dict(resolved)
    bins = grid_bins(template, resolved)
    if bins is None:
        return Fitted(values)
    defaults: dict[str, Any] = {}
    warnings: list[Problem] = []
    problems: list[Problem] = []
    for name in template.per_bin_arrays:
        param = template.parameter(name)
        value = values.get(name)
        if not isinstance(value, list):
            continue  # missing or already rejected by its own check
        path = f"parameters.{name}"
        default = param.default if isinstance(param.default, list) and param.default else None
        if default is not None:
            defaults[name] = fit_to_length(default, bins)
        if len(value) == bins:
            continue
        if name in given or default is None:
            problems.append(Problem(path, f"`{name}` has {len(value)} value{_s(len(value))}; grid.bins is "
                                    f"{bins}: give {bins} value{_s(bins)}"))
            continue
        fitted = defaults[name]
        _, messages = param.check(fitted, max_array_length)
        if messages:
            problems.extend(Problem(path, f"`{name}` left at its default cannot be fitted to grid.bins "
                                    f"{bins}: {m}") for m in messages)
            continue
        how = (f"repeated to {bins} values" if bins > len(value)
               else f"trimmed to its first {bins} value{_s(bins)}")
        warnings.append(Problem(path, f"`{name}` was left at its default of {len(value)} value"
                                f"{_s(len(value))} and grid.bins is {bins}: {how}; give {bins} "
                                "values to choose them", severity="warning"))
        values[name] = fitted
    return Fitted(values, bins, defaults, tuple(warnings), tuple(problems))


def _s(n: int) -> str:
    return "" if n == 1 else "s"
