"""
Graph + seed -> Results: every node as one read-only float64 series.

Each node is compiled once into straight-line Python over NumPy arrays (one
statement per operation, so a node costs what the same NumPy calls cost).
Feedback loops - nodes that read their own past through SHIFT - are compiled
into a per-bin loop over plain floats; loops of identical shape that do not
depend on each other run together, one NumPy vector per bin across the loops.
Nodes are scheduled level by level (longest path from the sources), which is a
valid topological order and lets independent loops batch.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from flowtime.engine.graph import Graph, compile_model
from flowtime.engine.pmf import node_seed, sample
from flowtime.errors import EvaluationError, Problem
from flowtime.expr import functions as fx
from flowtime.expr.syntax import BinOp, Call, Expr, Num, Ref, Unary, fold, walk
from flowtime.model.schema import ConstNode, Grid, Model, PmfNode

Series = npt.NDArray[np.float64]

_BINOPS = {"+": "+", "-": "-", "*": "*"}
_CMP_NAMES = {"<": "lt", "<=": "le", ">": "gt", ">=": "ge", "==": "eq", "!=": "ne"}


@dataclass
class Results:
    """
    The evaluated series of a model, by node id, plus how they were made.

    ``series`` holds every node (read-only arrays); ``output_ids`` the ones the
    model asks to be written.
    """

    grid: Grid
    order: list[str]
    series: dict[str, Series]
    output_ids: list[str]
    seed: int | None = None
    sample_pmf: bool = False
    sampled: list[str] = field(default_factory=list)
    warnings: list[Problem] = field(default_factory=list)

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
# runtime helpers referenced by generated code


def _make_runtime(shape: tuple[int, ...]) -> dict[str, Any]:
    def _shift(x: Any, k: int) -> Any:
        if k == 0:
            return x
        out = np.zeros(shape, dtype=np.float64)
        if k < shape[0]:
            if np.ndim(x) == 0:
                out[k:] = x
            else:
                out[k:] = x[: shape[0] - k]
        return out

    def _full(x: Any) -> Any:
        if np.ndim(x) == 0:
            return np.full(shape, float(x), dtype=np.float64)
        if x.dtype != np.float64:
            return x.astype(np.float64)
        return x

    env: dict[str, Any] = {"np": np, "_shift": _shift, "_full": _full, "_div": fx.v_div}
    for name, fn in fx.FUNCTIONS.items():
        if fn.vector is not None:
            env[f"_f_{name}"] = fn.vector
    for op, cmp in fx.VECTOR_COMPARE.items():
        env[f"_c_{_CMP_NAMES[op]}"] = cmp
    return env


def _shift_s(x: Any, k: int, shape: tuple[int, ...]) -> Any:
    if k == 0:
        return x
    out = np.zeros(shape, dtype=np.float64)
    if k < shape[0]:
        out[k:] = x if np.ndim(x) == 0 else x[: shape[0] - k]
    return out


def _full_s(x: Any, shape: tuple[int, ...]) -> Any:
    if np.ndim(x) == 0:
        return np.full(shape, float(x), dtype=np.float64)
    return np.broadcast_to(x, shape).astype(np.float64, copy=False)


def _kernel_runtime(scalar: bool) -> dict[str, Any]:
    """Names for kernels: ``_f_``/``_c_``/``_div`` work on whole series (hoisted
    code); ``_p_``/``_q_``/``_pdiv`` work per bin, on floats or on vectors."""
    env: dict[str, Any] = {"np": np, "_div": fx.v_div, "_shift_s": _shift_s, "_full_s": _full_s}
    for name, fn in fx.FUNCTIONS.items():
        if fn.vector is not None:
            env[f"_f_{name}"] = fn.vector
            env[f"_p_{name}"] = fn.scalar if scalar else fn.vector
    for op, cmp in fx.VECTOR_COMPARE.items():
        env[f"_c_{_CMP_NAMES[op]}"] = cmp
        env[f"_q_{_CMP_NAMES[op]}"] = fx.SCALAR_COMPARE[op] if scalar else cmp
    env["_pdiv"] = fx.s_div if scalar else fx.v_div
    return env


class _Code:
    """Accumulates statements with fresh temporaries."""

    def __init__(self, prefix: str = "t") -> None:
        self.lines: list[str] = []
        self.n = 0
        self.prefix = prefix

    def emit(self, rhs: str) -> str:
        name = f"{self.prefix}{self.n}"
        self.n += 1
        self.lines.append(f"{name} = {rhs}")
        return name


def _literal(v: float) -> str:
    return repr(float(v))


def _vector_expr(ast: Expr, ref: Callable[[str], str], code: _Code, shaped: bool = False) -> str:
    """Emit vector statements for ``ast``; return the operand holding its value."""

    def fn(node: Expr, kids: list[str]) -> str:
        if isinstance(node, Num):
            return _literal(node.value)
        if isinstance(node, Ref):
            return ref(node.name)
        if isinstance(node, Unary):
            return kids[0] if node.op == "+" else code.emit(f"-{kids[0]}")
        if isinstance(node, BinOp):
            a, b = kids
            if node.op in _BINOPS:
                return code.emit(f"{a} {node.op} {b}")
            if node.op == "/":
                return code.emit(f"_div({a}, {b})")
            return code.emit(f"_c_{_CMP_NAMES[node.op]}({a}, {b})")
        assert isinstance(node, Call)
        if node.name == "SHIFT":
            lag = node.args[1]
            assert isinstance(lag, Num)
            if shaped:
                return code.emit(f"_shift_s({kids[0]}, {int(lag.value)}, SHAPE)")
            return code.emit(f"_shift({kids[0]}, {int(lag.value)})")
        return code.emit(f"_f_{node.name}({', '.join(kids)})")

    return fold(ast, fn)


# ---------------------------------------------------------------------------
# feedback loops: a kernel per component shape


@dataclass
class _Kernel:
    source: str
    externals: list[str]  # node ids read from outside the loop, positional X[i]
    members: list[str]


def _kernel_source(members: list[str], asts: dict[str, Expr], scalar: bool) -> _Kernel:
    """
    Source of ``_k(X, SHAPE)`` computing the loop ``members`` bin by bin.

    Subexpressions that do not involve members are hoisted out of the loop and
    computed over whole series first; only member-dependent work runs per bin.
    """
    member_set = set(members)
    mindex = {m: i for i, m in enumerate(members)}
    externals: dict[str, int] = {}
    pre = _Code("h")
    body: list[str] = []
    tail: list[str] = []
    hist_count = [0]
    body_code = _Code("t")
    zero = "0.0" if scalar else "ZERO"

    def ext_ref(name: str) -> str:
        if name not in externals:
            externals[name] = len(externals)
        return f"X[{externals[name]}]"

    # Which subtrees read a loop member: one pass per expression, not one per subtree.
    dependent: set[int] = set()
    for m in members:
        def mark(n: Expr, kids: list[bool]) -> bool:
            hit = (isinstance(n, Ref) and n.name in member_set) or any(kids)
            if hit:
                dependent.add(id(n))
            return hit

        fold(asts[m], mark)

    def depends(e: Expr) -> bool:
        return id(e) in dependent

    def hoist(e: Expr) -> str:
        if isinstance(e, Num):
            return _literal(e.value)
        val = _vector_expr(e, ext_ref, pre, shaped=True)
        name = pre.emit(f"_full_s({val}, SHAPE)" + (".tolist()" if scalar else ""))
        return f"{name}[t]"

    def per_bin(e: Expr, code: _Code, depth: int = 0) -> str:
        if depth > 400:
            raise EvaluationError(members[0], "expression too deeply nested for a feedback loop")
        if not depends(e):
            return hoist(e)
        if isinstance(e, Ref):
            return f"c{mindex[e.name]}"
        # per-bin operations use the _p_/_q_/_pdiv names (floats or vectors)
        if isinstance(e, Unary):
            inner = per_bin(e.operand, code, depth + 1)
            return inner if e.op == "+" else code.emit(f"-{inner}")
        if isinstance(e, BinOp):
            a = per_bin(e.left, code, depth + 1)
            b = per_bin(e.right, code, depth + 1)
            if e.op in _BINOPS:
                return code.emit(f"{a} {e.op} {b}")
            if e.op == "/":
                return code.emit(f"_pdiv({a}, {b})")
            return code.emit(f"_q_{_CMP_NAMES[e.op]}({a}, {b})")
        assert isinstance(e, Call)
        if e.name == "SHIFT":
            lag_node = e.args[1]
            assert isinstance(lag_node, Num)
            k = int(lag_node.value)
            arg = e.args[0]
            if k == 0:
                return per_bin(arg, code, depth + 1)
            if isinstance(arg, Ref) and arg.name in member_set:
                src = f"o{mindex[arg.name]}"
            else:
                # History of a compound argument, recorded at the end of each bin.
                src = f"hh{hist_count[0]}"
                hist_count[0] += 1
                tail_code = _Code(f"u{src}_")
                val = per_bin(arg, tail_code, depth + 1)
                tail.extend(tail_code.lines)
                tail.append(f"{src}[t] = {val}")
            return code.emit(f"{src}[t - {k}] if t >= {k} else {zero}")
        args = [per_bin(a, code, depth + 1) for a in e.args]
        return code.emit(f"_p_{e.name}({', '.join(args)})")

    for m in members:
        val = per_bin(asts[m], body_code)
        body_code.lines.append(f"c{mindex[m]} = {val}")
        body_code.lines.append(f"o{mindex[m]}[t] = c{mindex[m]}")
    body = body_code.lines

    lines = ["def _k(X, SHAPE):", "    BINS = SHAPE[0]"]
    if not scalar:
        lines.append("    ZERO = np.zeros(SHAPE[1:], dtype=np.float64)")
    lines += [f"    {s}" for s in pre.lines]
    alloc = "[0.0] * BINS" if scalar else "np.zeros(SHAPE, dtype=np.float64)"
    for i in range(len(members)):
        lines.append(f"    o{i} = {alloc}")
    for i in range(hist_count[0]):
        lines.append(f"    hh{i} = {alloc}")
    lines.append("    for t in range(BINS):")
    lines += [f"        {s}" for s in body + tail]
    lines.append(f"    return [{', '.join(f'o{i}' for i in range(len(members)))}]")
    return _Kernel("\n".join(lines), list(externals), members)


# ---------------------------------------------------------------------------


@dataclass
class _Plan:
    """Compiled steps for one graph and grid shape."""

    steps: list[Callable[[dict[str, Series]], None]]


def _plan_for(graph: Graph) -> _Plan:
    """The compiled plan of ``graph``, built on first use and kept on the graph."""
    plan = graph.cache.get("plan")
    if plan is None:
        plan = _compile_plan(graph)
        graph.cache["plan"] = plan
    assert isinstance(plan, _Plan)
    return plan


def _pmf_series(graph: Graph, seed: int | None, sample_all: bool) -> tuple[dict[str, Series], list[str]]:
    bins = graph.grid.bins
    out: dict[str, Series] = {}
    sampled: list[str] = []
    for n, node in graph.nodes.items():
        if not isinstance(node, PmfNode):
            continue
        if node.sample or sample_all:
            assert seed is not None
            arr = sample(node.values, node.probabilities, node_seed(seed, n), bins)
            sampled.append(n)
        else:
            arr = np.full(bins, node.expected_value, dtype=np.float64)
        arr.flags.writeable = False
        out[n] = arr
    return out, sampled


def _compile_plan(graph: Graph) -> _Plan:
    bins = graph.grid.bins
    shape = (bins,)
    env = _make_runtime(shape)

    comp_of = {m: i for i, c in enumerate(graph.components) for m in c}
    # Units: a component or a single node; level = longest path from a source.
    unit_of: dict[str, int | str] = {n: comp_of.get(n, n) for n in graph.order}
    level: dict[int | str, int] = {}
    for n in graph.order:
        u = unit_of[n]
        lv = 0
        for d in graph.inputs[n]:
            du = unit_of[d]
            if du != u:
                lv = max(lv, level[du] + 1)
        level[u] = max(level.get(u, 0), lv)

    by_level: dict[int, list[int | str]] = {}
    seen: set[int | str] = set()
    for n in graph.order:
        u = unit_of[n]
        if u not in seen:
            seen.add(u)
            by_level.setdefault(level[u], []).append(u)

    steps: list[Callable[[dict[str, Series]], None]] = []
    kernel_cache: dict[str, Callable[..., Any]] = {}

    def kernel_fn(source: str, scalar: bool) -> Callable[..., Any]:
        key = ("s" if scalar else "v") + source
        if key not in kernel_cache:
            kenv = _kernel_runtime(scalar)
            exec(compile(source, "<flowtime-feedback>", "exec"), kenv)
            kernel_cache[key] = kenv["_k"]
        return kernel_cache[key]

    def const_step(nid: str, values: Series) -> Callable[[dict[str, Series]], None]:
        def step(r: dict[str, Series]) -> None:
            r[nid] = values

        return step

    chunk_counter = [0]

    def chunk_step(ids: list[str]) -> Callable[[dict[str, Series]], None]:
        """Straight-line code for a batch of independent nodes (no call per node)."""
        lines = ["def _chunk(r):"]
        owners = [""]
        for n in ids:
            code = _Code()
            val = _vector_expr(graph.asts[n], lambda name: f"r[{name!r}]", code)
            has_ref = any(isinstance(x, Ref) for x in walk(graph.asts[n]))
            code.lines.append(f"r[{n!r}] = {val}" if has_ref else f"r[{n!r}] = _full({val})")
            lines += [f"    {ln}" for ln in code.lines]
            owners += [n] * len(code.lines)
        fname = f"<flowtime-model-{chunk_counter[0]}>"
        chunk_counter[0] += 1
        cenv = dict(env)
        exec(compile("\n".join(lines), fname, "exec"), cenv)
        fn = cenv["_chunk"]

        def step(r: dict[str, Series]) -> None:
            try:
                fn(r)
            except Exception as exc:
                tb = exc.__traceback__
                node = ids[0]
                while tb is not None:
                    if tb.tb_frame.f_code.co_filename == fname:
                        node = owners[tb.tb_lineno - 1] or node
                    tb = tb.tb_next
                raise EvaluationError(node, f"{type(exc).__name__}: {exc}") from exc

        return step

    def group_step(kernels: list[_Kernel], scalar_src: str, vector_src: str
                   ) -> Callable[[dict[str, Series]], None]:
        def step(r: dict[str, Series]) -> None:
            try:
                if len(kernels) == 1:
                    k = kernels[0]
                    fn = kernel_fn(scalar_src, True)
                    outs = fn([r[e] for e in k.externals], shape)
                    for m, o in zip(k.members, outs, strict=True):
                        arr = np.array(o, dtype=np.float64)
                        arr.flags.writeable = False
                        r[m] = arr
                    return
                g = len(kernels)
                fn = kernel_fn(vector_src, False)
                n_ext = len(kernels[0].externals)
                stacked = [np.stack([r[k.externals[j]] for k in kernels], axis=1) for j in range(n_ext)]
                outs = fn(stacked, (bins, g))
                for gi, k in enumerate(kernels):
                    for m, o in zip(k.members, outs, strict=True):
                        arr = np.ascontiguousarray(o[:, gi])
                        arr.flags.writeable = False
                        r[m] = arr
            except EvaluationError:
                raise
            except Exception as exc:
                raise EvaluationError(kernels[0].members[0], f"{type(exc).__name__}: {exc}") from exc

        return step

    # Acyclic nodes accumulate across levels into one straight-line chunk; a chunk
    # is closed only where a feedback group must run, or when it is long.
    batch: list[str] = []
    for lv in sorted(by_level):
        groups: dict[str, list[_Kernel]] = {}
        group_src: dict[str, tuple[str, str]] = {}
        for u in by_level[lv]:
            if isinstance(u, int):
                members = graph.components[u]
                ks = _kernel_source(members, graph.asts, scalar=True)
                kv = _kernel_source(members, graph.asts, scalar=False)
                groups.setdefault(ks.source, []).append(ks)
                group_src[ks.source] = (ks.source, kv.source)
                continue
            n = u
            node = graph.nodes[n]
            if isinstance(node, ConstNode):
                steps.append(const_step(n, node.values))
            elif isinstance(node, PmfNode):
                continue  # filled in per evaluation (depends on seed and sampling)
            else:
                batch.append(n)
                if len(batch) >= 2000:
                    steps.append(chunk_step(batch))
                    batch = []
        if groups and batch:
            steps.append(chunk_step(batch))
            batch = []
        for src, ks_list in groups.items():
            steps.append(group_step(ks_list, *group_src[src]))
    if batch:
        steps.append(chunk_step(batch))
    return _Plan(steps)


def _needs_seed(model: Model, sample_pmf: bool) -> bool:
    return any(isinstance(n, PmfNode) and (n.sample or sample_pmf) for n in model.nodes)


def evaluate(model: Model | Graph, seed: int | None = None, *, sample_pmf: bool = False) -> Results:
    """
    Evaluate a model (or an already compiled graph).

    ``seed`` overrides ``rng.seed``; PMF nodes give their expected value unless
    they say ``sample: true`` or ``sample_pmf`` is set, in which case each bin
    is one seeded draw. Sampling without any seed draws a random seed, records
    it in the results and warns.
    """
    graph = model if isinstance(model, Graph) else compile_model(model)
    m = graph.model
    warnings: list[Problem] = []
    if seed is None and m.rng is not None:
        seed = m.rng.seed
    if seed is not None:
        seed = int(seed)
    if _needs_seed(m, sample_pmf) and seed is None:
        seed = secrets.randbits(31)
        warnings.append(Problem("rng.seed", f"PMF sampling without a seed: drew seed {seed}; pass --seed "
                                f"{seed} (or set rng.seed) to reproduce", severity="warning"))
    plan = _plan_for(graph)
    r, sampled = _pmf_series(graph, seed, sample_pmf)
    with np.errstate(all="ignore"):
        for step in plan.steps:
            step(r)
    series = {n: r[n] for n in graph.order}
    for arr in series.values():
        if arr.flags.writeable:
            arr.flags.writeable = False
    return Results(grid=m.grid, order=graph.order, series=series, output_ids=graph.output_ids,
                   seed=seed, sample_pmf=sample_pmf, sampled=sampled, warnings=warnings)
