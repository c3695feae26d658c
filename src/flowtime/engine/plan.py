"""
Model graph -> a frozen plan: compiled steps, built once, evaluated many times.

``plan(model)`` turns the model graph into straight-line code over NumPy
arrays (one statement per operation) and per-bin kernels for feedback loops
(``engine.feedback``), scheduled by ``engine.schedule``. Const nodes and PMF
nodes are the plan's *inputs*: they are filled in per evaluation, so
``Plan.evaluate(set={...})`` and sampling switches never re-plan.

``Plan.evaluate_many`` runs K scenarios (seeds and/or const values) in one
pass: a series is then ``(K, bins)``, acyclic steps broadcast over the
scenarios, and feedback kernels step K lanes together, one bin at a time.
Each scenario equals the separate ``evaluate`` call bit for bit.

Generated code is registered with ``linecache`` (tracebacks show its lines)
and shown by ``Plan.source()``; an error while evaluating names the node and
summarises its inputs.
"""

from __future__ import annotations

import itertools
import linecache
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from flowtime.engine.blocks import Pool
from flowtime.engine.codegen import kernel_runtime
from flowtime.engine.jit import Accelerator, compilable
from flowtime.engine.pmf import node_seed, sample, sample_nodes
from flowtime.engine.program import Program
from flowtime.engine.schedule import levels, loop_expressions, satellites
from flowtime.errors import EvaluationError, ModelValidationError, Problem
from flowtime.expr.syntax import Expr
from flowtime.gcpause import paused_gc
from flowtime.model.graph import ModelGraph, graph_of
from flowtime.model.overrides import normalise
from flowtime.model.routers import RouterNode, router_warnings
from flowtime.model.schema import ConstNode, Grid, Model, PmfNode
from flowtime.records import derived

if TYPE_CHECKING:
    from flowtime.engine.evaluate import ManyResults, Results
    from flowtime.engine.feedback import LoopKernel

Series = npt.NDArray[np.float64]
Values = dict[str, Any]
Step = Callable[[Values, int | None], None]  # (values, lanes): None for one evaluation, K for evaluate_many
_counter = itertools.count()


def _register(source: str, label: str) -> str:
    """A file name for generated ``source`` that tracebacks (and ``linecache``) can show."""
    name = f"<flowtime-{label}-{next(_counter)}>"
    linecache.cache[name] = (len(source), None, source.splitlines(keepends=True), name)
    return name


def _summary(values: Values, names: Sequence[str]) -> str:
    """A short account of a node's inputs for an error message."""
    parts = []
    for n in list(names)[:6]:
        v = values.get(n)
        if v is None:
            continue
        a = np.asarray(v)
        finite = a[np.isfinite(a)]
        rng = f"{finite.min():g}..{finite.max():g}" if finite.size else "no finite values"
        parts.append(f"{n} {a.shape} {rng}" + (f", {a.size - finite.size} non-finite" if finite.size < a.size else ""))
    more = f", and {len(names) - 6} more" if len(names) > 6 else ""
    return "; inputs: " + ", ".join(parts) + more if parts else ""


class Plan:
    """
    A model planned for evaluation: immutable, reusable, cheap to evaluate again.

    >>> from flowtime.model.load import load_model
    >>> p = plan(load_model("schemaVersion: 1\\ngrid: {bins: 3, binSize: 1, binUnit: hours}\\nnodes:\\n"
    ...                     "  - {id: cap, values: 2}\\n  - {id: q, kind: expr, expr: 'SHIFT(q, 1) + cap'}\\n").model)
    >>> p.evaluate()["q"].tolist(), p.evaluate(set={"cap": [1, 2, 3]})["q"].tolist()
    ([2.0, 4.0, 6.0], [1.0, 3.0, 6.0])
    >>> p.evaluate_many(sets=[{"cap": 1}, {"cap": 10}])["q"].tolist()
    [[1.0, 2.0, 3.0], [10.0, 20.0, 30.0]]
    """

    def __init__(self, graph: ModelGraph, *, jit: bool | None = None) -> None:
        self.graph = graph
        # Compiled per-bin kernels (engine.jit): None = auto, from a loop's second evaluation.
        self.jit = Accelerator(jit)
        self.model: Model = graph.model
        self.grid: Grid = graph.model.grid
        self.bins = self.grid.bins
        nodes = graph.nodes
        self.consts: dict[str, Series] = {n: v.values for n, v in nodes.items() if isinstance(v, ConstNode)}
        self.pmfs: list[PmfNode] = [v for v in nodes.values() if isinstance(v, PmfNode)]
        self.routers: list[RouterNode] = [v for v in nodes.values() if isinstance(v, RouterNode)]
        self._sources: list[tuple[str, str]] = []  # (file name, source) of every generated function
        self._programs: list[Program] = []
        self._values: Values = dict.fromkeys(graph.order)
        self._values.update(self.consts)
        self._pool = Pool()
        self._steps = _Builder(self).build()
        self._wave_lanes: dict[int, Any] = {}

    # -- what the graph knows, for callers that held a compiled graph ---------------------------

    @property
    def order(self) -> list[str]:
        return list(self.graph.order)

    @property
    def components(self) -> list[list[str]]:
        return [list(c) for c in self.graph.components]

    @property
    def output_ids(self) -> list[str]:
        return list(self.graph.outputs)

    @property
    def inputs(self) -> dict[str, list[str]]:
        return {n: list(v) for n, v in self.graph.inputs.items()}

    @property
    def lags(self) -> Mapping[str, Mapping[str, int]]:
        return self.graph.lags

    @property
    def exprs(self) -> Mapping[str, Expr]:
        return self.graph.exprs

    @property
    def nodes(self) -> dict[str, Any]:
        return self.graph.nodes

    def edges(self) -> list[tuple[str, str]]:
        return self.graph.edges()

    def describe(self) -> dict[str, object]:
        return self.graph.describe()

    def source(self) -> str:
        """
        What this plan runs: each program's operations (node: operation), and
        every piece of code generated for feedback loops, headed by the file
        name tracebacks show.
        """
        return "\n\n".join([*(p.listing() for p in self._programs),
                              *(f"# {name}\n{src}" for name, src in self._sources)])

    # -- evaluation ---------------------------------------------------------------------------

    def _seed(self, seed: int | None, sample_pmf: bool, warnings: list[Problem]) -> int | None:
        if seed is None and self.model.rng is not None:
            seed = self.model.rng.seed
        if seed is not None:
            seed = int(seed)
        if seed is None and any(n.sample or sample_pmf for n in self.pmfs):
            import secrets

            seed = secrets.randbits(31)
            warnings.append(Problem("rng.seed", f"PMF sampling without a seed: drew seed {seed}; pass --seed "
                                    f"{seed} (or set rng.seed) to reproduce", severity="warning"))
        return seed

    def _pmf(self, node: PmfNode, seed: int | None, sample_all: bool) -> Series | None:
        """A PMF node's series, or None when it is drawn (and so depends on the seed)."""
        if node.sample or sample_all:
            return None
        arr = np.full(self.bins, node.expected_value, dtype=np.float64)
        arr.flags.writeable = False
        return arr

    def _run(self, values: Values, lanes: int | None) -> None:
        with np.errstate(all="ignore"):
            for step in self._steps:
                step(values, lanes)

    def evaluate(self, seed: int | None = None, *, sample_pmf: bool = False,
                 set: Mapping[str, Any] | None = None) -> Results:  # PySD's name, and the CLI's --set
        """
        Evaluate once. ``seed`` overrides ``rng.seed``; PMF nodes give their
        expected value unless they say ``sample: true`` or ``sample_pmf`` is set;
        ``set`` gives const nodes new values (a number for every bin, or one per
        bin) exactly as editing the model would.
        """
        from flowtime.engine.evaluate import Results

        warnings: list[Problem] = []
        overrides = normalise(set, self.bins, self.model) if set else {}
        values: Values = self._values.copy()  # every node, in evaluation order: the results' dict as it is
        for n, v in overrides.items():
            arr = np.full(self.bins, v, dtype=np.float64) if isinstance(v, float) else np.array(v, np.float64)
            arr.flags.writeable = False
            values[n] = arr
        seed = self._seed(seed, sample_pmf, warnings)
        sampled: list[str] = []
        for node in self.pmfs:
            drawn = self._pmf(node, seed, sample_pmf)
            if drawn is None:
                assert seed is not None
                drawn = sample(node.values, node.probabilities, node_seed(seed, node.id), self.bins)
                drawn.flags.writeable = False
                sampled.append(node.id)
            values[node.id] = drawn
        self._run(values, None)
        series = values
        results = Results(grid=self.grid, order=list(self.graph.order), series=series,
                          output_ids=list(self.graph.outputs), seed=seed, sample_pmf=sample_pmf,
                          sampled=sampled, warnings=warnings, source_model=self.model, overrides=dict(overrides))
        if self.routers:  # diagnostics of the evaluated class parts (0021)
            warnings.extend(router_warnings(self.routers, series, results.classes))
        return results

    def evaluate_many(self, seeds: Sequence[int | None] | None = None,
                      sets: Sequence[Mapping[str, Any] | None] | None = None, *,
                      sample_pmf: bool = False) -> ManyResults:
        """
        K scenarios in one pass: scenario k uses ``seeds[k]`` and ``sets[k]``
        (either list may be left out, or hold one entry for every scenario).
        Each scenario equals ``evaluate(seed=seeds[k], set=sets[k], ...)`` bit for bit.
        """
        from flowtime.engine.evaluate import ManyResults

        n_seeds = len(seeds) if seeds is not None else 1
        n_sets = len(sets) if sets is not None else 1
        k = max(n_seeds, n_sets)
        for label, count in (("seeds", n_seeds), ("sets", n_sets)):
            if count not in (1, k):
                raise ModelValidationError([Problem(label, f"gives {count} scenarios but the other list gives {k}; "
                                                           "give as many of each, or one for all")])
        if k < 1:
            raise ModelValidationError([Problem("seeds", "evaluate_many needs at least one scenario")])
        seed_list: list[int | None] = list(seeds) if seeds is not None else [None]
        given: list[dict[str, Any]] = [dict(x) if x else {} for x in (sets if sets is not None else [None])]
        seed_list = seed_list * k if len(seed_list) == 1 else seed_list
        given = given * k if len(given) == 1 else given
        warnings: list[Problem] = []
        checked = [normalise(g, self.bins, self.model, origin=f"sets[{i}]") if g else {} for i, g in enumerate(given)]
        values: Values = dict(self.consts)
        for name in sorted({n for c in checked for n in c}):
            block = np.empty((k, self.bins), dtype=np.float64)
            block[:] = self.consts[name]
            for i, c in enumerate(checked):
                if name in c:
                    block[i] = c[name]
            block.flags.writeable = False
            values[name] = block
        resolved = [self._seed(x, sample_pmf, warnings) for x in seed_list]
        series_of = {node.id: self._pmf(node, None, sample_pmf) for node in self.pmfs}
        drawn = [node for node in self.pmfs if series_of[node.id] is None]
        if drawn:  # all K seeds of all drawn nodes at once, into one (P, K, bins) block
            run_seeds = [x for x in resolved if x is not None]
            assert len(run_seeds) == k  # _seed draws one when something is sampled
            # into a pooled block: reused once the results of an earlier call are dropped (engine.blocks)
            held = self._pool.claim_rows("pmf", (len(drawn), k, self.bins))
            sample_nodes([(x.id, x.values, x.probabilities) for x in drawn], run_seeds, self.bins, out=held[0])
            series_of.update(zip([x.id for x in drawn], held[3], strict=False))
        sampled = [x.id for x in drawn]
        values.update(series_of)
        self._run(values, k)
        out = {n: values[n] for n in self.graph.order}
        return ManyResults(plan=self, scenarios=k, seeds=resolved, overrides=checked, series=out,
                           sampled=sampled, sample_pmf=sample_pmf, warnings=warnings)


def _edited(model: Model, overrides: Mapping[str, Any], series: Mapping[str, Series]) -> Model:
    """The model with its const nodes holding the overrides (what the run was computed from)."""
    import dataclasses

    nodes = tuple(dataclasses.replace(n, values=series[n.id]) if n.id in overrides and isinstance(n, ConstNode)
                  else n for n in model.nodes)
    return dataclasses.replace(model, nodes=nodes)


# ---------------------------------------------------------------------------------------------


def _lanes_of(x: Any, lanes: int, bins: int) -> Any:
    """A value as ``(bins, lanes)`` columns for a kernel (a scenario-invariant series is repeated)."""
    a = np.asarray(x, dtype=np.float64)
    if a.ndim == 0:
        return np.full((bins, lanes), float(a))
    if a.ndim == 1:
        return np.repeat(a[:, None], lanes, axis=1)
    return np.ascontiguousarray(a.T)


class _Builder:
    """Builds a plan's steps: straight-line chunks, loop kernels and wave kernels."""

    def __init__(self, plan: Plan) -> None:
        self.plan = plan
        self.graph = plan.graph
        self.bins = plan.bins
        self.kernels: dict[str, Callable[..., Any]] = {}
        self.rank = {n: i for i, n in enumerate(plan.graph.order)}

    def _exec(self, source: str, label: str, name: str, extra: dict[str, Any] | None = None) -> Callable[..., Any]:
        filename = _register(source, label)
        self.plan._sources.append((filename, source))
        env = kernel_runtime()
        env.update(extra or {})
        exec(compile(source, filename, "exec"), env)
        fn: Callable[..., Any] = env[name]
        return fn

    def kernel(self, source: str) -> Callable[..., Any]:
        if source not in self.kernels:
            self.kernels[source] = self._exec(source, "feedback", "_k")
        return self.kernels[source]

    def build(self) -> list[Step]:
        graph = self.graph
        steps: list[Step] = []
        # Acyclic nodes accumulate across levels into one straight-line chunk; a chunk
        # is closed only where a feedback step must run, or when it is long.
        if not graph.components:  # no feedback: one program, in evaluation order
            return [self.chunk([n for n in graph.order if n in graph.exprs])]
        batch: list[str] = []
        asts = loop_expressions(graph)  # loop members with small nodes between loops written in place
        lvs = levels(graph, asts)
        # Small acyclic nodes next to a standalone loop, computed by its step (in its compiled kernel if it has one)
        near = satellites(graph, lvs, asts, compilable) if self.plan.jit.mode is not False else {}
        moved = {n for heads, tails in near.values() for n in (*heads, *tails)}
        for lv in lvs:
            for n in lv.nodes:
                if n in graph.exprs and n not in moved:
                    batch.append(n)
            if (lv.alone or lv.waves) and batch:
                steps.append(self.chunk(batch))
                batch = []
            shapes: dict[str, list[tuple[LoopKernel, tuple[list[str], list[str]]]]] = {}
            if lv.alone:
                from flowtime.engine.feedback import loop_kernel  # only models with loops need the kernels

                for c in lv.alone:
                    k = loop_kernel(list(graph.components[c]), asts)
                    shapes.setdefault(k.shape_key, []).append((k, near.get(c, ([], []))))
            steps += [self.loops(ks) for ks in shapes.values()]
            steps += [self.wave([list(graph.components[c]) for c in wave], asts) for wave in lv.waves]
        if batch:
            steps.append(self.chunk(batch))
        return steps

    def chunk(self, ids: list[str]) -> Step:
        """A batch of acyclic nodes as one program: NumPy calls into one pooled block (``engine.program``)."""
        program = Program(ids, self.graph.exprs, self.graph.inputs, self.bins)
        self.plan._programs.append(program)
        inputs = self.graph.inputs

        def step(r: Values, lanes: int | None) -> None:
            try:
                program.run(r, lanes)
            except Exception as exc:
                node, op, computed = program.failing(r, lanes, exc)
                where = f" (computing {op})" if op else ""
                summary = _summary({**r, **computed}, inputs[node])
                raise EvaluationError(node, f"{type(exc).__name__}: {exc}{summary}{where}") from exc

        return step

    def loops(self, looped: list[tuple[LoopKernel, tuple[list[str], list[str]]]]) -> Step:
        """
        Standalone loops of one shape: on floats if one, else as columns of
        NumPy vectors; with their satellites (heads before, tails after), which
        a compiled kernel computes bin by bin with the loops instead.
        """
        bins = self.bins
        kernels = [k for k, _ in looped]
        heads = [n for _, (hs, _) in looped for n in hs]
        tails = [n for _, (_, ts) in looped for n in ts]
        before = self.chunk(sorted(heads, key=self.rank.__getitem__)) if heads else None
        after = self.chunk(sorted(tails, key=self.rank.__getitem__)) if tails else None
        constants = [np.array(ks, dtype=np.float64) for ks in zip(*(k.constants for k in kernels), strict=True)]
        scalar_fn = self.kernel(kernels[0].scalar_source) if len(kernels) == 1 else None
        vector_fn = self.kernel(kernels[0].vector_source)
        jit = self.plan.jit
        site = jit.site([[*hs, *k.members, *ts] for k, (hs, ts) in looped], bins,
                        lambda: jit.loop_asts(lambda: loop_expressions(self.graph)),
                        lambda name, source: self.plan._sources.append((name, source)), frozenset(heads + tails))

        def step(r: Values, lanes: int | None) -> None:
            compiled = site.use(lanes)  # once per evaluation: it counts them
            alone = not (compiled and site.absorbs)  # the satellites computed apart
            if before is not None and alone:
                before(r, lanes)
            loop(r, lanes, compiled)
            if after is not None and alone:
                after(r, lanes)

        def loop(r: Values, lanes: int | None, compiled: bool) -> None:
            try:
                if compiled:
                    site.run(r, lanes)
                    return
                if lanes is None and scalar_fn is not None:
                    k = kernels[0]
                    outs = scalar_fn([r[e] for e in k.externals], k.constants, (bins,))
                    for m, o in zip(k.members, outs, strict=True):
                        arr = np.array(o, dtype=np.float64)
                        arr.flags.writeable = False
                        r[m] = arr
                    return
                n_ext = len(kernels[0].externals)
                width = lanes or 1
                # Columns kernel by kernel, each with one lane per scenario.
                stacked = [np.concatenate([_lanes_of(r[k.externals[j]], width, bins) for k in kernels], axis=1)
                           for j in range(n_ext)]
                consts = [np.repeat(c, width) for c in constants]
                outs = vector_fn(stacked, consts, (bins, len(kernels) * width))
                for o in outs:
                    o.flags.writeable = False
                for gi, k in enumerate(kernels):
                    for m, o in zip(k.members, outs, strict=True):
                        block = o[:, gi * width:(gi + 1) * width]
                        r[m] = block[:, 0] if lanes is None else block.T
            except EvaluationError:
                raise
            except Exception as exc:
                node = kernels[0].members[0]
                raise EvaluationError(node, f"{type(exc).__name__}: {exc}"
                                            f"{_summary(r, kernels[0].externals)}") from exc

        return step

    def wave(self, components: list[list[str]], asts: dict[str, Expr]) -> Step:
        """Linked loops stepped together; each series is a column of one (bins, columns) array."""
        from flowtime.engine.feedback import wave_kernel

        bins = self.bins
        made: dict[int | None, tuple[Any, Callable[..., Any]]] = {}

        def kernel_for(lanes: int | None) -> tuple[Any, Callable[..., Any]]:
            """The kernel for one evaluation (None) or for ``lanes`` scenarios side by side."""
            if lanes not in made:
                wk = wave_kernel(components, asts, lanes or 1, vector=lanes is not None)
                made[lanes] = (wk, self._exec(wk.source, "wave", "_w", wk.bindings))
            return made[lanes]

        kernel_for(None)
        site = self.plan.jit.site(components, bins, lambda: asts,
                                  lambda name, source: self.plan._sources.append((name, source)))

        def step(r: Values, lanes: int | None) -> None:
            if site.use(lanes):
                try:
                    site.run(r, lanes)
                except Exception as exc:
                    raise EvaluationError(components[0][0], f"{type(exc).__name__}: {exc}") from exc
                return
            width = lanes or 1
            wk, fn = kernel_for(lanes)
            try:
                xs = []
                for g in wk.groups:
                    if len(g.components) == 1 and lanes is None:
                        xs.append([r[e] for e in g.externals[0]])
                    else:
                        xs.append([np.concatenate([_lanes_of(r[ext[j]], width, bins) for ext in g.externals],
                                                  axis=1) for j in range(len(g.externals[0]))])
                s = fn(xs, [g.constants for g in wk.groups], bins)
                s.flags.writeable = False
                for m, cols in wk.columns.items():
                    r[m] = s[:, cols[0]] if lanes is None else s[:, cols[0]:cols[-1] + 1].T
            except EvaluationError:
                raise
            except Exception as exc:
                raise EvaluationError(components[0][0], f"{type(exc).__name__}: {exc}") from exc

        return step




def plan(model: Model | ModelGraph | Plan, *, jit: bool | None = None) -> Plan:
    """
    The plan of ``model``: every problem is reported before anything runs
    (``ModelValidationError`` for a model made in code with a problem), and the
    same model object always gets the same plan. ``jit`` chooses compiled
    per-bin kernels for feedback loops (``engine.jit``; they give the same bits):
    None compiles a loop from its second evaluation, True while planning, False never.
    """
    if isinstance(model, Plan):
        return model
    graph = model if isinstance(model, ModelGraph) else graph_of(model)
    kept = derived(graph.model)
    cached: Plan | None = kept.get(("plan", jit))
    if cached is not None:
        return cached
    with paused_gc():  # code generation makes many small objects and keeps them (see flowtime.gcpause)
        built = Plan(graph, jit=jit)
    return kept.setdefault(("plan", jit), built)  # type: ignore[no-any-return]
