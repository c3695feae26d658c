"""
Graph + seed -> Results: every node as one read-only float64 series.

Each node is compiled once into straight-line Python over NumPy arrays (one
statement per operation, so a node costs what the same NumPy calls cost).
Feedback loops - nodes that read their own past through SHIFT - become per-bin
kernels (``engine.feedback``): on plain floats alone, as one NumPy vector per
bin across loops of the same shape, and stepped together when they read each
other's past. Steps follow the level schedule of ``engine.schedule``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from flowtime.engine.codegen import Code, kernel_runtime, model_runtime, vector_expr
from flowtime.engine.graph import Graph, compile_model
from flowtime.engine.pmf import node_seed, sample
from flowtime.engine.schedule import levels, loop_expressions
from flowtime.errors import EvaluationError, Problem
from flowtime.expr.syntax import Expr, Ref, walk
from flowtime.model.overrides import apply_overrides
from flowtime.model.schema import ConstNode, Grid, Model, PmfNode

Series = npt.NDArray[np.float64]

if TYPE_CHECKING:
    from flowtime.engine.feedback import LoopKernel


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
    # The model these series were computed from (overrides applied) and the overrides.
    model: Model | None = None
    overrides: dict[str, Any] = field(default_factory=dict)

    def __getitem__(self, node_id: str) -> Series:
        return self.series[node_id]

    def outputs(self) -> dict[str, Series]:
        return {n: self.series[n] for n in self.output_ids}

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


# ---------------------------------------------------------------------------


@dataclass
class _Plan:
    """Compiled steps for one graph."""

    steps: list[Callable[[dict[str, Series]], None]]
    pmfs: list[PmfNode]  # filled in per evaluation (depends on seed and sampling)


def _plan_for(graph: Graph) -> _Plan:
    """The compiled plan of ``graph``, built on first use and kept on the graph."""
    plan = graph.cache.get("plan")
    if plan is None:
        plan = _compile_plan(graph)
        graph.cache["plan"] = plan
    assert isinstance(plan, _Plan)
    return plan


def _pmf_series(plan: _Plan, bins: int, seed: int | None, sample_all: bool
                ) -> tuple[dict[str, Series], list[str]]:
    out: dict[str, Series] = {}
    sampled: list[str] = []
    for node in plan.pmfs:
        n = node.id
        if node.sample or sample_all:
            assert seed is not None
            arr = sample(node.values, node.probabilities, node_seed(seed, n), bins)
            sampled.append(n)
        else:
            arr = np.full(bins, node.expected_value, dtype=np.float64)
        arr.flags.writeable = False
        out[n] = arr
    return out, sampled


def _read_only(arr: Series) -> Series:
    arr.flags.writeable = False
    return arr


Step = Callable[[dict[str, Series]], None]


class _Steps:
    """Builds the plan's steps: straight-line chunks, loop kernels and wave kernels."""

    def __init__(self, graph: Graph) -> None:
        self.graph = graph
        self.bins = graph.grid.bins
        self.env = model_runtime((self.bins,))
        self.kernels: dict[str, Callable[..., Any]] = {}
        self.chunks = 0

    def _exec(self, source: str, filename: str, name: str, extra: dict[str, Any] | None = None
              ) -> Callable[..., Any]:
        env = kernel_runtime()
        env.update(extra or {})
        exec(compile(source, filename, "exec"), env)
        fn: Callable[..., Any] = env[name]
        return fn

    def kernel(self, source: str) -> Callable[..., Any]:
        if source not in self.kernels:
            self.kernels[source] = self._exec(source, "<flowtime-feedback>", "_k")
        return self.kernels[source]

    def const(self, nid: str, values: Series) -> Step:
        values = _read_only(values.view())  # a read-only view: the model's own array is left alone

        def step(r: dict[str, Series]) -> None:
            r[nid] = values

        return step

    def chunk(self, ids: list[str]) -> Step:
        """Straight-line code for a batch of independent nodes (no call per node)."""
        lines = ["def _chunk(r):"]
        owners = [""]
        for n in ids:
            code = Code()
            val = vector_expr(self.graph.asts[n], lambda name: f"r[{name!r}]", code)
            has_ref = any(isinstance(x, Ref) for x in walk(self.graph.asts[n]))
            code.lines.append(f"r[{n!r}] = {val}" if has_ref else f"r[{n!r}] = _full({val})")
            lines += [f"    {ln}" for ln in code.lines]
            owners += [n] * len(code.lines)
        fname = f"<flowtime-model-{self.chunks}>"
        self.chunks += 1
        cenv = dict(self.env)
        exec(compile("\n".join(lines), fname, "exec"), cenv)
        fn = cenv["_chunk"]

        def step(r: dict[str, Series]) -> None:
            try:
                fn(r)
                for n in ids:
                    r[n].flags.writeable = False
            except Exception as exc:
                tb = exc.__traceback__
                node = ids[0]
                while tb is not None:
                    if tb.tb_frame.f_code.co_filename == fname:
                        node = owners[tb.tb_lineno - 1] or node
                    tb = tb.tb_next
                raise EvaluationError(node, f"{type(exc).__name__}: {exc}") from exc

        return step

    def loops(self, kernels: list[LoopKernel]) -> Step:
        """Standalone loops of one shape: on floats if one, else as columns of NumPy vectors."""
        bins = self.bins
        constants = [np.array(ks, dtype=np.float64) for ks in zip(*(k.constants for k in kernels), strict=True)]

        def step(r: dict[str, Series]) -> None:
            try:
                if len(kernels) == 1:
                    k = kernels[0]
                    outs = self.kernel(k.scalar_source)([r[e] for e in k.externals], k.constants, (bins,))
                    for m, o in zip(k.members, outs, strict=True):
                        r[m] = _read_only(np.array(o, dtype=np.float64))
                    return
                n_ext = len(kernels[0].externals)
                stacked = [np.stack([r[k.externals[j]] for k in kernels], axis=1) for j in range(n_ext)]
                outs = self.kernel(kernels[0].vector_source)(stacked, constants, (bins, len(kernels)))
                for o in outs:
                    o.flags.writeable = False
                for gi, k in enumerate(kernels):
                    for m, o in zip(k.members, outs, strict=True):
                        r[m] = o[:, gi]
            except EvaluationError:
                raise
            except Exception as exc:
                raise EvaluationError(kernels[0].members[0], f"{type(exc).__name__}: {exc}") from exc

        return step

    def wave(self, components: list[list[str]], asts: dict[str, Expr]) -> Step:
        """Linked loops stepped together; each series is a column of one (bins, members) array."""
        from flowtime.engine.feedback import wave_kernel  # only models with loops need the kernels

        wk = wave_kernel(components, asts)
        fn = self._exec(wk.source, "<flowtime-wave>", "_w", wk.bindings)
        bins = self.bins

        def step(r: dict[str, Series]) -> None:
            try:
                xs = []
                for g in wk.groups:
                    if len(g.components) == 1:
                        xs.append([r[e] for e in g.externals[0]])
                    else:
                        xs.append([np.stack([r[ext[j]] for ext in g.externals], axis=1)
                                   for j in range(len(g.externals[0]))])
                s = _read_only(fn(xs, [g.constants for g in wk.groups], bins))
                r.update(zip(wk.columns, s.T, strict=True))  # column views, in column order
            except EvaluationError:
                raise
            except Exception as exc:
                raise EvaluationError(components[0][0], f"{type(exc).__name__}: {exc}") from exc

        return step


def _compile_plan(graph: Graph) -> _Plan:
    build = _Steps(graph)
    steps: list[Step] = []
    # Acyclic nodes accumulate across levels into one straight-line chunk; a chunk
    # is closed only where a feedback step must run, or when it is long.
    batch: list[str] = []
    asts = loop_expressions(graph)  # loop members with small nodes between loops written in place
    for lv in levels(graph, asts):
        for n in lv.nodes:
            node = graph.nodes[n]
            if isinstance(node, ConstNode):
                steps.append(build.const(n, node.values))
            elif isinstance(node, PmfNode):
                continue  # filled in per evaluation (depends on seed and sampling)
            else:
                batch.append(n)
                if len(batch) >= 2000:
                    steps.append(build.chunk(batch))
                    batch = []
        if (lv.alone or lv.waves) and batch:
            steps.append(build.chunk(batch))
            batch = []
        shapes: dict[str, list[LoopKernel]] = {}
        if lv.alone:
            from flowtime.engine.feedback import loop_kernel
        for c in lv.alone:
            k = loop_kernel(graph.components[c], asts)
            shapes.setdefault(k.shape_key, []).append(k)
        steps += [build.loops(ks) for ks in shapes.values()]
        steps += [build.wave([graph.components[c] for c in wave], asts) for wave in lv.waves]
    if batch:
        steps.append(build.chunk(batch))
    return _Plan(steps, [n for n in graph.nodes.values() if isinstance(n, PmfNode)])


def evaluate(model: Model | Graph, seed: int | None = None, *, sample_pmf: bool = False,
             set: Mapping[str, Any] | None = None) -> Results:  # PySD's name, and the CLI's --set
    """
    Evaluate a model (or an already compiled graph).

    ``seed`` overrides ``rng.seed``; PMF nodes give their expected value unless
    they say ``sample: true`` or ``sample_pmf`` is set, in which case each bin
    is one seeded draw. Sampling without any seed draws a random seed, records
    it in the results and warns. ``set`` gives const nodes new values (a number
    for every bin, or one value per bin), as if the model had been edited.
    """
    overrides: dict[str, Any] = {}
    if set:
        base = model.model if isinstance(model, Graph) else model
        edited, overrides = apply_overrides(base, set)
        model = edited
    graph = model if isinstance(model, Graph) else compile_model(model)
    m = graph.model
    warnings: list[Problem] = []
    if seed is None and m.rng is not None:
        seed = m.rng.seed
    if seed is not None:
        seed = int(seed)
    plan = _plan_for(graph)
    if seed is None and any(n.sample or sample_pmf for n in plan.pmfs):
        import secrets

        seed = secrets.randbits(31)
        warnings.append(Problem("rng.seed", f"PMF sampling without a seed: drew seed {seed}; pass --seed "
                                f"{seed} (or set rng.seed) to reproduce", severity="warning"))
    r, sampled = _pmf_series(plan, m.grid.bins, seed, sample_pmf)
    with np.errstate(all="ignore"):
        for step in plan.steps:
            step(r)
    series = {n: r[n] for n in graph.order}  # every step leaves its series read-only
    return Results(grid=m.grid, order=graph.order, series=series, output_ids=graph.output_ids,
                   seed=seed, sample_pmf=sample_pmf, sampled=sampled, warnings=warnings, model=m,
                   overrides=dict(overrides))
