"""
Acyclic nodes -> a program: a list of NumPy calls writing into one block.

A chunk of acyclic nodes (``engine.plan``) is lowered once into operations
``(function, a, b, out, node)`` over a list of value slots: the chunk's inputs,
constants, one row per node and a few scratch rows. Evaluating it is one loop
calling each ufunc with its output given (``np.add(x, y, out)``), so no series
is allocated per operation; the rows live in one block taken from a
``blocks.Pool`` and are handed out as read-only views. Measured against code
generation of the same calls, the loop is as fast and needs no compile (0016).

Every operation is the one today's vector functions perform, in the same order
on the same operands, so the bits are those of ``expr.functions``: ``a + b`` is
``np.add``; MIN/MAX are ``np.minimum``/``np.maximum`` in argument order and then
``+ 0.0``; division by an array divides and then writes +0 where the divisor is
zero. Functions without such a lowering (EXP, LOG, POW, ROUND, MOD, IF, and any
function replaced in ``expr.functions.FUNCTIONS``) are called as they are, on the
same values (numbers stay Python floats). Parts of an expression made of numbers
alone are computed once, while planning, by the same functions.

For K scenarios at once (``Plan.evaluate_many``) a node that depends on a
varying input is a ``(K, bins)`` row of a second block; the others stay
``(bins,)`` and broadcast. One layout is made per pattern of varying inputs.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from flowtime.engine.blocks import Pool
from flowtime.engine.codegen import shift_last
from flowtime.expr import functions as fx
from flowtime.expr.syntax import Array, BinOp, Call, Expr, Num, Ref, Unary, value_operands

Series = npt.NDArray[np.float64]
Op = tuple[Any, Any, int, int, str]  # (function, a, b, out, node); see _run
CONST_ARRAY_BINS = 4096  # up to here a number operand is a full array (a ufunc converts a float on every call)
DEEP = 200  # operands nested deeper than this are computed by one call (no input can exhaust Python's stack)

_BINARY = {"+": np.add, "-": np.subtract, "*": np.multiply, "<": np.less, "<=": np.less_equal,
           ">": np.greater, ">=": np.greater_equal, "==": np.equal, "!=": np.not_equal}
_UNARY_FN: dict[str, Any] = {"ABS": np.abs, "SQRT": np.sqrt, "FLOOR": np.floor, "CEIL": np.ceil}


# -- operations that are not a plain ufunc call ----------------------------------------------------

# NumPy deprecates a third positional argument of minimum and maximum: out= by keyword.
def _minimum(a: Any, b: Any, out: Series) -> None:
    np.minimum(a, b, out=out)


def _maximum(a: Any, b: Any, out: Series) -> None:
    np.maximum(a, b, out=out)


def _div_into(a: Any, b: Any, out: Series) -> None:
    """``fx.v_div`` for an array divisor, into ``out``: a / b, and +0 where b is zero."""
    np.divide(a, b, out)
    zero = b == 0.0
    if zero.any():
        # where= broadcasts: a divisor shared by K scenario rows masks the same bins of every row
        np.copyto(out, 0.0, where=zero)


def _fill_zero(a: Any, out: Series) -> None:
    out.fill(0.0)


def _shift_into(k: int) -> Callable[[Any, Series], None]:
    def shift(x: Any, out: Series) -> None:
        bins = out.shape[-1]
        if k < bins:
            out[..., k:] = x[..., : bins - k]  # NumPy copies overlapping slices as if through a buffer
            out[..., :k] = 0.0
        else:
            out.fill(0.0)
    return shift


def _conv_into(kernel: tuple[float, ...]) -> Callable[[Any, Series], None]:
    def conv(x: Any, out: Series) -> None:
        fx.v_conv(x, kernel, out.shape[-1], out)
    return conv


def _pulse_into(period: int, phase: int) -> Callable[[Any, Series], None]:
    def pulse(amp: Any, out: Series) -> None:
        fx.v_pulse(period, phase, amp, out.shape[-1], out)
    return pulse


# -- whole expressions by the vector functions: folding numbers, and parts nested too deep ---------


def _operands(node: Expr) -> tuple[Expr, ...]:
    """The operands that are values: not a SHIFT's lag, a CONV's kernel or a PULSE's period and phase."""
    return value_operands(node)


def _kernel(node: Call) -> tuple[float, ...]:
    kernel = fx.conv_kernel(node.args[1])
    assert kernel is not None
    return kernel


def _timing(node: Call) -> tuple[int, int]:
    timing = fx.pulse_timing(node)
    assert not isinstance(timing, str)
    return timing


def _lag(node: Call) -> int:
    lag = node.args[1]
    assert isinstance(lag, Num)
    return int(lag.value)


def _apply(node: Expr, args: Sequence[Any], bins: int) -> Any:
    """One operation on whole values, as the generated code of earlier releases performed it."""
    if isinstance(node, Unary):
        return args[0] if node.op == "+" else -args[0]
    if isinstance(node, BinOp):
        a, b = args
        if node.op == "+":
            return a + b
        if node.op == "-":
            return a - b
        if node.op == "*":
            return a * b
        if node.op == "/":
            return fx.v_div(a, b)
        return fx.VECTOR_COMPARE[node.op](a, b)
    if isinstance(node, Array):
        return fx.v_array(node.values, bins)
    assert isinstance(node, Call)
    if node.name == "SHIFT":
        return shift_last(args[0], _lag(node), bins)
    fn = fx.FUNCTIONS[node.name].vector
    if node.name == "CONV":
        assert fn is not None
        return fn(args[0], _kernel(node), bins)
    if node.name == "PULSE":
        assert fn is not None
        return fn(*_timing(node), args[0] if args else 1.0, bins)
    assert fn is not None
    return fn(*args)


def tree_value(e: Expr, bins: int, env: Mapping[str, Any] | None = None) -> Any:
    """``e`` computed by the vector functions (explicit stack), references read from ``env``."""
    stack: list[tuple[Expr, bool]] = [(e, False)]
    out: list[Any] = []
    while stack:
        node, expanded = stack.pop()
        if isinstance(node, Num):
            out.append(float(node.value))
            continue
        if isinstance(node, Ref):
            assert env is not None
            out.append(env[node.name])
            continue
        kids = _operands(node)
        if not expanded:
            stack.append((node, True))
            stack.extend((k, False) for k in reversed(kids))
            continue
        args = out[len(out) - len(kids):]
        del out[len(out) - len(kids):]
        out.append(_apply(node, args, bins))
    return out[0]


class _K:
    """A value known while planning (numbers alone): folded, or made an operand when first needed."""

    __slots__ = ("value",)

    def __init__(self, value: Any) -> None:
        self.value = value


# -- programs ------------------------------------------------------------------------------------


class Layout:
    """
    A program lowered for one pattern of varying inputs. Slots: the inputs
    (``reads``), then a row per node (``ids``), then ``extra``: constants in
    place, scratch rows and values of called functions filled in per evaluation.
    """

    def __init__(self, reads: int, nodes: int) -> None:
        self.ops: list[Op] = []
        self.forms: list[tuple[Any, ...]] = []  # each operation, readable: a format and its operands
        self.extra: list[Any] = []
        self.scratch: list[int] = []  # slots of (bins,) scratch rows
        self.vscratch: list[int] = []  # slots of (K, bins) scratch rows
        self.var_rows: list[int] = []  # nodes (by index) that vary: (K, bins) rows
        self.results: list[tuple[str, int]] = []  # nodes whose value is another slot than their row
        self.slot_of: dict[str, int] = {}
        self.names: dict[int, str] = {}
        self.base = reads + nodes


class Program:
    """
    The nodes ``ids`` (in an order where each reads only earlier ones or the
    values given), lowered once per pattern of varying inputs and evaluated
    into pooled blocks.
    """

    def __init__(self, ids: Sequence[str], exprs: Mapping[str, Expr], inputs: Mapping[str, Sequence[str]],
                 bins: int) -> None:
        self.ids = list(ids)
        self.exprs = exprs
        self.bins = bins
        self.pool = Pool()
        own = set(self.ids)
        self.reads = list(dict.fromkeys(r for n in self.ids for r in inputs[n] if r not in own))
        self._layouts: dict[frozenset[str], Layout] = {}
        self.layout(frozenset())  # lowered while planning: a problem shows before anything runs

    def layout(self, varying: frozenset[str]) -> Layout:
        got = self._layouts.get(varying)
        if got is None:
            got = self._layouts[varying] = _Lowering(self, varying).layout
        return got

    def _varying(self, values: Mapping[str, Any], lanes: int | None) -> frozenset[str]:
        return frozenset() if lanes is None else frozenset(n for n in self.reads if values[n].ndim == 2)

    def run(self, values: dict[str, Any], lanes: int | None) -> None:
        """Evaluate every node into ``values`` (inputs read from it): (bins,) or (lanes, bins) each."""
        lay = self.layout(self._varying(values, lanes))
        bins, n = self.bins, len(self.ids)
        # ``held`` (the claimed tuples) keeps the blocks busy until the results
        # hold their rows: no one else can claim them meanwhile.
        held = [self.pool.claim_rows("rows", (n + len(lay.scratch), bins))]
        rows, face = held[0][2], held[0][3]
        v: list[Any] = [values[r] for r in self.reads]
        if lay.var_rows:
            assert lanes is not None
            held.append(self.pool.claim_rows("vrows", (len(lay.var_rows) + len(lay.vscratch), lanes, bins)))
            vrows = held[1][2]
            mixed = rows[:n]
            for j, i in enumerate(lay.var_rows):
                mixed[i] = vrows[j]
            v += mixed
            v += lay.extra
            nv = len(lay.var_rows)
            for j, slot in enumerate(lay.vscratch):
                v[slot] = vrows[nv + j]
        else:
            v += rows[:n]
            v += lay.extra
        for j, slot in enumerate(lay.scratch):
            v[slot] = rows[n + j]
        _run(lay.ops, v)
        values.update(zip(self.ids, face, strict=False))
        if lay.var_rows:
            vface = held[1][3]
            values.update((self.ids[i], vface[j]) for j, i in enumerate(lay.var_rows))
        r0 = len(self.reads)
        for name, slot in lay.results:
            if r0 <= slot < lay.base:  # another node's row (a node that is just that node)
                values[name] = values[self.ids[slot - r0]]
            else:
                values[name] = _series(v[slot], bins)

    def failing(self, values: Mapping[str, Any], lanes: int | None,
                exc: BaseException) -> tuple[str, str, dict[str, Any]]:
        """
        The node and operation that raised ``exc``, read off the loop's last
        operation, and the values of this program's nodes computed by then.
        """
        tb = exc.__traceback__
        while tb is not None and tb.tb_frame.f_code is not _run.__code__:
            tb = tb.tb_next
        if tb is None:
            return self.ids[0], "", {}
        op, v = tb.tb_frame.f_locals.get("op"), tb.tb_frame.f_locals.get("v")
        lay = self.layout(self._varying(values, lanes))
        for i, candidate in enumerate(lay.ops):
            if candidate is op:
                assert isinstance(v, list)
                done = set(self.ids[:self.ids.index(candidate[4])])
                form = lay.forms[i][0].format(*(_name(lay, x) for x in lay.forms[i][1:]))
                return candidate[4], form, {n: v[s] for n, s in lay.slot_of.items() if n in done}
        return self.ids[0], "", {}

    def listing(self) -> str:
        """The operations of the one-evaluation layout, one per line (``Plan.source``)."""
        lay = self.layout(frozenset())
        head = f"# program: {len(self.ids)} nodes, {len(lay.ops)} operations, inputs {', '.join(self.reads) or '-'}"
        lines = [f"{op[4]}: " + form[0].format(*(_name(lay, x) for x in form[1:]))
                 for op, form in zip(lay.ops, lay.forms, strict=True)]
        return "\n".join([head, *lines])


def _name(lay: Layout, x: int | _K) -> str:
    if isinstance(x, _K):
        return repr(float(x.value)) if _scalar(x.value) else "[array]"
    return lay.names.get(x, f"#{x}")


def _frozen(x: Series) -> Series:
    x.flags.writeable = False
    return x


def _scalar(x: Any) -> bool:
    return type(x) is float or not isinstance(x, np.ndarray) or x.ndim == 0


def _series(x: Any, bins: int) -> Series:
    """A called function's value as a read-only float64 series."""
    if not isinstance(x, np.ndarray) or x.dtype != np.float64:
        x = np.asarray(x, dtype=np.float64)
    if x.ndim == 0:
        x = np.full(bins, float(x))
    if x.flags.writeable:
        x.flags.writeable = False
    out: Series = x
    return out


def _run(ops: list[Op], v: list[Any]) -> None:
    # b >= 0: f(a, b) into out; -1: f(a) into out; -2: out = f(*a) (a new value).
    for op in ops:
        f, a, b, o, _ = op
        if b >= 0:
            f(v[a], v[b], v[o])
        elif b == -1:
            f(v[a], v[o])
        else:
            v[o] = f(*[v[i] for i in a])


class _Lowering:
    """
    Lowers a program's nodes for one pattern of varying inputs. An
    operation's first operand is computed into the operation's own target
    (a node's row, or the scratch row its parent gave it) and the others into
    scratch rows, taken before and given back after the operation; the chain
    of first operands is walked in a loop, so only the other operands recurse.
    """

    def __init__(self, program: Program, varying: frozenset[str]) -> None:
        self.p = program
        self.bins = program.bins
        self.varying = set(varying)
        r, n = len(program.reads), len(program.ids)
        lay = self.layout = Layout(r, n)
        self.reads = {name: i for i, name in enumerate(program.reads)}
        self.index = {name: i for i, name in enumerate(program.ids)}
        lay.names.update({i: name for i, name in enumerate(program.reads)})
        lay.names.update({r + i: name for i, name in enumerate(program.ids)})
        self.where: dict[str, int] = {}
        self.const_of: dict[tuple[str, str], int] = {}
        self.numbers: dict[float, int] = {}  # operand slots of nonzero floats
        self.free: dict[bool, list[int]] = {False: [], True: []}
        self.memo: dict[int, bool] = {}
        self.node = ""
        self.own = -1
        self.fresh_count = 0
        for name in program.ids:
            self.lower_node(name)
        lay.slot_of = dict(self.where)

    # slots

    def ref(self, name: str) -> int:
        got = self.where.get(name)
        return got if got is not None else self.reads[name]

    def extra(self, value: Any) -> int:
        lay = self.layout
        lay.extra.append(value)
        return lay.base + len(lay.extra) - 1

    def const(self, value: Any, as_array: bool) -> int:
        """A slot holding ``value``: as given (for called functions) or as a ufunc operand."""
        if _scalar(value):
            array = as_array and self.bins <= CONST_ARRAY_BINS
            key = ("array" if array else type(value).__name__, float(value).hex())  # hex: -0.0 is not 0.0
        else:
            array, key = False, ("id", str(id(value)))
        slot = self.const_of.get(key)
        if slot is None:
            stored = value
            if array:
                stored = np.full(self.bins, float(value))
                stored.flags.writeable = False
            slot = self.const_of[key] = self.extra(stored)
            self.layout.names[slot] = repr(float(value)) if _scalar(value) else f"[{np.shape(value)} array]"
        return slot

    def scratch(self, var: bool) -> int:
        free = self.free[var]
        if free:
            return free.pop()
        slot = self.extra(None)
        (self.layout.vscratch if var else self.layout.scratch).append(slot)
        self.layout.names[slot] = f"t{len(self.layout.scratch) + len(self.layout.vscratch) - 1}"
        return slot

    def fresh(self) -> int:
        slot = self.extra(None)
        self.layout.names[slot] = f"f{self.fresh_count}"
        self.fresh_count += 1
        return slot

    def operand(self, x: int | _K) -> int:
        if not isinstance(x, _K):
            return x
        v = x.value
        if type(v) is float and v:  # the common case, by value (0.0 and -0.0 are equal keys: not here)
            got = self.numbers.get(v)
            if got is None:
                got = self.numbers[v] = self.const(v, as_array=True)
            return got
        return self.const(v, as_array=True)

    def value(self, x: int | _K) -> int:
        return self.const(x.value, as_array=False) if isinstance(x, _K) else x

    def emit(self, f: Any, a: Any, b: Any, o: int, *form: Any) -> int:
        """Append an operation; ``form`` is how it reads: a format and its operands, named when listed."""
        self.layout.ops.append((f, a, b, o, self.node))
        self.layout.forms.append(form)
        return o


    # variance (K scenarios at once)

    def var(self, e: Expr) -> bool:
        if not self.varying:
            return False
        got = self.memo.get(id(e))
        if got is None:
            stack: list[tuple[Expr, bool]] = [(e, False)]
            memo = self.memo
            while stack:
                x, done = stack.pop()
                if id(x) in memo:
                    continue
                kids = _operands(x)
                if not kids:
                    memo[id(x)] = isinstance(x, Ref) and x.name in self.varying
                elif not done:
                    stack.append((x, True))
                    stack.extend((k, False) for k in kids if id(k) not in memo)
                else:
                    memo[id(x)] = any(memo[id(k)] for k in kids)
            got = memo[id(e)]
        return got

    # lowering

    def lower_node(self, name: str) -> None:
        e = self.p.exprs[name]
        i = self.index[name]
        self.node = name
        self.own = len(self.p.reads) + i
        self.memo = {}
        var = self.var(e)
        if var:
            self.varying.add(name)
            self.layout.var_rows.append(i)
        got = self.walk(e, self.own, 0)
        if isinstance(got, _K):  # numbers alone: one value, made a series
            value = got.value
            series = np.full(self.bins, float(value)) if _scalar(value) else np.array(value, dtype=np.float64)
            series.flags.writeable = False
            got = self.const(series, as_array=False)
        self.where[name] = got
        if got != self.own:
            self.layout.results.append((name, got))

    def walk(self, e: Expr, t: int, depth: int) -> int | _K:
        """Operations computing ``e`` into target ``t``; the slot of its value (or a number)."""
        spine: list[Expr] = []
        varying = self.varying
        while True:
            tp = type(e)
            if tp is Ref:
                acc: int | _K = self.ref(e.name)  # type: ignore[union-attr]
                break
            if tp is Num:
                acc = _K(float(e.value))  # type: ignore[union-attr]
                break
            if tp is Array:
                acc = _K(_frozen(fx.v_array(e.values, self.bins)))  # type: ignore[union-attr]
                break
            if tp is BinOp and not varying:
                spine.append(e)
                e = e.left  # type: ignore[union-attr]
                continue
            kids = _operands(e)
            if (tp is not Call or self.call_into_first(e)) and (  # type: ignore[arg-type]
                    not varying or self.var(kids[0]) == self.var(e)):
                spine.append(e)
                e = kids[0]
                continue
            acc = self.apply(e, t, kids, None, depth)
            break
        for x in reversed(spine):
            acc = self.binop(x, t, acc, depth) if type(x) is BinOp else self.apply(x, t, _operands(x), acc, depth)
        return acc

    def binop(self, e: BinOp, t: int, a: int | _K, depth: int) -> int | _K:
        """``apply`` for an operator (the most common operation, so written out)."""
        r = e.right
        tr = type(r)
        taken = -1
        if tr is Ref:
            b: int | _K = self.ref(r.name)  # type: ignore[union-attr]
        elif tr is Num:
            b = _K(float(r.value))  # type: ignore[union-attr]
        elif depth >= DEEP:
            b = self.deep(r)
        else:
            taken = self.scratch(bool(self.varying) and self.var(r))
            b = self.walk(r, taken, depth + 1)
        f = _BINARY.get(e.op)
        if f is not None and not (isinstance(a, _K) and isinstance(b, _K)):
            lay = self.layout
            lay.ops.append((f, self.operand(a), self.operand(b), t, self.node))
            lay.forms.append(("{} = {} " + e.op + " {}", t, a, b))
            out: int | _K = t
        else:
            out = self.operation(e, [a, b], t)
        if taken >= 0:
            self.free[taken in self.layout.vscratch].append(taken)
        return out

    def apply(self, e: Expr, t: int, kids: tuple[Expr, ...], first: int | _K | None, depth: int) -> int | _K:
        args: list[int | _K] = [] if first is None else [first]
        taken: list[int] = []
        for k in kids[len(args):]:
            if isinstance(k, Ref):
                args.append(self.ref(k.name))
            elif isinstance(k, Num):
                args.append(_K(float(k.value)))
            elif isinstance(k, Array):
                args.append(_K(_frozen(fx.v_array(k.values, self.bins))))
            elif depth >= DEEP:
                args.append(self.deep(k))
            else:
                s = self.scratch(bool(self.varying) and self.var(k))
                taken.append(s)
                args.append(self.walk(k, s, depth + 1))
        out = self.operation(e, args, t)
        for s in taken:
            self.free[s in self.layout.vscratch].append(s)
        return out

    def deep(self, e: Expr) -> int:
        """A part nested too deep to walk: one call computing it from its references."""
        names = list(dict.fromkeys(x.name for x in _walk(e) if isinstance(x, Ref)))
        bins = self.bins

        def compute(*xs: Any) -> Any:
            return tree_value(e, bins, dict(zip(names, xs, strict=True)))

        o = self.fresh()
        return self.emit(compute, tuple(self.ref(n) for n in names), -2, o, "{} = (nested part)", o)

    def call_into_first(self, e: Call) -> bool:
        """Whether a call's first operand can be computed into the call's own target (as any operator's can)."""
        impl = fx.FUNCTIONS[e.name].vector
        if e.name == "SHIFT":
            return True
        if e.name in ("CONV", "PULSE", "STEP"):
            return False
        if e.name in ("MIN", "MAX"):
            return impl is (fx.v_min if e.name == "MIN" else fx.v_max)
        return e.name in _UNARY_FN and impl is _UNARY_FN[e.name]

    def operation(self, e: Expr, args: list[int | _K], t: int) -> int | _K:
        for x in args:
            if not isinstance(x, _K):
                break
        else:
            return self.fold(e, args)
        if isinstance(e, BinOp):
            a, b = args
            if e.op == "/":
                if isinstance(b, _K) and _scalar(b.value):
                    if float(b.value) == 0.0:
                        return self.emit(_fill_zero, a, -1, t, "{} = 0 ({} / 0)", t, a)
                    return self.emit(np.true_divide, self.operand(a), self.operand(b), t, "{} = {} / {}", t, a, b)
                return self.emit(_div_into, self.operand(a), self.operand(b), t, "{} = {} / {}", t, a, b)
            return self.emit(_BINARY[e.op], self.operand(a), self.operand(b), t, "{} = {} " + e.op + " {}", t, a, b)
        if isinstance(e, Unary):
            if e.op == "+":
                return args[0]
            return self.emit(np.negative, args[0], -1, t, "{} = -{}", t, args[0])
        assert isinstance(e, Call)
        impl = fx.FUNCTIONS[e.name].vector
        if e.name == "SHIFT":
            k = _lag(e)
            return self.emit(_shift_into(k), args[0], -1, t, "{} = SHIFT({}, " + str(k) + ")", t, args[0])
        if e.name in ("MIN", "MAX") and impl is (fx.v_min if e.name == "MIN" else fx.v_max):
            if len(args) == 1:
                return args[0]
            f, label = (_minimum, "minimum") if e.name == "MIN" else (_maximum, "maximum")
            acc = args[0]
            for x in args[1:]:
                self.emit(f, self.operand(acc), self.operand(x), t, "{} = " + label + "({}, {})", t, acc, x)
                acc = t
            return self.emit(np.add, t, self.const(0.0, as_array=True), t, "{} = {} + 0.0", t, t)
        if e.name == "CLAMP" and impl is fx.v_clamp:
            v, lo, hi = args
            self.emit(_minimum, self.operand(hi), self.operand(v), t, "{} = minimum({}, {})", t, hi, v)
            self.emit(_maximum, self.operand(lo), t, t, "{} = maximum({}, {})", t, lo, t)
            return self.emit(np.add, t, self.const(0.0, as_array=True), t, "{} = {} + 0.0", t, t)
        if e.name in _UNARY_FN and impl is _UNARY_FN[e.name]:
            return self.emit(impl, args[0], -1, t, "{} = " + e.name + "({})", t, args[0])
        if e.name == "STEP" and impl is fx.v_step:
            a, b = args
            return self.emit(np.greater_equal, self.operand(a), self.operand(b), t, "{} = STEP({}, {})", t, a, b)
        if e.name in ("CONV", "PULSE"):
            return self.timed(e, impl, args, t)
        assert impl is not None
        o = self.fresh()
        return self.emit(impl, tuple(self.value(x) for x in args), -2, o,
                         "{} = " + e.name + "(" + ", ".join(["{}"] * len(args)) + ")", o, *args)

    def timed(self, e: Call, impl: Any, args: list[int | _K], t: int) -> int:
        """CONV or PULSE: their literals bound, into the target row (or called as replaced in ``FUNCTIONS``)."""
        assert impl is not None
        bins = self.bins
        if e.name == "CONV":
            kernel = _kernel(e)
            text = "[" + ", ".join(map(repr, kernel)) + "]"
            if impl is fx.v_conv:
                return self.emit(_conv_into(kernel), args[0], -1, t, "{} = CONV({}, " + text + ")", t, args[0])
            return self.called(e, lambda x: impl(x, kernel, bins), args, text)
        period, phase = _timing(e)
        label = f"{period}, {phase}"
        if impl is fx.v_pulse:
            return self.emit(_pulse_into(period, phase), args[0], -1, t, "{} = PULSE(" + label + ", {})", t, args[0])
        return self.called(e, lambda amp: impl(period, phase, amp, bins), args, label)

    def called(self, e: Call, f: Callable[..., Any], args: list[int | _K], literals: str) -> int:
        """A timed function replaced in ``FUNCTIONS``: called with its literals bound, into a fresh value."""
        o = self.fresh()
        return self.emit(f, tuple(self.value(x) for x in args), -2, o,
                         "{} = " + e.name + "({}, " + literals + ")", o, *args)

    def fold(self, e: Expr, args: list[int | _K]) -> int | _K:
        """
        An operation on numbers alone, computed now. Should that fail, it is
        computed when evaluating instead, so that the error names the node as
        any other evaluation error does.
        """
        values = [x.value for x in args if isinstance(x, _K)]
        try:
            with np.errstate(all="ignore"):
                return _K(_apply(e, values, self.bins))
        except Exception:
            bins = self.bins
            o = self.fresh()
            return self.emit(lambda: _apply(e, values, bins), (), -2, o, "{} = (numbers)", o)


def _walk(e: Expr) -> list[Expr]:
    out: list[Expr] = []
    stack = [e]
    while stack:
        x = stack.pop()
        out.append(x)
        stack.extend(_operands(x))
    return out
