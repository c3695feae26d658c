"""
Results of evaluating a plan: every node as one read-only float64 series
(``Results``), or K scenarios at once (``ManyResults``), plus how they were made.
``evaluate(model)`` is ``plan(model).evaluate()`` (``engine.plan``).
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from flowtime.errors import Problem
from flowtime.model.kinds import is_internal
from flowtime.model.schema import Grid, Model

Series = npt.NDArray[np.float64]


@dataclass
class Results:
    """
    The evaluated series of a model, by node id, plus how they were made.

    ``series`` holds every node (read-only arrays); ``output_ids`` the ones the
    model asks to be written. The series of feedback loops computed together
    are columns of one shared block, so they may not be C-contiguous: use
    ``np.ascontiguousarray`` where an API needs that.
    """

    grid: Grid
    order: list[str]
    series: dict[str, Series]
    output_ids: list[str]
    seed: int | None = None
    sample_pmf: bool = False
    sampled: list[str] = field(default_factory=list)
    warnings: list[Problem] = field(default_factory=list)
    # The model as planned and the overrides (``model`` is the two together).
    source_model: Model | None = field(default=None, repr=False)
    overrides: dict[str, Any] = field(default_factory=dict)

    @functools.cached_property
    def model(self) -> Model | None:
        """The model these series were computed from: the overrides written into its const nodes."""
        if self.source_model is None or not self.overrides:
            return self.source_model
        from flowtime.engine.plan import _edited

        return _edited(self.source_model, self.overrides, self.series)

    def __getitem__(self, node_id: str) -> Series:
        return self.series[node_id]

    @functools.cached_property
    def shown(self) -> list[str]:
        """``order`` without the nodes FlowTime made for itself (a queue's seed or gate: ``kinds.is_internal``)."""
        return [n for n in self.order if not is_internal(n)]

    def outputs(self) -> dict[str, Series]:
        return {n: self.series[n] for n in self.output_ids}

    @functools.cached_property
    def classes(self) -> dict[str, dict[str, Series]]:
        """
        Per-class series: ``classes[node][class]``, for every node flow classes
        reach (``model.decompose``: the hidden ``node#class#C`` nodes, evaluated
        with the totals); in declared class order.
        """
        from flowtime.model.decompose import split_class_part_id

        out: dict[str, dict[str, Series]] = {}
        for name, arr in self.series.items():
            got = split_class_part_id(name)
            if got is not None:
                out.setdefault(got[0], {})[got[1]] = arr
        return out

    def nonfinite_warnings(self, ids: list[str] | None = None) -> list[Problem]:
        """A warning per series that holds NaN or infinity (e.g. SQRT of a negative)."""
        out = []
        for n in ids if ids is not None else self.output_ids:
            arr = self.series[n]
            bad = np.flatnonzero(~np.isfinite(arr))
            if bad.size:
                out.append(Problem(f"nodes.{n}", f"{bad.size} non-finite value(s), first at bin {int(bad[0])} "
                                   f"({arr[bad[0]]})", severity="warning"))
        return out

    def bin_offsets_minutes(self) -> npt.NDArray[np.int64]:
        return np.arange(self.grid.bins, dtype=np.int64) * self.grid.bin_minutes

    def to_pandas(self) -> Any:
        """A DataFrame of the output series, indexed by each bin's start offset."""
        try:
            import pandas as pd  # type: ignore[import-untyped,unused-ignore]
        except ImportError as exc:  # pragma: no cover - depends on the environment
            raise ImportError("to_pandas() needs pandas: pip install 'flowtime[pandas]'") from exc
        index = pd.to_timedelta(self.bin_offsets_minutes(), unit="m")
        index.name = "offset"
        return pd.DataFrame({n: self.series[n] for n in self.output_ids}, index=index)


@dataclass
class ManyResults:
    """
    K scenarios evaluated together (``Plan.evaluate_many``): ``self[node]`` is
    a read-only ``(K, bins)`` array (a view broadcast from one series when the
    node does not vary between scenarios); ``scenario(k)`` is the ``Results``
    of scenario k alone, equal bit for bit to evaluating it by itself.
    """

    plan: Any
    scenarios: int
    seeds: list[int | None]
    overrides: list[dict[str, Any]]
    series: dict[str, Any]
    sampled: list[str] = field(default_factory=list)
    sample_pmf: bool = False
    warnings: list[Problem] = field(default_factory=list)

    def __getitem__(self, node_id: str) -> Series:
        arr = self.series[node_id]
        if arr.ndim == 1:
            arr = np.broadcast_to(arr, (self.scenarios, arr.size))
        return arr  # type: ignore[no-any-return]

    @property
    def order(self) -> list[str]:
        return list(self.plan.graph.order)

    @property
    def output_ids(self) -> list[str]:
        return list(self.plan.graph.outputs)

    def scenario(self, k: int) -> Results:
        """Scenario ``k`` as ordinary results (its series are views into the shared arrays)."""
        series = {n: (a if a.ndim == 1 else a[k]) for n, a in self.series.items()}
        return Results(grid=self.plan.grid, order=self.order, series=series, output_ids=self.output_ids,
                       seed=self.seeds[k], sample_pmf=self.sample_pmf, sampled=list(self.sampled),
                       warnings=list(self.warnings), source_model=self.plan.model, overrides=dict(self.overrides[k]))


def evaluate(model: Model | Any, seed: int | None = None, *, sample_pmf: bool = False,
             set: Mapping[str, Any] | None = None) -> Results:  # PySD's name, and the CLI's --set
    """
    Evaluate a model (or its plan) once: ``plan(model).evaluate(...)``.

    ``seed`` overrides ``rng.seed``; PMF nodes give their expected value unless
    they say ``sample: true`` or ``sample_pmf`` is set, in which case each bin
    is one seeded draw. Sampling without any seed draws a random seed, records
    it in the results and warns. ``set`` gives const nodes new values (a number
    for every bin, or one value per bin), as if the model had been edited.
    """
    from flowtime.engine.plan import plan

    return plan(model).evaluate(seed, sample_pmf=sample_pmf, set=set)
