"""
A what-if session: one model planned once, evaluated again for every change of its knobs.

``WhatIf(loaded, ...)`` discovers the knobs (``experiments.knobs``), resolves
them once into parameter targets and plans the model. ``change`` checks a set
of new knob values (every problem located at ``set.<id>``; a value outside the
knob's published ``min``..``max`` is one) and applies them
together or not at all; ``result`` evaluates the current point - one
``Plan.evaluate`` with ``set=`` for const knobs - and derives what a page shows:
the chosen series, per-node values at a bin or over the run, the topology
metrics with their colour, and the analyser's findings. Knobs that are model
edits (router weights, a numeric parallelism) plan the edited text, keeping a
few such plans (``EDITED_PLANS``). Nothing here does I/O: the API holds the
sessions and serialises the answers.
"""

from __future__ import annotations

import math
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from flowtime.analysis.invariants import analyse
from flowtime.analysis.metrics import COLOURS, derive
from flowtime.engine import plan
from flowtime.engine.evaluate import Results
from flowtime.engine.plan import Plan
from flowtime.errors import Problem, WhatIfError
from flowtime.experiments.knobs import Knob, discover
from flowtime.experiments.parameters import edited_text, edits_of, resolve, to_sets
from flowtime.experiments.spec import Parameter
from flowtime.expr.functions import suggest
from flowtime.model.load import LoadedModel
from flowtime.records import record

Array = npt.NDArray[np.float64]
EDITED_PLANS = 4  # plans of edited models kept per session (each is a whole plan)


@record
class Point:
    """What the session's current point is, for saving it as a run."""

    loaded: LoadedModel  # the model as run (model edits written into its text)
    results: Results
    values: dict[str, float]  # knob id -> value
    changed: dict[str, float]  # the knobs away from the model's own value


def _finite_mean(x: Array) -> float | None:
    ok = np.isfinite(x)
    n = int(np.count_nonzero(ok))
    return float(x[ok].sum() / n) if n else None


def _at(x: Array, index: int | None) -> float | None:
    if index is None:
        return _finite_mean(x)
    v = float(x[index])
    return v if math.isfinite(v) else None


class WhatIf:
    """One frozen plan and the current values of its knobs; ``lock`` serialises evaluations."""

    def __init__(self, loaded: LoadedModel, *, seed: int | None = None, sample_pmf: bool = False,
                 base_set: Mapping[str, Any] | None = None, data: Callable[[], Any],
                 reload: Callable[[str], LoadedModel]) -> None:
        self.loaded = loaded
        self.model = loaded.model
        self.seed = seed
        self.sample_pmf = sample_pmf
        self.base_set = dict(base_set or {})  # a stored run's own overrides: part of every evaluation
        self._data = data  # the model's YAML data (for edits)
        self._reload = reload  # edited text -> model, with the caller's limits and series files
        base = self.model
        if self.base_set:
            from flowtime.model.overrides import apply_overrides

            base = apply_overrides(self.model, self.base_set)[0]
        self.knobs: list[Knob] = discover(base, data)
        self.by_id = {k.id: k for k in self.knobs}
        self.targets = resolve(base, [Parameter(target=k.target, mode=k.mode) for k in self.knobs], data)
        self.values: dict[str, float] = {k.id: k.value for k in self.knobs}
        self.plan: Plan = plan(self.model)
        self._edited: OrderedDict[tuple[float, ...], tuple[LoadedModel, Plan]] = OrderedDict()
        self.lock = threading.Lock()

    @property
    def bins(self) -> int:
        return self.model.grid.bins

    def change(self, given: Any) -> None:
        """New values for some knobs: all checked first, then applied together."""
        if not isinstance(given, Mapping):
            raise WhatIfError([Problem("set", "expected an object of parameter id -> number, e.g. {\"demand\": 12}")])
        problems: list[Problem] = []
        checked: dict[str, float] = {}
        for key, value in given.items():
            if key not in self.by_id:
                hint = suggest(str(key), list(self.by_id))
                problems.append(Problem(f"set.{key}", f"unknown parameter '{key}'{hint}"))
            elif isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
                problems.append(Problem(f"set.{key}", f"expected a finite number, got {str(value)[:40]!r}"))
            elif not self.by_id[key].min <= value <= self.by_id[key].max:
                k = self.by_id[key]
                # The range the session published (a slider's); a wider study is an experiment's sweep.
                problems.append(Problem(f"set.{key}", f"expected {k.min:g} to {k.max:g}{' ' + k.unit if k.unit else ''}"
                                                      f", got {value:g}"))
            else:
                checked[key] = float(value)
        if problems:
            raise WhatIfError(problems)
        self.values = {**self.values, **checked}  # one swap: an evaluation in another thread sees all or none

    def reset(self) -> None:
        self.values = {k.id: k.value for k in self.knobs}

    def _row(self, values: Mapping[str, float]) -> Array:
        return np.asarray([[values[t.target] for t in self.targets]], dtype=np.float64)

    def _planned(self, row: Array) -> tuple[LoadedModel, Plan]:
        edits = edits_of(self.targets, row)[0]
        if not edits:
            return self.loaded, self.plan
        hit = self._edited.get(edits)
        if hit is None:
            loaded = self._reload(edited_text(self._data(), self.targets, edits))
            hit = (loaded, plan(loaded.model))
            self._edited[edits] = hit
            while len(self._edited) > EDITED_PLANS:
                self._edited.popitem(last=False)
        self._edited.move_to_end(edits)
        return hit

    def point(self) -> Point:
        """Evaluate the current point."""
        values = self.values
        row = self._row(values)
        loaded, planned = self._planned(row)
        changed = {k.id: values[k.id] for k in self.knobs if values[k.id] != k.value}
        moved = {t.node for t in self.targets if t.target in changed}  # overrides name what was moved, only
        sets = {**self.base_set, **{n: v for n, v in to_sets(self.targets, row)[0].items() if n in moved}}
        results = planned.evaluate(self.seed, sample_pmf=self.sample_pmf, set=sets)
        return Point(loaded, results, dict(values), changed)

    def result(self, *, series: Sequence[str] | None = None, bin: int | None = None) -> dict[str, Any]:
        """
        The current point as a page shows it: ``series`` (node id -> array; every
        shown node unless chosen), ``state`` (values at ``bin``, or means over the
        run), ``warnings`` and ``evalMs`` (evaluation and analysis, in milliseconds).
        """
        t0 = time.perf_counter()
        p = self.point()
        results = p.results
        model = results.model or self.model
        metrics = derive(model, results.series, model.analysis)
        findings = analyse(model, results.series, model.analysis, metrics)
        ms = (time.perf_counter() - t0) * 1000.0
        shown = results.shown
        chosen = list(shown) if series is None else [s for s in series if s in results.series]
        topology: dict[str, Any] = {}
        for node_id, m in metrics.items():
            colour = m.colour[bin] if bin is not None else (m.colour.max() if m.colour.size else 0)
            topology[node_id] = {"kind": m.kind, "category": m.category, "color": COLOURS[int(colour)],
                                 "metrics": {k: _at(v, bin) for k, v in m.series.items()}}
        return {
            "series": {s: results.series[s] for s in chosen},
            "state": {"bin": bin, "stat": "bin" if bin is not None else "mean",
                      "values": {s: _at(results.series[s], bin) for s in shown}, "nodes": topology},
            "warnings": [*(w.to_dict() for w in results.warnings), *(f.to_dict() for f in findings)],
            "values": dict(p.values),
            "evalMs": round(ms, 3),
        }

    def check_request(self, series: Any, bin: Any) -> tuple[list[str] | None, int | None]:
        """The ``series`` and ``bin`` of a message, checked (a located ``WhatIfError`` otherwise)."""
        problems: list[Problem] = []
        chosen: list[str] | None = None
        if series is not None:
            known = set(self.plan.order)
            if not isinstance(series, list) or not all(isinstance(s, str) for s in series):
                problems.append(Problem("series", "expected a list of node ids"))
            else:
                chosen = list(series)
                problems += [Problem(f"series[{i}]", f"unknown node '{s}'{suggest(s, sorted(known))}")
                             for i, s in enumerate(chosen) if s not in known]
        index: int | None = None
        if bin is not None:
            if isinstance(bin, bool) or not isinstance(bin, int) or not 0 <= bin < self.bins:
                problems.append(Problem("bin", f"expected a bin index 0..{self.bins - 1} (or null for the run's "
                                               f"means), got {str(bin)[:40]!r}"))
            else:
                index = bin
        if problems:
            raise WhatIfError(problems)
        return chosen, index
