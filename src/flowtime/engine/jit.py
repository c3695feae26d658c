"""
Compiled per-bin kernels (Numba): an optional accelerator for feedback loops.

A *site* is one feedback step of a plan - standalone loops of one shape, or a
wave of loops reading each other's past. Its compiled kernel computes exactly
what the Python kernels of ``engine.feedback`` compute, bit for bit: the same
float64 operations on the same numbers (MIN/MAX/CLAMP give +0 for a zero,
division by zero gives 0, comparisons give 1.0/0.0, FLOOR/CEIL/ROUND/MOD keep
the sign rules of ``expr.functions``). Subexpressions the Python kernels
hoist over whole series are computed bin by bin here: element for element,
the same operations. A loop calling EXP, LOG or POW is left to the Python
kernels: NumPy computes those with its own CPU-dispatched routines and Numba
with the C library's, which differ in the last bit (0015).

Numba is imported only when a kernel is compiled: with ``mode`` None (auto) a
site compiles from its second evaluation (or at once for a very long first
one), never for tiny loops; True compiles while planning; False never. Compiled
code is kept on disk (``cache_dir()``), keyed by the hash of its source, so a
new process loads it instead of compiling. Whatever the reason a site is not
compiled (no Numba, an unsupported function, a kernel too large), the Python
kernel runs and ``Site.state`` says why.

Kernel layout: every member of the site is a column of ``S`` (columns, lanes,
bins), a block kept by the site and reused once no result handed out from it
is alive (``engine.blocks``). External series are read where they are: row e
of ``XP`` gives the address of external e and its lane and bin strides, so a
long series is neither copied nor allocated again per evaluation; short ones
(``COPY_MAX``) are copied into ``XS`` (externals, lanes, bins), which costs
less than asking NumPy for their addresses. Components of one shape form a
group that shares code: group g's integer table ``IXg`` holds, per component,
its own columns, its peers' columns and its externals' rows; ``KGg`` its
numbers. So loops that differ only in their numbers (the stages of a
pipeline) share one compiled kernel.

A standalone loop's site also computes its *satellites* (``schedule.satellites``,
0029): small acyclic nodes it reads or that read it, as extra columns before
and after its members, so they cost no whole-series NumPy calls; the plan
computes them with programs when the site runs no compiled kernel with them.
"""

from __future__ import annotations

import _thread  # its locks, without threading's import (on every start-up path: plan imports this module)
import linecache
import math
import os
import weakref
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from flowtime.expr import functions as fx
from flowtime.expr.syntax import Array, BinOp, Call, Expr, Num, Ref, Unary, walk

if TYPE_CHECKING:
    from flowtime.engine.blocks import Pool

Series = npt.NDArray[np.float64]

# With mode None (auto) a site compiles on this evaluation, unless one
# evaluation of it is smaller than AUTO_MIN_WORK bin-steps (bins x lanes x loops:
# such loops run in well under a millisecond in Python, and a model evaluated a
# few times - most tests, most CLI runs - should not pay Numba's import); a
# first evaluation of AUTO_EAGER_WORK bin-steps or more compiles at once (its
# Python loop would cost about what a compile does).
AUTO_CALLS = 2
AUTO_MIN_WORK = 256
AUTO_EAGER_WORK = 1_000_000
NAN = math.nan  # the NaN of s_min/s_max, read by generated kernels
MAX_STATEMENTS = 1500  # per-bin statements per kernel: past this, compiling takes seconds
NO_NUMBA = "numba is not installed (pip install 'flowtime[jit]')"
# Externals of at most this many values per series (bins x lanes) are copied
# into XS: a copy of 16 KiB costs about what NumPy takes to say where an array
# is (~1 us). Longer ones are read in place (a copy would be memory traffic and,
# for a fresh block, page faults: at 10^6 bins as long as the kernel itself).
COPY_MAX = 2048
# Result blocks of at least this many bytes come from the site's pool; smaller
# ones are fresh (malloc hands back freed memory without page faults, and the
# pool's lock and reference counts would cost more than the allocation).
POOL_MIN_BYTES = 1 << 16
_F8 = np.dtype(np.float64)
_NO_ROWS = np.empty((0, 1, 1), dtype=np.float64)  # XS when every external is read in place
_NO_POINTERS = np.empty((0, 3), dtype=np.int64)  # XP when every external is copied (never written)

# Functions whose bits Numba cannot reproduce: NumPy's EXP/LOG/POW (the Python
# kernels call them on floats too) are its own SIMD routines.
UNSUPPORTED = {"EXP": "EXP", "LOG": "LOG", "POW": "POW"}
_COMPARE = {"<": "<", "<=": "<=", ">": ">", ">=": ">=", "==": "==", "!=": "!="}


# The calls ``body`` writes per bin; the functions as ``expr.functions`` holds them when this module is imported.
COMPILED_CALLS = frozenset({"MIN", "MAX", "CLAMP", "ABS", "SQRT", "FLOOR", "CEIL", "ROUND", "MOD", "IF", "STEP",
                            "SHIFT", "CONV", "PULSE"})
_AS_IMPORTED = {name: f.vector for name, f in fx.FUNCTIONS.items()}


def compilable(e: Expr) -> bool:
    """
    Whether ``body`` writes ``e`` with the bits of the vector functions: only
    calls it knows, none of them replaced in ``expr.functions.FUNCTIONS``
    since (the programs would call a replacement; a kernel cannot).
    """
    for node in walk(e):
        if isinstance(node, Call):
            f = fx.FUNCTIONS.get(node.name)
            if node.name not in COMPILED_CALLS or f is None or f.vector is not _AS_IMPORTED.get(node.name):
                return False
    return True


class Unsupported(Exception):
    """A site with no compiled form: the Python kernel runs it."""


# ---------------------------------------------------------------------------
# code generation: one component's per-bin statements


class Body:
    """The per-bin code of one component, with its slots (filled per component from ``IXg``/``KGg``)."""

    # A plain class: a dataclass would cost its generated methods' compile on every start-up (0013).
    def __init__(self, lines: list[str], own: int, peers: list[str], externals: list[str], constants: list[float],
                 statements: int) -> None:
        self.lines = lines
        self.own = own  # member columns o0..
        self.peers = peers  # peer columns p0.. (other components' members, read in the past)
        self.externals = externals  # external rows e0..
        self.constants = constants  # numbers k0..
        self.statements = statements

    @property
    def signature(self) -> tuple[object, ...]:
        return (self.own, len(self.peers), len(self.externals), len(self.constants), tuple(self.lines))


def body(members: Sequence[str], asts: Mapping[str, Expr], peers: frozenset[str] = frozenset(),
         bin_major: bool = False) -> Body:
    """
    Statements computing ``members`` at bin ``t`` of lane ``l``, in order (a
    lag-0 read is of an earlier member). ``SHIFT(e, k)`` evaluates ``e`` at
    ``t - k`` where ``t >= k`` (0 before): a member's or peer's past is read from
    ``S``, indexed (column, lane, bin), or (lane, bin, column) when
    ``bin_major``; external ``xi`` through its pointer, lane stride ``xli`` and
    bin stride ``xbi`` (set up by ``kernel_source``).
    """

    def at_bin(array: str, column: str, at: str) -> str:
        return f"{array}[l, {at}, {column}]" if bin_major else f"{array}[{column}, l, {at}]"

    mindex = {m: i for i, m in enumerate(members)}
    done_members: set[int] = set()
    peer_slots: dict[str, int] = {}
    ext_slots: dict[str, int] = {}
    constants: list[float] = []
    lines: list[str] = []
    count = [0]

    def fresh() -> str:
        count[0] += 1
        return f"a{count[0] - 1}"

    def put(ind: int, text: str) -> None:
        lines.append("    " * ind + text)

    def slot(table: dict[str, int], name: str) -> int:
        return table.setdefault(name, len(table))

    def ref(name: str, d: int) -> str:
        at = "t" if d == 0 else f"t - {d}"
        if name in mindex:
            i = mindex[name]
            if d == 0:
                if i not in done_members:
                    raise Unsupported(f"{name} is read before it is computed")
                return f"v{i}"
            return at_bin("S", f"o{i}", at)
        if name in peers:
            if d == 0:
                raise Unsupported(f"{name} (another loop of the wave) is read in the same bin")
            return at_bin("S", f"p{slot(peer_slots, name)}", at)
        e = slot(ext_slots, name)
        return f"x{e}[l * xl{e} + {'t' if d == 0 else f'(t - {d})'} * xb{e}]"

    def min_max(ind: int, args: list[str], op: str) -> str:
        if len(args) == 1:
            return args[0]
        r = fresh()
        put(ind, f"{r} = {args[0]}")
        for x in args[1:]:
            # A NaN anywhere gives NaN; ties keep the earlier operand; then +0 for a zero (s_min, s_max).
            put(ind, f"{r} = NAN if ({x} != {x} or {r} != {r}) else ({x} if {x} {op} {r} else {r})")
        put(ind, f"{r} = {r} + 0.0")
        return r

    def call(ind: int, name: str, a: list[str]) -> str:
        if name in ("MIN", "MAX"):
            return min_max(ind, a, "<" if name == "MIN" else ">")
        if name == "CLAMP":  # s_max(lo, s_min(hi, v))
            return min_max(ind, [a[1], min_max(ind, [a[2], a[0]], "<")], ">")
        r = fresh()
        if name == "ABS":
            put(ind, f"{r} = abs({a[0]})")
        elif name == "SQRT":
            put(ind, f"{r} = math.sqrt({a[0]}) if {a[0]} >= 0.0 else NAN")
        elif name in ("FLOOR", "CEIL"):
            # IEEE floor/ceil of a float; a zero result takes x's sign (s_floor, s_ceil).
            put(ind, f"{r} = np.{name.lower()}({a[0]})")
            put(ind, f"if {r} == 0.0:")
            put(ind + 1, f"{r} = math.copysign(0.0, {a[0]})")
        elif name == "ROUND":  # half away from zero; a non-finite value is itself (s_round)
            x = a[0]
            put(ind, f"{r} = {x}")
            put(ind, f"if math.isfinite({x}):")
            put(ind + 1, f"{r} = math.copysign(np.trunc({x}), {x})")
            put(ind + 1, f"if abs({x} - {r}) >= 0.5:")
            put(ind + 2, f"{r} = {r} + math.copysign(1.0, {x})")
        elif name == "MOD":  # floored, as np.mod: C's fmod (exact), then the divisor's sign; b == 0 gives 0
            x, y = a
            put(ind, "if " + y + " == 0.0:")
            put(ind + 1, f"{r} = 0.0")
            put(ind, "else:")
            put(ind + 1, f"{r} = np.fmod({x}, {y})")
            put(ind + 1, f"if {r} != 0.0:")
            put(ind + 2, f"if ({y} < 0.0) != ({r} < 0.0):")
            put(ind + 3, f"{r} = {r} + {y}")
            put(ind + 1, "else:")
            put(ind + 2, f"{r} = math.copysign(0.0, {y})")
        elif name == "IF":
            put(ind, f"{r} = {a[1]} if {a[0]} != 0.0 else {a[2]}")
        elif name == "STEP":
            put(ind, f"{r} = 1.0 if {a[0]} >= {a[1]} else 0.0")
        else:
            raise Unsupported(f"{UNSUPPORTED.get(name, name)} has no bit-identical compiled form")
        return r

    def emit(root: Expr, ind: int) -> str:
        """Post-order with an explicit stack (an expression may be thousands of terms deep)."""
        done: list[str] = []
        stack: list[tuple[Any, ...]] = [("visit", root, 0, ind)]
        while stack:
            step, *rest = stack.pop()
            if step == "visit":
                e, d, i = rest
                if isinstance(e, Num):
                    constants.append(float(e.value))
                    done.append(f"k{len(constants) - 1}")
                elif isinstance(e, Ref):
                    done.append(ref(e.name, d))
                elif isinstance(e, Unary):
                    if e.op == "-":
                        stack.append(("neg", i))
                    stack.append(("visit", e.operand, d, i))
                elif isinstance(e, BinOp):
                    stack += [("binop", e.op, i), ("visit", e.right, d, i), ("visit", e.left, d, i)]
                elif isinstance(e, Call) and e.name == "SHIFT":
                    lag = e.args[1]
                    assert isinstance(lag, Num)
                    k = int(lag.value)
                    if k == 0:
                        stack.append(("visit", e.args[0], d, i))
                    else:
                        # Before bin d + k the value is 0, and nothing of the argument is read.
                        put(i, f"if t >= {d + k}:")
                        stack += [("shift", fresh(), i), ("visit", e.args[0], d + k, i + 1)]
                elif isinstance(e, Array):  # values[t - d], 0 past its end
                    r = fresh()
                    names = []
                    for value in e.values:
                        constants.append(float(value))
                        names.append(f"k{len(constants) - 1}")
                    put(i, f"{r} = 0.0")
                    if names:
                        put(i, f"if t - {d} < {len(names)}:")
                        put(i + 1, f"{r} = ({', '.join(names)},)[t - {d}]")
                    done.append(r)
                elif isinstance(e, Call) and e.name == "CONV":
                    # s_conv: from +0, the terms j = 0, 1, ... of the argument at t - j, non-finite skipped.
                    kernel = fx.conv_kernel(e.args[1])
                    assert kernel is not None
                    r = fresh()
                    put(i, f"{r} = 0.0")
                    stack.append(("push", r))
                    for j in reversed(range(len(kernel))):
                        constants.append(float(kernel[j]))
                        stack += [("term", r, f"k{len(constants) - 1}", i), ("visit", e.args[0], d + j, i + 1),
                                  ("line", i, f"if t >= {d + j}:")]
                elif isinstance(e, Call) and e.name == "PULSE":
                    timing = fx.pulse_timing(e)
                    assert not isinstance(timing, str)
                    period, phase = timing
                    r = fresh()
                    put(i, f"{r} = 0.0")
                    put(i, f"if t - {d} >= {phase} and (t - {d} - {phase}) % {period} == 0:")
                    if len(e.args) > 2:
                        stack += [("set", r, i), ("visit", e.args[2], d, i + 1)]
                    else:
                        put(i + 1, f"{r} = 1.0")
                        done.append(r)
                else:
                    assert isinstance(e, Call)
                    if e.name in UNSUPPORTED:
                        raise Unsupported(f"{e.name} has no bit-identical compiled form (0015)")
                    stack.append(("call", e.name, len(e.args), i))
                    stack += [("visit", arg, d, i) for arg in reversed(e.args)]
            elif step == "line":
                i, text = rest
                put(i, text)
            elif step == "term":
                r, k, i = rest
                v = done.pop()
                put(i + 1, f"if {v} - {v} == 0.0:")
                put(i + 2, f"{r} = {r} + {v} * {k}")
            elif step == "push":
                done.append(rest[0])
            elif step == "set":
                r, i = rest
                put(i + 1, f"{r} = {done.pop()}")
                done.append(r)
            elif step == "neg":
                (i,) = rest
                r = fresh()
                put(i, f"{r} = -{done.pop()}")
                done.append(r)
            elif step == "binop":
                op, i = rest
                b = done.pop()
                a = done.pop()
                r = fresh()
                if op in ("+", "-", "*"):
                    put(i, f"{r} = {a} {op} {b}")
                elif op == "/":
                    put(i, f"{r} = {a} / {b} if {b} != 0.0 else 0.0")
                else:
                    put(i, f"{r} = 1.0 if {a} {_COMPARE[op]} {b} else 0.0")
                done.append(r)
            elif step == "shift":
                r, i = rest
                put(i + 1, f"{r} = {done.pop()}")
                put(i, "else:")
                put(i + 1, f"{r} = 0.0")
                done.append(r)
            else:
                name, n, i = rest
                args = done[len(done) - n:]
                del done[len(done) - n:]
                done.append(call(i, name, args))
        return done[0]

    for m in members:
        i = mindex[m]
        put(0, f"v{i} = {emit(asts[m], 0)}")
        put(0, f"{at_bin('S', f'o{i}', 't')} = v{i}")
        done_members.add(i)
    return Body(lines, len(members), list(peer_slots), list(ext_slots), constants, count[0] + len(lines))


def kernel_source(groups: Sequence[Body], bin_major: bool = False) -> str:
    """
    ``_j(XS, XP, S, IX0, KG0, IX1, KG1, ...)`` fills ``S``. External e is
    row e of ``XP`` (address, lane stride, bin stride, in float64s), or, when
    ``XP`` has no rows, row e of ``XS``. Loops that read no
    other loop (``bin_major`` False) run one after another, each over all its
    bins: every series is read and written in order, so the cost per bin does
    not grow with the grid. A wave (``bin_major``) steps lane by lane, bin by
    bin, group by group (no group reads another's present), component by
    component, on (lane, bin, column) arrays: one bin of every series is one
    row in memory.
    """
    args = ["XS", "XP", "S"] + [f"{x}{g}" for g in range(len(groups)) for x in ("IX", "KG")]
    lines = [f"def _j({', '.join(args)}):",
             "    DIRECT = XP.shape[0] > 0",
             "    XSA = np.int64(XS.ctypes.data)",
             "    XSE = XS.strides[0]",
             "    XSL = XS.strides[1] // 8"]
    if bin_major:
        lines += ["    L = S.shape[0]", "    BINS = S.shape[1]",
                  "    for l in range(L):", "        for t in range(BINS):"]
        depth = 3
    else:
        lines += ["    L = S.shape[1]", "    BINS = S.shape[2]"]
        depth = 1
    for g, b in enumerate(groups):
        pad = "    " * (depth + 1)
        lines.append("    " * depth + f"for j in range(IX{g}.shape[1]):")
        names = ([f"o{i}" for i in range(b.own)] + [f"p{i}" for i in range(len(b.peers))]
                 + [f"e{i}" for i in range(len(b.externals))])
        lines += [f"{pad}{n} = IX{g}[{row}, j]" for row, n in enumerate(names)]
        for e in range(len(b.externals)):
            lines += [f"{pad}if DIRECT:",
                      f"{pad}    x{e} = _ptr(XP[e{e}, 0])",
                      f"{pad}    xl{e} = XP[e{e}, 1]",
                      f"{pad}    xb{e} = XP[e{e}, 2]",
                      f"{pad}else:",
                      f"{pad}    x{e} = _ptr(XSA + e{e} * XSE)",
                      f"{pad}    xl{e} = XSL",
                      f"{pad}    xb{e} = 1"]
        lines += [f"{pad}k{c} = KG{g}[{c}, j]" for c in range(len(b.constants))]
        if not bin_major:
            lines += [f"{pad}for l in range(L):", f"{pad}    for t in range(BINS):"]
            pad += "        "
        lines += [pad + s for s in b.lines]
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------
# compiling, in process and on disk


def cache_dir() -> str:
    """
    Where compiled kernels are kept: ``$FLOWTIME_CACHE_DIR/jit``, else the
    user's cache directory (``$XDG_CACHE_HOME/flowtime/jit``, ``~/.cache/flowtime/jit``).
    A cache of compiled code, read only by Numba: the one place the engine
    looks at the environment (0015).
    """
    root = os.environ.get("FLOWTIME_CACHE_DIR") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache"), "flowtime")
    return os.path.join(root, "jit")


class Compiled:
    """A compiled kernel: ``run`` is Numba's entry point (no argument checks: the site builds every argument)."""

    def __init__(self, run: Callable[..., None], source: str, filename: str, origin: str, dispatcher: Any) -> None:
        self.run = run
        self.source = source
        self.filename = filename
        self.origin = origin  # "compiled", "loaded from the disk cache" or "compiled (no disk cache: ...)"
        self.dispatcher = dispatcher


_LOCK = _thread.allocate_lock()
_COMPILED: dict[str, Compiled] = {}  # by source: loops of one shape share a kernel across plans
_INTRINSICS: dict[str, Any] = {}


def _pointer() -> Any:
    """``_ptr(address)``: a float64 pointer, indexed ``p[i]`` in kernels (made once, after ``import numba``)."""
    if "_ptr" not in _INTRINSICS:
        from llvmlite import ir  # type: ignore[import-untyped]
        from numba.core import types
        from numba.extending import intrinsic

        pointer: Any = types.CPointer(types.float64)  # type: ignore[no-untyped-call]

        @intrinsic
        def _ptr(typingctx: Any, address: Any) -> Any:
            if not isinstance(address, types.Integer):
                return None

            def codegen(context: Any, builder: Any, signature: Any, args: Any) -> Any:
                return builder.inttoptr(args[0], ir.DoubleType().as_pointer())

            return pointer(address), codegen

        _INTRINSICS["_ptr"] = _ptr
    return _INTRINSICS["_ptr"]


def _disk_cache(py_func: Any, filename: str, key: str, directory: str) -> Any:
    """
    A Numba function cache for generated code, which has no source file: its
    index and object files go to ``directory``, stamped with the source's hash.
    """
    from numba.core import caching

    class Locator:
        def __init__(self, fn: Any, py_file: str) -> None:
            self._py_file = py_file
            self._lineno = fn.__code__.co_firstlineno

        def ensure_cache_path(self) -> None:
            os.makedirs(directory, exist_ok=True)

        def get_cache_path(self) -> str:
            return directory

        def get_source_stamp(self) -> str:
            return key

        def get_disambiguator(self) -> str:
            return key[:16]

        @classmethod
        def from_function(cls, fn: Any, py_file: str) -> Locator | None:
            if py_file != filename:
                return None
            try:
                made = cls(fn, py_file)
                made.ensure_cache_path()
            except OSError:
                return None
            return made

    class Impl(caching.CompileResultCacheImpl):
        _locator_classes = [Locator]  # noqa: RUF012 - Numba's own class attribute, overridden

    class Cache(caching.FunctionCache):
        _impl_class = Impl

    return Cache(py_func)  # type: ignore[no-untyped-call]


def compile_kernel(source: str, groups: int) -> Compiled:
    """The compiled kernel of ``source`` (a ``kernel_source``): from this process, the disk cache or Numba."""
    with _LOCK:
        hit = _COMPILED.get(source)
        if hit is not None:
            return hit
        try:
            import numba
        except ImportError as exc:
            raise Unsupported(NO_NUMBA) from exc
        import hashlib
        key = hashlib.sha256(f"{numba.__version__}\n{source}".encode()).hexdigest()
        filename = f"<flowtime-jit-{key[:16]}>"
        linecache.cache[filename] = (len(source), None, source.splitlines(keepends=True), filename)
        # Named as this module, whose globals hold the same np, math and NAN: a kernel loaded
        # from the disk cache rebuilds its globals by importing its module by name.
        env: dict[str, Any] = {"__name__": __name__, "np": np, "math": math, "NAN": NAN, "_ptr": _pointer()}
        exec(compile(source, filename, "exec"), env)
        py_func = env["_j"]
        f8_3, f8_2, i8_2 = numba.float64[:, :, ::1], numba.float64[:, ::1], numba.int64[:, ::1]
        signature = numba.void(f8_3, i8_2, f8_3, *([i8_2, f8_2] * groups))
        dispatcher = numba.njit(error_model="numpy", nogil=True)(py_func)
        note = ""
        try:
            dispatcher._cache = _disk_cache(py_func, filename, key, cache_dir())  # type: ignore[attr-defined]
            dispatcher.compile(signature)
        except Exception as exc:  # an unwritable or damaged cache, or a Numba whose cache classes changed
            note = f" (no disk cache: {type(exc).__name__}: {exc})"
            dispatcher = numba.njit(error_model="numpy", nogil=True)(py_func)
            dispatcher.compile(signature)
        loaded = sum(dispatcher.stats.cache_hits.values()) > 0
        origin = "loaded from the disk cache" if loaded else "compiled" + note
        entry = dispatcher.overloads[signature.args].entry_point  # type: ignore[attr-defined]
        made = Compiled(entry, source, filename, origin, dispatcher)
        _COMPILED[source] = made
        return made


# ---------------------------------------------------------------------------
# sites: what a plan's feedback step asks of the accelerator


class Site:
    """
    One feedback step (loops or a wave) and its compiled kernel, once it has
    one. ``use(lanes)`` counts an evaluation and says whether to run the
    kernel; ``run`` computes every member's series into the plan's values.
    """

    def __init__(self, accel: Accelerator, components: Sequence[Sequence[str]], bins: int,
                 asts: Callable[[], Mapping[str, Expr]], register: Callable[[str, str], None],
                 satellites: frozenset[str] = frozenset()) -> None:
        self.accel = accel
        # Each component's series in per-bin order; a compiled kernel computes its satellites too
        # (acyclic nodes next to the loop: engine.schedule.satellites), the Python kernels do not.
        self.components = [list(c) for c in components]
        self.satellites = satellites
        self.absorbs = False  # whether the compiled kernel computes the satellites
        self.bins = bins
        self._asts = asts
        self._register = register
        self.calls = 0
        self.state = "python: not compiled (jit=False)" if accel.mode is False else "python: not compiled yet"
        self.kernel: Compiled | None = None
        self._closed = accel.mode is False
        self._lock = _thread.allocate_lock()
        self._columns: dict[str, int] = {}
        self._externals: list[str] = []
        self._tables: list[npt.NDArray[Any]] = []
        self._bin_major = False
        self._pool: Pool | None = None  # blocks of S: each handed out as rows of its read-only face
        # Where stable externals are (read-only arrays handed in again and again: the plan's const series),
        # so a run asks NumPy for the address of the others only (see ``_addresses``).
        self._seen: tuple[int, list[Any]] | None = None  # (lanes, weak refs) after the first run
        # (lanes, [(row, name, array)] kept, XP rows, [(row, name)] placed every run)
        self._stable: tuple[int, list[tuple[int, str, Any]], npt.NDArray[np.int64], list[tuple[int, str]]] | None = None
        if accel.mode is True:
            self.prepare()

    @property
    def members(self) -> list[str]:
        """The loops' members (not the satellites)."""
        return [m for c in self.components for m in c if m not in self.satellites]

    @property
    def layout(self) -> str:
        """How the compiled kernel holds series: "bin-major" for a wave, else "series-major"."""
        return "bin-major" if self._bin_major else "series-major"

    def use(self, lanes: int | None) -> bool:
        """Count one evaluation (``lanes`` None) or K scenarios at once; True: run the compiled kernel."""
        if self.kernel is not None:
            return True
        if self._closed:
            return False
        self.calls += 1
        work = self.bins * (lanes or 1) * len(self.components)
        if work >= AUTO_EAGER_WORK or (self.calls >= AUTO_CALLS and work >= AUTO_MIN_WORK):
            self.prepare()
        return self.kernel is not None

    def prepare(self) -> None:
        """Generate and compile the kernel now (once); on any reason not to, keep the Python kernel."""
        with self._lock:
            if self.kernel is not None or self._closed:
                return
            try:
                try:
                    self._build(self.components)
                except Unsupported:
                    if not self.satellites:
                        raise
                    # the loops alone, their satellites left to the programs (a satellite the kernel
                    # cannot write, or too many statements with them, must not cost the loops their kernel)
                    self._build([[m for m in c if m not in self.satellites] for c in self.components])
            except Unsupported as exc:
                self._fallback(str(exc))
            except Exception as exc:  # Numba refusing generated code: a bug to report, never a failed run
                self._fallback(f"compiling failed: {type(exc).__name__}: {exc}")

    def _fallback(self, reason: str) -> None:
        self._closed = True
        self.state = f"python: {reason}"
        self._register(f"<flowtime-jit-fallback: {', '.join(self.members)}>", f"# Python kernel kept: {reason}")

    def _build(self, components: list[list[str]]) -> None:
        asts = self._asts()
        everyone = frozenset(m for c in components for m in c)
        # Waves (loops reading each other's past) are stepped bin by bin on bin-major arrays.
        bin_major = any(body(comp, asts, everyone - set(comp)).peers for comp in components)
        shapes: dict[tuple[object, ...], list[tuple[list[str], Body]]] = {}
        for comp in components:
            b = body(comp, asts, everyone - set(comp), bin_major)
            shapes.setdefault(b.signature, []).append((comp, b))
        groups = list(shapes.values())
        if sum(g[0][1].statements for g in groups) > MAX_STATEMENTS:
            raise Unsupported(f"more than {MAX_STATEMENTS} per-bin statements: compiling would take too long")
        columns = {m: i for i, m in enumerate(m for g in groups for comp, _ in g for m in comp)}
        externals: dict[str, int] = {}
        tables: list[npt.NDArray[Any]] = []
        for entries in groups:
            ix = np.array([[columns[m] for m in comp] + [columns[p] for p in b.peers]
                           + [externals.setdefault(x, len(externals)) for x in b.externals]
                           for comp, b in entries], dtype=np.int64).T
            kg = np.array([b.constants for _, b in entries], dtype=np.float64).reshape(len(entries), -1).T
            tables += [np.ascontiguousarray(ix), np.ascontiguousarray(kg)]
        source = kernel_source([entries[0][1] for entries in groups], bin_major)
        kernel = compile_kernel(source, len(groups))
        from flowtime.engine.blocks import Pool  # threading: not on the start-up path

        self._pool = Pool()
        self._columns, self._externals, self._tables = columns, list(externals), tables
        self._bin_major = bin_major
        self.absorbs = not everyone.isdisjoint(self.satellites)  # before the kernel is there to be seen
        self.kernel = kernel
        self.state = f"compiled: {kernel.origin}"
        self._register(kernel.filename, source)

    def run(self, values: dict[str, Any], lanes: int | None) -> None:
        """
        Every member's series into ``values``: (bins,) for one evaluation,
        (lanes, bins) for K scenarios; read-only rows of a block of the site's
        pool (no one else writes it while they are alive), or of a fresh one
        if small (``POOL_MIN_BYTES``). Externals are read in place, or copied
        into a fresh ``XS`` if short (``COPY_MAX``).
        """
        assert self.kernel is not None and self._pool is not None
        bins = self.bins
        width = lanes or 1
        held: list[Series] = []  # converted externals: alive until the kernel has read them
        stable = self._stable
        if stable is not None and stable[0] == width:
            xs, xp = _NO_ROWS, stable[2].copy()
            for i, name, was in stable[1]:
                if values[name] is not was:
                    xp[i] = _place(values[name], width, bins, held)
            for i, name in stable[3]:
                xp[i] = _place(values[name], width, bins, held)
        else:
            given = [values[name] for name in self._externals]
            if bins * width <= COPY_MAX:
                xs = np.empty((len(self._externals), width, bins), dtype=np.float64)
                for i, v in enumerate(given):
                    xs[i] = v  # a series for every lane, or one per lane
                xp = _NO_POINTERS
            else:
                xs = _NO_ROWS
                xp = np.empty((len(self._externals), 3), dtype=np.int64)
                for i, v in enumerate(given):
                    xp[i] = _place(v, width, bins, held)
            if stable is None:
                self._remember(given, width, bins)
        n_col = len(self._columns)
        shape = (width, bins, n_col) if self._bin_major else (n_col, width, bins)
        if n_col * width * bins * 8 >= POOL_MIN_BYTES:
            if lanes is None and not self._bin_major:
                # One evaluation: each series is a row of the block, the rows made once per block
                # (a view per series per evaluation costs more than the kernel's own work at 10^3 bins).
                block, _, _, rows = self._pool.claim_rows(self.layout, (n_col, bins))
                self.kernel.run(xs, xp, block.reshape(shape), *self._tables)
                del held
                values.update(zip(self._columns, rows, strict=True))
                return
            s, face = self._pool.claim(self.layout, shape)
        else:
            s = face = np.empty(shape, dtype=np.float64)
        self.kernel.run(xs, xp, s, *self._tables)
        if face is s:
            face.flags.writeable = False
        del held
        for m, c in self._columns.items():
            if self._bin_major:
                values[m] = face[0, :, c] if lanes is None else face[:, :, c]
            else:
                values[m] = face[c, 0] if lanes is None else face[c]


    def _remember(self, given: list[Any], width: int, bins: int) -> None:
        """
        After two runs with the same lanes, the externals handed in both times as the same read-only float64
        array keep their XP row (their address and strides cannot change while we hold them); the rest are
        placed per run. Weak references between the two runs: no result block is kept alive by this.
        """
        seen = self._seen
        if seen is None or seen[0] != width:
            refs: list[Any] = []
            for v in given:
                try:
                    refs.append(weakref.ref(v))
                except TypeError:  # a float or list: never stable
                    refs.append(None)
            self._seen = (width, refs)
            return
        keep: list[tuple[int, str, Any]] = []
        others: list[tuple[int, str]] = []
        rows = np.zeros((len(given), 3), dtype=np.int64)
        for i, (name, v, r) in enumerate(zip(self._externals, given, seen[1], strict=True)):
            if (r is not None and r() is v and type(v) is np.ndarray and v.dtype == _F8
                    and not v.flags.writeable and v.base is None):
                rows[i] = _place(v, width, bins, [])
                keep.append((i, name, v))
            else:
                others.append((i, name))
        with self._lock:
            if self._stable is None:
                self._stable = (width, keep, rows, others)


def _place(value: Any, width: int, bins: int, held: list[Series]) -> tuple[int, int, int]:
    """
    Where a kernel reads ``value`` as ``width`` lanes of ``bins``: its address
    and its lane and bin strides in float64s (a lane stride of 0 repeats one
    series for every lane). A value not of float64, or with strides a pointer
    cannot follow, is converted first and the copy kept in ``held``.
    """
    a = value
    if type(a) is not np.ndarray or a.dtype != _F8:
        a = np.asarray(a, dtype=np.float64)
        held.append(a)
    shape = a.shape
    if a.ndim > 2 or (a.ndim >= 1 and shape[-1] != bins) or (a.ndim == 2 and shape[0] not in (1, width)):
        raise ValueError(f"a series of shape {shape} where ({width}, {bins}) lanes were expected")
    strides = a.strides
    if any(x < 0 or x % 8 for x in strides):
        a = np.ascontiguousarray(a)
        held.append(a)
        strides = a.strides
    lane = strides[0] // 8 if a.ndim == 2 and shape[0] > 1 else 0
    step = strides[-1] // 8 if a.ndim >= 1 else 0
    return a.ctypes.data, lane, step


class Accelerator:
    """
    A plan's compiled kernels: ``mode`` (None = auto, True, False) and one
    ``Site`` per feedback step; ``describe()`` says what runs each.
    """

    def __init__(self, mode: bool | None = None) -> None:
        self.mode = mode
        self.sites: list[Site] = []
        self._asts: Mapping[str, Expr] | None = None

    def site(self, components: Sequence[Sequence[str]], bins: int, asts: Callable[[], Mapping[str, Expr]],
             register: Callable[[str, str], None], satellites: frozenset[str] = frozenset()) -> Site:
        made = Site(self, components, bins, asts, register, satellites)
        self.sites.append(made)
        return made

    def loop_asts(self, compute: Callable[[], Mapping[str, Expr]]) -> Mapping[str, Expr]:
        """The loops' expressions, computed once per plan (for every site that needs them)."""
        if self._asts is None:
            self._asts = compute()
        return self._asts

    def prepare(self) -> None:
        """Compile every site now (what ``mode=True`` does while planning)."""
        for s in self.sites:
            s.prepare()

    def describe(self) -> list[dict[str, str]]:
        return [{"members": ", ".join(s.members), "state": s.state, "layout": s.layout} for s in self.sites]

    def __repr__(self) -> str:
        states = "; ".join(f"[{d['members']}] {d['state']}" for d in self.describe())
        return f"Accelerator(mode={self.mode!r}: {states or 'no feedback loops'})"
