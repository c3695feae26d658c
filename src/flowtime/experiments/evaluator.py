"""
Points -> batches -> backend -> series -> the metric matrix.

``Evaluator(model_text, spec, backend)`` checks the spec against the model once
(parameters resolved, metrics compiled, captured series known), then
``evaluate(points, seeds)`` runs any ``(n, p)`` matrix of parameter values:
points become ``set=`` overrides (``experiments.parameters``), are cut into
batches of a few MB of series each and handed to the backend, and the series
are reduced to one row of metrics per point where each batch ran
(``experiments.reduce``): only the metrics and the captured series come back. Points whose
parameters edit the model's structure (a router weight...) are grouped by
their edits: one edited model text, planned once, per group.

``objective()`` is the batched ``Objective`` the numerical algorithms
(sensitivity, goal seek, optimisation) call; ``series_objective(name)`` the
one fitting calls. Every point evaluated counts against ``limits.maxPoints``.
"""

from __future__ import annotations

import secrets
import threading
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from flowtime.errors import ExperimentError, FlowTimeError, ModelError, Problem
from flowtime.experiments.backends import Backend, InProcess
from flowtime.experiments.batch import Batch, plan_of
from flowtime.experiments.metric import CompiledMetric, compile_metrics, derived_names, nan_points
from flowtime.experiments.parameters import Target, edited_text, edits_of, resolve, to_sets
from flowtime.experiments.reduce import METRICS_KEY, Reduction
from flowtime.experiments.sources import ENGINE_TAKES_MODELS, TemplateRenderer
from flowtime.experiments.spec import AnySpec
from flowtime.expr.functions import suggest
from flowtime.model.kinds import is_internal
from flowtime.model.load import load_model
from flowtime.model.schema import Model
from flowtime.model.yamltext import parse_yaml
from flowtime.records import record

Array = npt.NDArray[np.float64]
BATCH_BYTES = 16 << 20  # series a batch holds while the engine evaluates it (all nodes, all its points)
MAX_BATCH = 2000


@record
class Evaluated:
    """``metrics`` ``(n, m)`` in spec order; ``series``: each captured series ``(n, bins)``; NaN warnings."""

    metrics: Array
    series: dict[str, Array]
    warnings: tuple[Problem, ...]


class Evaluator:
    def __init__(self, model_text: str, spec: AnySpec, backend: Backend | None = None, *,
                 batch_size: int | None = None, cancel: threading.Event | None = None,
                 on_progress: Callable[[int], None] | None = None,
                 renderer: TemplateRenderer | None = None) -> None:
        if spec.template is not None and renderer is None:
            raise ExperimentError([Problem("template", ENGINE_TAKES_MODELS)])
        self.text = model_text
        self.spec = spec
        self.renderer = renderer
        self._names = renderer.names if renderer is not None else None
        self.backend: Backend = backend if backend is not None else InProcess()
        self.cancel = cancel
        self.on_progress = on_progress
        self.model: Model = plan_of(model_text).model  # the batches' plan cache: loaded once per process
        self._data: Any = None
        self.targets: list[Target] = resolve(self.model, spec.parameters, self._yaml, self._names)
        self.metrics: list[CompiledMetric] = compile_metrics(spec.metrics, self.model)
        self.capture = self._check_capture(spec.capture)
        self._check_columns()
        self.derived = derived_names(self.model)
        wanted = [r for m in self.metrics for r in m.refs] + list(self.capture)
        self.needs_derived = any(r in self.derived and r not in self._ids for r in wanted)
        if self.needs_derived:  # derive reads the topology's inputs: every visible series comes back
            outputs = [n.id for n in self.model.nodes if not is_internal(n.id)]
        else:
            outputs = list(dict.fromkeys(wanted))
        self.outputs = tuple(outputs)
        per_point = max(1, len(self.model.nodes)) * self.model.grid.bins * 8
        self.batch_size = batch_size or int(min(MAX_BATCH, max(1, BATCH_BYTES // per_point)))
        self.evaluated = 0  # points so far, against limits.maxPoints
        # (template values, edit values) -> (model text, model); template values -> that model's targets
        self._models: dict[tuple[tuple[float, ...], tuple[float, ...]], tuple[str, Model]] = {
            ((), ()): (model_text, self.model)}
        self._rendered: dict[tuple[float, ...], tuple[list[Target], str, Model, Callable[[], Any]]] = {
            (): (self.targets, model_text, self.model, self._yaml)}

    @property
    def _ids(self) -> set[str]:
        return {n.id for n in self.model.nodes}

    def _yaml(self) -> Any:
        if self._data is None:
            self._data = parse_yaml(self.text)[0]
        return self._data

    def _check_capture(self, names: Sequence[str]) -> tuple[str, ...]:
        known = self._ids
        derived = derived_names(self.model)
        visible = sorted([n for n in known if not is_internal(n)] + list(derived))
        problems = [Problem(f"capture[{i}]", f"unknown series '{n}'{suggest(n, visible)}")
                    for i, n in enumerate(names) if n not in known and n not in derived]
        if problems:
            raise ExperimentError(problems)
        return tuple(dict.fromkeys(names))

    def _check_columns(self) -> None:
        """Parameter and metric columns of the result table must differ (a table keeps one of each name)."""
        seen: dict[str, str] = {}
        problems = []
        for i, p in enumerate(self.spec.parameters):
            here = f"parameters[{i}].name" if p.name else f"parameters[{i}].target"
            if p.column in seen:
                problems.append(Problem(here, f"column '{p.column}' is also {seen[p.column]}'s; give a name"))
            seen.setdefault(p.column, f"parameters[{i}]")
        for m in self.metrics:
            if m.label in seen:
                problems.append(Problem(f"metrics[{m.index}].name", f"column '{m.label}' is also "
                                        f"{seen[m.label]}'s; give the metric a name"))
        if problems:
            raise ExperimentError(problems)

    def bounds(self) -> list[tuple[str, float, float]]:
        """(column, low, high) of every parameter, from its range (what the numerical kinds search over)."""
        problems = [Problem(f"parameters[{i}].range", "this kind needs a range {low, high} for every parameter")
                    for i, p in enumerate(self.spec.parameters) if p.range is None]
        if problems:
            raise ExperimentError(problems)
        return [(p.column, p.range.low, p.range.high) for p in self.spec.parameters if p.range is not None]

    @property
    def parameter_names(self) -> list[str]:
        return [p.column for p in self.spec.parameters]

    @property
    def metric_names(self) -> list[str]:
        return [m.label for m in self.metrics]

    def check_count(self, n: int) -> None:
        """``ExperimentError`` at ``limits.maxPoints`` when ``n`` more points would pass the cap."""
        cap = self.spec.limits.max_points
        if self.evaluated + n > cap:
            done = f" after {self.evaluated} already evaluated" if self.evaluated else ""
            raise ExperimentError([Problem("limits.maxPoints", f"the experiment needs {self.evaluated + n} points"
                                           f"{done}; the cap is {cap} points per experiment (raise limits."
                                           "maxPoints or ask for fewer points)")])

    def base_seed(self, draw: bool) -> int | None:
        """
        The experiment's seed: the spec's, else the model's ``rng.seed``, else (``draw``: the points
        sample something) one drawn here - recorded in the result, so the experiment can be re-run.
        """
        if self.spec.seed is not None:
            return self.spec.seed
        if self.model.rng is not None and self.model.rng.seed is not None:
            return int(self.model.rng.seed)
        return secrets.randbits(31) if draw else None

    def _template_values(self, key: tuple[float, ...]) -> str:
        cols = [t for t in self.targets if t.template is not None]
        return ", ".join(f"{t.target} = {v:g}" for t, v in zip(cols, key, strict=True))

    def _render(self, key: tuple[float, ...]) -> tuple[list[Target], str, Model, Callable[[], Any]]:
        """
        The model the template gives for the template parameters' values ``key`` (in parameter order):
        rendered once, planned once, its targets resolved again (a scaled profile is this model's).
        """
        got = self._rendered.get(key)
        if got is not None:
            return got
        assert self.renderer is not None
        cols = [t for t in self.targets if t.template is not None]
        where = f"parameters[{cols[0].index}]"
        values = {t.template: v for t, v in zip(cols, key, strict=True) if t.template is not None}
        try:
            text = self.renderer.render(values)
            model = plan_of(text).model
        except FlowTimeError as exc:
            raise ExperimentError([Problem(where, f"the template with {self._template_values(key)} gives no model "
                                                  f"to run: {str(exc).strip()}")]) from exc
        problems = []
        if model.grid.bins != self.model.grid.bins and self.capture:
            problems.append(f"its grid has {model.grid.bins} bins, the base model's {self.model.grid.bins}; "
                            "captured series need one grid")
        ids = {n.id for n in model.nodes}
        missing = [name for name in self.outputs if name not in ids]
        if missing:
            problems.append(f"it has no {', '.join(repr(m) for m in missing)}, which the metrics or capture read")
        if problems:
            raise ExperimentError([Problem(where, f"the model the template gives with {self._template_values(key)}: "
                                                  f"{m}") for m in problems])
        data: list[Any] = []

        def yaml_data() -> Any:
            if not data:
                data.append(parse_yaml(text)[0])
            return data[0]

        targets = resolve(model, self.spec.parameters, yaml_data, self._names)
        got = self._rendered[key] = (targets, text, model, yaml_data)
        return got

    def _group(self, key: tuple[float, ...], edits: tuple[float, ...]) -> tuple[str, Model]:
        got = self._models.get((key, edits))
        if got is None:
            targets, _, _, yaml_data = self._render(key)
            text = edited_text(yaml_data(), targets, edits)
            try:
                got = self._models[key, edits] = (text, load_model(text).model)
            except ModelError as exc:  # e.g. a route weight <= 0: say which parameters and values
                edited = [t for t in targets if t.edit is not None]
                values = ", ".join(f"{t.target} = {v:g}" for t, v in zip(edited, edits, strict=True))
                raise ExperimentError([Problem(f"parameters[{edited[0].index}]", f"the model with {values} is "
                                               f"invalid: {p.message}") for p in exc.problems]
                                      or [Problem(f"parameters[{edited[0].index}]", str(exc))]) from exc
        return got

    def evaluate(self, points: Array, seeds: Sequence[int | None] | None = None, *,
                 sample_pmf: bool | None = None, counted: bool = True) -> Evaluated:
        """Metrics and captured series of each row of ``points`` (``(n, p)``, columns in parameter order)."""
        points = np.asarray(points, dtype=np.float64)
        if points.ndim != 2 or points.shape[1] != len(self.targets):
            points = points.reshape(-1, len(self.targets))
        n = points.shape[0]
        if counted:
            self.check_count(n)
        seed_list: list[int | None] = list(seeds) if seeds is not None else [self.spec.seed] * n
        sample = sample_pmf if sample_pmf is not None else bool(self.spec.sample_pmf)
        tcols = [j for j, t in enumerate(self.targets) if t.template is not None]
        rendered: dict[tuple[float, ...], list[int]] = {}  # points by their template values: one model each
        for k, row in enumerate(points[:, tcols].tolist() if tcols else [[]] * n):
            rendered.setdefault(tuple(row), []).append(k)
        bins = self.model.grid.bins
        metrics = np.empty((n, len(self.metrics)), dtype=np.float64)
        captured = {c: np.empty((n, bins), dtype=np.float64) for c in self.capture}
        for key, these in rendered.items():
            targets = self._render(key)[0]
            sets = to_sets(targets, points[these])
            groups: dict[tuple[float, ...], list[int]] = {}
            for i, e in enumerate(edits_of(targets, points[these])):
                groups.setdefault(e, []).append(i)
            for e, local in groups.items():
                text, _ = self._group(key, e)
                rows = [these[i] for i in local]
                got = self._run(text, [sets[i] for i in local], [seed_list[k] for k in rows], sample)
                idx = np.asarray(rows)
                metrics[idx] = got[METRICS_KEY]
                for c in self.capture:
                    captured[c][idx] = got[c]
        self.evaluated += n if counted else 0
        warnings = tuple(Problem(f"metrics[{m.index}]", f"{m.label} is NaN at {nan_points(metrics[:, j])}",
                                 severity="warning")
                         for j, m in enumerate(self.metrics) if np.isnan(metrics[:, j]).any())
        return Evaluated(metrics, captured, warnings)

    def _run(self, text: str, sets: list[dict[str, Any]], seeds: list[int | None],
             sample: bool) -> dict[str, Array]:
        size = self.batch_size
        reduction = self._reduction()
        batches = [Batch(s, tuple(sets[s:s + size]), tuple(seeds[s:s + size]), sample, self.outputs, reduction)
                   for s in range(0, len(sets), size)]
        done = [0]

        def progress(i: int, _: dict[str, Array]) -> None:
            done[0] += len(batches[i].sets)
            if self.on_progress is not None:
                self.on_progress(self.evaluated + done[0])

        results = self.backend.run(text, batches, on_batch=progress, cancel=self.cancel)
        if len(results) == 1:
            return results[0]
        return {name: np.concatenate([r[name] for r in results], axis=0) for name in results[0]}

    def _reduction(self) -> Reduction:
        """What each batch reduces its series to where it runs: the metrics, and the captured series."""
        wanted = {r for m in self.metrics for r in m.refs} | set(self.capture)
        ids = self._ids
        derived = tuple((name, *self.derived[name]) for name in sorted(wanted)
                        if name in self.derived and name not in ids)
        return Reduction(tuple(self.metrics), self.capture, derived)

    # -- for the numerical algorithms ----------------------------------------------------------

    def objective(self, *, nan_is_error: bool = True) -> Callable[[Array], Array]:
        """``(n, p)`` parameter values -> ``(n, m)`` metrics; NaN metrics an ``ExperimentError`` unless asked."""

        def f(x: Array) -> Array:
            got = self.evaluate(np.atleast_2d(np.asarray(x, dtype=np.float64)))
            if nan_is_error and got.warnings:
                raise ExperimentError([Problem(w.path, w.message) for w in got.warnings])
            return got.metrics

        return f

    def series_objective(self, name: str) -> Callable[[Array], Array]:
        """``(n, p)`` parameter values -> the series ``name`` of each point, ``(n, bins)`` (for fitting)."""
        if name not in self.capture:
            self.capture = (*self.capture, *self._check_capture([name]))
            if name in self.derived and name not in self._ids and not self.needs_derived:
                self.needs_derived = True
                self.outputs = tuple(n.id for n in self.model.nodes if not is_internal(n.id))
            elif name not in self.outputs:
                self.outputs = (*self.outputs, name)

        def f(x: Array) -> Array:
            return self.evaluate(np.atleast_2d(np.asarray(x, dtype=np.float64))).series[name]

        return f
