"""
Feedback loops -> per-bin kernels (Python source, compiled once per graph).

A feedback component - nodes that read their own past through SHIFT - is
computed bin by bin. Subexpressions that read no loop value are hoisted and
computed over whole series first; only the rest runs per bin.

Two kernel forms share that code generation:

* a **loop kernel** ``_k(X, SHAPE)`` for components that stand alone at their
  level: per-bin code over Python floats for one component, or over NumPy
  vectors (one column per component) for several of identical shape;
* a **wave kernel** ``_w(XS, BINS)`` for components linked only through lagged
  references to each other (a chain of delays, a ring of queues): they step
  together, one bin at a time, holding their values in one ``(bins, columns)``
  array. Components of identical shape form a group that runs as vectors,
  reading its peers' past by index; a group of one runs on floats. Within a
  bin the groups' order does not matter (no group reads a peer's present),
  and histories of compound SHIFT arguments are recorded after every group.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from flowtime.engine.codegen import ARITHMETIC, CMP_NAMES, Code, conv_literal, pulse_literal, vector_expr
from flowtime.expr.syntax import BinOp, Call, Expr, Num, Ref, Unary, fold

_UFUNCS = {"+": "np.add", "-": "np.subtract", "*": "np.multiply"}


class _Naming:
    """How one group's per-bin code reads and stores loop values."""

    def __init__(self, prefix: str, scalar: bool) -> None:
        self.p = prefix
        self.scalar = scalar
        self.zero = "0.0" if scalar else f"{prefix}ZERO"
        self.lags: set[int] = set()

    def call(self, name: str) -> str:
        """Per-bin function names: on floats, or on vectors across components."""
        return f"_p_{name}" if self.scalar else f"_v_{name}"

    def compare(self, op: str) -> str:
        return f"_q_{CMP_NAMES[op]}" if self.scalar else f"_w_{CMP_NAMES[op]}"

    def divide(self) -> str:
        return "_pdiv" if self.scalar else "_vdiv"

    def own_hist(self, i: int, k: int) -> str:
        raise NotImplementedError

    def own_store(self, i: int, value: str) -> str:
        raise NotImplementedError

    def peer_hist(self, j: int, k: int) -> str:
        raise NotImplementedError

    def fused_store(self, i: int, a: str, op: str, b: str) -> str | None:
        """One statement computing ``a op b`` into member ``i``'s storage as ``c{i}``, if supported."""
        return None

    def peer_now(self, j: int) -> str:
        raise NotImplementedError


class _LoopNaming(_Naming):
    """A standalone loop kernel: member ``i``'s series is ``o{i}`` (a list, or a (bins, n) array)."""

    def own_hist(self, i: int, k: int) -> str:
        return f"{self.p}o{i}[t - {k}] if t >= {k} else {self.zero}"

    def own_store(self, i: int, value: str) -> str:
        return f"{self.p}o{i}[t] = {value}"


class _WaveNaming(_Naming):
    """
    A group inside a wave kernel. ``R{k}`` is the row of every wave value ``k``
    bins back (zeros before the start) and ``CUR`` the current row; the group's
    own columns (``O{i}``) and its peers' (``P{j}``) are globals bound per group:
    ints for a group of one, slices or index arrays for vector groups.
    """

    def own_hist(self, i: int, k: int) -> str:
        self.lags.add(k)
        return f"R{k}.item({self.p}O{i})" if self.scalar else f"R{k}[{self.p}O{i}]"

    def own_store(self, i: int, value: str) -> str:
        return f"CUR[{self.p}O{i}] = {value}"

    def fused_store(self, i: int, a: str, op: str, b: str) -> str | None:
        if self.scalar:
            return None
        # Compute straight into the member's columns: no temporary, no copy.
        return f"{self.p}c{i} = {_UFUNCS[op]}({a}, {b}, out=CUR[{self.p}O{i}])"

    def peer_hist(self, j: int, k: int) -> str:
        self.lags.add(k)
        return f"R{k}.item({self.p}P{j})" if self.scalar else f"R{k}[{self.p}P{j}]"

    def peer_now(self, j: int) -> str:
        return f"CUR.item({self.p}P{j})" if self.scalar else f"CUR[{self.p}P{j}]"


@dataclass
class LoopParts:
    """The generated pieces of one component's (or one group's) per-bin code."""

    members: list[str]
    pre: list[str]  # hoisted whole-series statements, before the loop
    body: list[str]  # per bin: compute and store each member
    tail: list[str]  # per bin, after every body: record histories of compound SHIFT arguments
    histories: int  # buffers hh0.. for those histories
    externals: list[str]  # node ids read from outside, X[i] in member order of first use
    peers: list[str] = field(default_factory=list)  # wave members of other components, P slot order
    constants: list[float] = field(default_factory=list)  # the numbers in the code, K slot order

    @property
    def signature(self) -> str:
        """Equal for components of identical shape (which can then run as one vector group)."""
        return "\n".join([*self.pre, "#", *self.body, "#", *self.tail])


def loop_parts(members: list[str], asts: dict[str, Expr], naming: _Naming,
               peers: frozenset[str] = frozenset()) -> LoopParts:
    """
    Per-bin code computing ``members`` (in an order where every lag-0 read is
    of an earlier member). ``peers`` are other components' members this code
    may read in the past (through SHIFT), as a wave kernel's groups do.
    """
    p = naming.p
    member_set = set(members)
    mindex = {m: i for i, m in enumerate(members)}
    externals: dict[str, int] = {}
    peer_slots: dict[str, int] = {}
    pre = Code(f"{p}h")
    body = Code(f"{p}t")
    tail: list[str] = []
    histories = [0]
    shape = f"{p}SHAPE"
    arithmetic: dict[str, tuple[str, str, str]] = {}  # temporary -> (a, op, b) it was computed as

    def ext_ref(name: str) -> str:
        if name not in externals:
            externals[name] = len(externals)
        return f"{p}X[{externals[name]}]"

    def peer_slot(name: str) -> int:
        if name not in peer_slots:
            peer_slots[name] = len(peer_slots)
        return peer_slots[name]

    # Numbers are slots (K0, K1, ...), not literals: loops that differ only in
    # their numbers (a delay chain with a rate per stage) share one shape and run
    # as one vector group, each component with its own column of constants.
    constants: list[float] = []

    def number(value: float) -> str:
        constants.append(float(value))
        return f"{p}K{len(constants) - 1}"

    # Which subtrees read a loop value: one pass per expression, not one per subtree.
    looped = member_set | peers
    dependent: set[int] = set()

    def mark(n: Expr, kids: list[bool]) -> bool:
        hit = (isinstance(n, Ref) and n.name in looped) or any(kids)
        if hit:
            dependent.add(id(n))
        return hit

    for m in members:
        fold(asts[m], mark)

    def hoist(e: Expr) -> str:
        if isinstance(e, Num):
            return number(e.value)
        val = vector_expr(e, ext_ref, pre, shape=shape, number=number)
        name = pre.emit(f"_full_s({val}, {shape})" + (".tolist()" if naming.scalar else ""))
        return f"{name}[t]"

    def per_bin(root: Expr, code: Code) -> str:
        """
        Emit the per-bin statements of ``root`` into ``code``; return the operand
        holding its value. Post-order with an explicit stack, children left to
        right: a loop's expression may be thousands deep (a long sum).
        """
        done: list[str] = []  # operands of finished subtrees
        # ("visit", expr, code) or a continuation that combines the operands on ``done``
        stack: list[tuple[Any, ...]] = [("visit", root, code)]
        while stack:
            step, *rest = stack.pop()
            if step == "visit":
                e, c = rest
                if id(e) not in dependent:
                    done.append(hoist(e))
                elif isinstance(e, Ref):
                    # Only compound SHIFT arguments (recorded after every body) read a peer's present.
                    done.append(f"{p}c{mindex[e.name]}" if e.name in member_set
                                else naming.peer_now(peer_slot(e.name)))
                elif isinstance(e, Unary):
                    if e.op == "-":
                        stack.append(("neg", c))
                    stack.append(("visit", e.operand, c))
                elif isinstance(e, BinOp):
                    stack += [("binop", e.op, c), ("visit", e.right, c), ("visit", e.left, c)]
                elif isinstance(e, Call) and e.name == "SHIFT":
                    lag_node, arg = e.args[1], e.args[0]
                    assert isinstance(lag_node, Num)
                    k = int(lag_node.value)
                    if k == 0:
                        stack.append(("visit", arg, c))
                    elif isinstance(arg, Ref) and arg.name in member_set:
                        done.append(c.emit(naming.own_hist(mindex[arg.name], k)))
                    elif isinstance(arg, Ref):
                        done.append(c.emit(naming.peer_hist(peer_slot(arg.name), k)))
                    else:
                        # The history of a compound argument, recorded at the end of each bin.
                        src = f"{p}hh{histories[0]}"
                        histories[0] += 1
                        tail_code = Code(f"{src}_")
                        stack += [("shift", src, tail_code, k, c), ("visit", arg, tail_code)]
                elif isinstance(e, Call) and e.name == "CONV":
                    # The argument's value per bin goes into a history; the sum reads it back.
                    stack += [("conv", conv_literal(e), c), ("visit", e.args[0], c)]
                elif isinstance(e, Call) and e.name == "PULSE":
                    # Only the amplitude can read a loop value (a PULSE without one is hoisted).
                    stack += [("pulse", pulse_literal(e), c), ("visit", e.args[2], c)]
                else:
                    assert isinstance(e, Call)
                    stack.append(("call", e.name, len(e.args), c))
                    stack += [("visit", arg, c) for arg in reversed(e.args)]
            elif step == "neg":
                (c,) = rest
                done.append(c.emit(f"-{done.pop()}"))
            elif step == "binop":
                op, c = rest
                b = done.pop()
                a = done.pop()
                if op in ARITHMETIC:
                    out = c.emit(f"{a} {op} {b}")
                    arithmetic[out] = (a, op, b)
                elif op == "/":
                    out = c.emit(f"{naming.divide()}({a}, {b})")
                else:
                    out = c.emit(f"{naming.compare(op)}({a}, {b})")
                done.append(out)
            elif step == "conv":
                kernel, c = rest
                src = f"{p}hh{histories[0]}"
                histories[0] += 1
                c.lines.append(f"{src}[t] = {done.pop()}")
                zero = "" if naming.scalar else f", {naming.zero}"
                done.append(c.emit(f"{'_pconv' if naming.scalar else '_vconv'}({src}, t, {kernel}{zero})"))
            elif step == "pulse":
                timing, c = rest
                period, phase = timing.split(", ")
                done.append(c.emit(f"{done.pop()} if t >= {phase} and (t - {phase}) % {period} == 0 "
                                   f"else {naming.zero}"))
            elif step == "shift":
                src, tail_code, k, c = rest
                val = done.pop()
                tail.extend(tail_code.lines)
                tail.append(f"{src}[t] = {val}")
                done.append(c.emit(f"{src}[t - {k}] if t >= {k} else {naming.zero}"))
            else:
                name, n, c = rest
                args = done[len(done) - n:]
                del done[len(done) - n:]
                done.append(c.emit(f"{naming.call(name)}({', '.join(args)})"))
        return done[0]

    for m in members:
        arithmetic.clear()
        val = per_bin(asts[m], body)
        i = mindex[m]
        fused = None
        if val in arithmetic and body.lines[-1].startswith(f"{val} = "):
            fused = naming.fused_store(i, *arithmetic[val])
        if fused is not None:
            body.lines[-1] = fused
        else:
            body.lines.append(f"{p}c{i} = {val}")
            body.lines.append(naming.own_store(i, f"{p}c{i}"))
    return LoopParts(members, pre.lines, body.lines, tail, histories[0], list(externals), list(peer_slots),
                     constants)


# ---------------------------------------------------------------------------
# standalone loops


@dataclass
class LoopKernel:
    members: list[str]
    externals: list[str]
    constants: list[float]
    scalar_source: str
    vector_source: str

    @property
    def shape_key(self) -> str:
        return self.scalar_source


def _loop_source(parts: LoopParts, scalar: bool) -> str:
    alloc = "[0.0] * BINS" if scalar else "np.zeros(SHAPE, dtype=np.float64)"
    lines = ["def _k(X, K, SHAPE):", "    BINS = SHAPE[0]"]
    if not scalar:
        lines.append("    ZERO = np.zeros(SHAPE[1:], dtype=np.float64)")
    lines += [f"    K{j} = K[{j}]" for j in range(len(parts.constants))]
    lines += [f"    {s}" for s in parts.pre]
    lines += [f"    o{i} = {alloc}" for i in range(len(parts.members))]
    lines += [f"    hh{i} = {alloc}" for i in range(parts.histories)]
    lines.append("    for t in range(BINS):")
    lines += [f"        {s}" for s in parts.body + parts.tail]
    lines.append(f"    return [{', '.join(f'o{i}' for i in range(len(parts.members)))}]")
    return "\n".join(lines)


def loop_kernel(members: list[str], asts: dict[str, Expr]) -> LoopKernel:
    """
    ``_k(X, K, SHAPE)``: X holds the external series (one per ``externals``), K
    the constants, SHAPE is (bins,) on floats or (bins, n) for n components
    batched as columns (then each X is (bins, n) and each K has n values).
    """
    scalar = loop_parts(members, asts, _LoopNaming("", True))
    vector = loop_parts(members, asts, _LoopNaming("", False))
    return LoopKernel(members, scalar.externals, scalar.constants, _loop_source(scalar, True),
                      _loop_source(vector, False))


# ---------------------------------------------------------------------------
# waves: components linked through lagged references, stepped together


@dataclass
class WaveGroup:
    """Components of one shape inside a wave: their columns and their peers' columns."""

    components: list[list[str]]
    externals: list[list[str]]  # per component, X slot order
    constants: list[object]  # per K slot: a float (group of one) or an array, one value per component
    own: list[object]  # per member slot: an int (group of one), a slice or an index array
    peers: list[object]  # per peer slot, likewise


@dataclass
class WaveKernel:
    source: str
    groups: list[WaveGroup]
    columns: dict[str, list[int]]  # member id -> its columns (one per lane) in the (bins, columns) result
    bindings: dict[str, object]  # globals the source reads: column slices and index arrays
    lanes: int = 1


def _columns(cols: list[int], scalar: bool = True) -> object:
    """An int for one column (read as a float), a slice for a run of consecutive ones, else an index array."""
    if len(cols) == 1 and scalar:
        return cols[0]
    if all(b == a + 1 for a, b in itertools.pairwise(cols)):
        return slice(cols[0], cols[-1] + 1)
    return np.array(cols, dtype=np.intp)


def wave_kernel(components: list[list[str]], asts: dict[str, Expr], lanes: int = 1, *,
                vector: bool = False) -> WaveKernel:
    """
    One kernel stepping ``components`` together. Each may read the others'
    members only through SHIFT with a lag >= 1 (the scheduler guarantees it).
    With ``lanes`` > 1 every component runs ``lanes`` times side by side (one
    lane per scenario of ``Plan.evaluate_many``): a member's value is then
    ``lanes`` columns. ``vector`` makes every group a vector group (as lanes > 1
    does), so the kernel reads ``(bins, lanes)`` inputs even for one lane.
    """
    everyone = frozenset(m for c in components for m in c)
    shapes: dict[str, list[tuple[list[str], LoopParts]]] = {}
    for comp in components:
        parts = loop_parts(comp, asts, _WaveNaming("", True), everyone - set(comp))
        shapes.setdefault(parts.signature, []).append((comp, parts))

    # Columns: member slot by member slot, and within a slot group by group (and
    # lane by lane), so a vector group's own columns for one slot are a slice -
    # and so are its peers' in a chain, where component k reads slot i of k - 1.
    columns: dict[str, list[int]] = {}
    count = 0
    for i in range(max(len(c) for c in components)):
        for entries in shapes.values():
            for comp, _ in entries:
                if i < len(comp):
                    columns[comp[i]] = list(range(count, count + lanes))
                    count += lanes

    groups: list[WaveGroup] = []
    bindings: dict[str, object] = {}
    pre: list[str] = []
    alloc: list[str] = []
    body: list[str] = []
    tail: list[str] = []
    lags: set[int] = set()
    for gi, entries in enumerate(shapes.values()):
        size = len(entries) * lanes
        scalar = size == 1 and not vector
        prefix = f"g{gi}_"
        naming = _WaveNaming(prefix, scalar)
        parts = loop_parts(entries[0][0], asts, naming, everyone - set(entries[0][0]))
        lags |= naming.lags
        own = [_columns([c for comp, _ in entries for c in columns[comp[i]]], scalar)
               for i in range(len(entries[0][0]))]
        peer = [_columns([c for _, ps in entries for c in columns[ps.peers[j]]], scalar)
                for j in range(len(parts.peers))]
        for i, cols in enumerate(own):
            bindings[f"{prefix}O{i}"] = cols
        for j, cols in enumerate(peer):
            bindings[f"{prefix}P{j}"] = cols
        constants: list[object] = [
            ks[0] if scalar else np.repeat(np.array(ks, dtype=np.float64), lanes)
            for ks in zip(*(ps.constants for _, ps in entries), strict=True)
        ]
        groups.append(WaveGroup([c for c, _ in entries], [ps.externals for _, ps in entries], constants,
                                own, peer))
        shape = "(BINS,)" if scalar else f"(BINS, {size})"
        pre.append(f"{prefix}X = XS[{gi}]")
        pre += [f"{prefix}K{j} = KS[{gi}][{j}]" for j in range(len(constants))]
        pre.append(f"{prefix}SHAPE = {shape}")
        if not scalar:
            pre.append(f"{prefix}ZERO = np.zeros({size}, dtype=np.float64)")
        pre += parts.pre
        hist_alloc = "[0.0] * BINS" if scalar else f"np.zeros({prefix}SHAPE, dtype=np.float64)"
        alloc += [f"{prefix}hh{i} = {hist_alloc}" for i in range(parts.histories)]
        body += parts.body
        tail += parts.tail

    # Every column of every row is stored before it is read: no need to zero S.
    lines = ["def _w(XS, KS, BINS):", f"    S = np.empty((BINS, {count}), dtype=np.float64)",
             f"    ZROW = np.zeros({count}, dtype=np.float64)"]
    lines += [f"    {s}" for s in pre + alloc]
    lines.append("    for t in range(BINS):")
    lines.append("        CUR = S[t]")
    lines += [f"        R{k} = S[t - {k}] if t >= {k} else ZROW" for k in sorted(lags)]
    lines += [f"        {s}" for s in body + tail]
    lines.append("    return S")
    return WaveKernel("\n".join(lines), groups, columns, bindings, lanes)
