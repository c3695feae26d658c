"""
Expression syntax tree: frozen dataclasses that remember their source column.

Columns are 1-based and excluded from equality, so a tree printed with
``to_text`` and parsed again compares equal to the original.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import field
from typing import TypeVar

from flowtime.records import record

T = TypeVar("T")

BINARY_OPS = ("+", "-", "*", "/", "<", "<=", ">", ">=", "==", "!=")
COMPARISONS = frozenset({"<", "<=", ">", ">=", "==", "!="})
_PRECEDENCE = {
    "<": 1, "<=": 1, ">": 1, ">=": 1, "==": 1, "!=": 1,
    "+": 2, "-": 2,
    "*": 3, "/": 3,
}
_UNARY_PRECEDENCE = 4


@record
class Num:
    value: float
    column: int = field(default=1, compare=False, repr=False)


@record
class Ref:
    name: str
    column: int = field(default=1, compare=False, repr=False)


@record
class Unary:
    op: str  # "-" or "+"
    operand: Expr
    column: int = field(default=1, compare=False, repr=False)


@record
class BinOp:
    op: str
    left: Expr
    right: Expr
    column: int = field(default=1, compare=False, repr=False)


@record
class Array:
    """
    An array literal ``[0, 0.6, 0.3, 0.1]``: number literals only (a sign
    allowed). CONV reads it as its kernel; anywhere else it is the series
    ``values[t]``, 0 past its end (0017).
    """

    values: tuple[float, ...]
    column: int = field(default=1, compare=False, repr=False)


@record
class Call:
    name: str  # upper-cased: function names are case-insensitive
    args: tuple[Expr, ...]
    column: int = field(default=1, compare=False, repr=False)


Expr = Num | Ref | Unary | BinOp | Call | Array


def children(e: Expr) -> tuple[Expr, ...]:
    if isinstance(e, Unary):
        return (e.operand,)
    if isinstance(e, BinOp):
        return (e.left, e.right)
    if isinstance(e, Call):
        return e.args
    return ()


def value_args(e: Call) -> range:
    """Which arguments of a call are values: not a SHIFT's lag, a CONV's kernel or a PULSE's period and phase."""
    if e.name in ("SHIFT", "CONV"):
        return range(min(1, len(e.args)))
    return range(2, len(e.args)) if e.name == "PULSE" else range(len(e.args))


def value_operands(e: Expr) -> tuple[Expr, ...]:
    """The operands of ``e`` that are values (``children`` less the literals ``value_args`` leaves out)."""
    if isinstance(e, Call):
        return tuple(e.args[i] for i in value_args(e))
    return children(e)


def fold(e: Expr, fn: Callable[[Expr, list[T]], T]) -> T:
    """
    Post-order fold without recursion (expressions can be thousands of terms deep).

    >>> fold(BinOp("+", Num(1.0), Ref("a")), lambda n, kids: 1 + sum(kids))
    3
    """
    results: list[T] = []
    stack: list[tuple[Expr, bool]] = [(e, False)]
    while stack:
        node, expanded = stack.pop()
        kids = children(node)
        if expanded or not kids:
            n = len(kids)
            args = results[len(results) - n :] if n else []
            if n:
                del results[len(results) - n :]
            results.append(fn(node, args))
        else:
            stack.append((node, True))
            stack.extend((k, False) for k in reversed(kids))
    return results[0]


def walk(e: Expr) -> Iterator[Expr]:
    """Every node of the tree, parents before children."""
    stack = [e]
    while stack:
        node = stack.pop()
        yield node
        stack.extend(reversed(children(node)))


def depth(e: Expr) -> int:
    return fold(e, lambda _n, kids: 1 + max(kids, default=0))


def format_number(v: float) -> str:
    """
    Shortest text that parses back to the same float.

    >>> format_number(2.0), format_number(0.1), format_number(1e-7)
    ('2', '0.1', '1e-07')
    """
    if v == int(v) and abs(v) < 1e16:
        return str(int(v))
    return repr(v)


def to_text(e: Expr) -> str:
    """
    Print an expression with the fewest parentheses that keep its meaning.

    >>> to_text(BinOp("-", Ref("a"), BinOp("-", Ref("b"), Num(1.0))))
    'a - (b - 1)'
    >>> to_text(Call("CONV", (Ref("x"), Array((0.0, 0.6, -1.0)))))
    'CONV(x, [0, 0.6, -1])'
    """

    def prec(node: Expr) -> int:
        if isinstance(node, BinOp):
            return _PRECEDENCE[node.op]
        if isinstance(node, Unary):
            return _UNARY_PRECEDENCE
        return 5

    def render(node: Expr, kids: list[tuple[str, int]]) -> tuple[str, int]:
        if isinstance(node, Num):
            return format_number(node.value), 5
        if isinstance(node, Ref):
            return node.name, 5
        if isinstance(node, Array):
            return f"[{', '.join(format_number(v) for v in node.values)}]", 5
        if isinstance(node, Call):
            return f"{node.name}({', '.join(k[0] for k in kids)})", 5
        if isinstance(node, Unary):
            text, p = kids[0]
            return node.op + (text if p >= _UNARY_PRECEDENCE else f"({text})"), _UNARY_PRECEDENCE
        assert isinstance(node, BinOp)
        p = prec(node)
        (lt, lp), (rt, rp) = kids
        left = lt if lp >= p else f"({lt})"
        # Right operand needs parentheses at equal precedence (left associativity).
        right = rt if rp > p else f"({rt})"
        return f"{left} {node.op} {right}", p

    return fold(e, render)[0]


def references(e: Expr) -> list[str]:
    """Node names referenced anywhere in ``e``, first occurrence order, no duplicates."""
    seen: dict[str, None] = {}
    for node in walk(e):
        if isinstance(node, Ref):
            seen.setdefault(node.name, None)
    return list(seen)
