"""
Expression skeletons: each distinct shape of formula parsed once, its trees built from the leaves.

A model repeats a few formulas over different names and numbers (a generated
model writes ``base_3 * 1.5 + n_2 * 0.5`` ten thousand times). Cutting a text
at its leaves - numbers, and names that are not called - leaves its skeleton:
operators, spaces, parentheses and function names. Texts with the same
skeleton and the same kind of leaf (number or name) in each place parse to the
same tree but for the leaves' values and the columns, and every column is the
start of some piece of the text, so it follows from the lengths of the leaves
before it.

The first text of a skeleton is parsed by the full parser; its tree becomes a
small generated function that builds the same tree from another text's leaves
(nodes made as a frozen record's ``__init__`` would make them, fields in the
same order), and that function must rebuild the full parser's tree of the
first text exactly, columns included, before it is kept. A text the full
parser refuses is never remembered, so errors, their messages and their
columns are always the full parser's; so are texts with a number too large for
a float, non-ASCII text and texts with more than ``MAX_LEAVES`` leaves.
"""

from __future__ import annotations

import re
from bisect import bisect_right
from collections.abc import Callable
from typing import Any

from flowtime.errors import ExpressionError
from flowtime.expr.syntax import BinOp, Call, Expr, Num, Ref, Unary, children, fold, walk

MAX_LEAVES = 64  # longer formulas are rare; the full parser reads them
MAX_SHAPES = 4096  # distinct skeletons remembered (all forgotten at once past this)

# The tokenizer's NUMBER and NAME (parser._TOKEN), a name only when no "(" follows
# (a called name is part of the skeleton), and neither inside a longer word.
_LEAF = re.compile(r"(?<!\w)(?:((?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?)|([^\W\d]\w*+(?!\s*\()))")
_split = _LEAF.split

Parts = list[Any]  # _split's pieces: separator, number or None, name or None, separator, ...
Calls = tuple[tuple[str, int], ...]  # (function name, number of arguments) of every call, in source order


class Shape:
    """One skeleton: how to build its tree from a text's parts, and what it calls and reads."""

    __slots__ = ("build", "calls", "names")

    def __init__(self, build: Callable[[Parts], Expr | None], calls: Calls,
                 names: Callable[[Parts], tuple[str, ...]]) -> None:
        self.build = build  # the tree, or None when a number is not a finite float
        self.calls = calls
        self.names = names  # the referenced names in source order, repeats kept


_SHAPES: dict[tuple[Any, ...], Shape | None] = {}  # None: the full parser builds this skeleton's trees
_MISSING = object()


def clear() -> None:
    """Forget every skeleton (benchmarks measuring a cold load call this)."""
    _SHAPES.clear()


def find(text: str, full: Callable[[str], Expr]) -> tuple[Shape, Parts] | None:
    """
    The shape of ``text`` (an ASCII text within the parser's limits) and its
    parts, or None when the full parser must read it. ``full`` parses one text
    the long way, raising ``ExpressionError``.
    """
    parts = _split(text)
    if len(parts) > 3 * MAX_LEAVES + 1:
        return None
    key = (*parts[0::3], *map(bool, parts[1::3]))
    shape = _SHAPES.get(key, _MISSING)
    if shape is _MISSING:
        try:
            tree = full(text)
        except ExpressionError:
            return None  # not remembered: another text of this skeleton may parse
        shape = _compile(text, parts, tree)
        if len(_SHAPES) >= MAX_SHAPES:
            _SHAPES.clear()
        _SHAPES[key] = shape
    if shape is None:
        return None
    assert isinstance(shape, Shape)
    return shape, parts


def _compile(text: str, parts: Parts, tree: Expr) -> Shape | None:
    """The shape whose ``build`` gives ``tree`` back from ``parts``, or None if it cannot."""
    n = len(parts) // 3
    leaf_index = [3 * k + 1 if parts[3 * k + 1] is not None else 3 * k + 2 for k in range(n)]
    leaves = [parts[i] for i in leaf_index]
    starts: list[int] = []  # where each piece starts: separator 0, leaf 0, separator 1, leaf 1, ...
    pos = 0
    for k in range(n):
        starts.append(pos)
        pos += len(parts[3 * k])
        starts.append(pos)
        pos += len(leaves[k])
    starts.append(pos)
    assert pos + len(parts[-1]) == len(text)

    lines: list[str] = []
    sums = 0  # s1 .. s<sums> hold the lengths of the first leaves added up
    failed: list[str] = []

    def column(node: Expr) -> str:
        nonlocal sums
        at = node.column - 1
        piece = bisect_right(starts, at) - 1
        if piece % 2 == 1 and at != starts[piece]:
            failed.append(f"column {node.column} inside a leaf")
        before = piece // 2  # leaves wholly before this piece
        while sums < before:
            lines.append(f"    s{sums + 1} = {f's{sums} + ' if sums else ''}len(p[{leaf_index[sums]}])")
            sums += 1
        const = at + 1 - sum(len(leaf) for leaf in leaves[:before])
        return f"{const} + s{before}" if before else str(const)

    numbers = [k for k in range(n) if leaf_index[k] % 3 == 1]
    for k in numbers:
        lines.append(f"    v{k} = float(p[{leaf_index[k]}])")
    if numbers:  # inf * 0 is NaN: a number too large for a float goes to the full parser, which says so
        lines.append(f"    if {' + '.join(f'0.0 * v{k}' for k in numbers)} != 0.0:\n        return None")
    leaf_at = {starts[2 * k + 1] + 1: k for k in range(n)}
    count = 0

    def emit(node: Expr, kids: list[str]) -> str:
        nonlocal count
        name = f"n{count}"
        count += 1
        if isinstance(node, Num | Ref):
            k = leaf_at.get(node.column)
            if k is None or isinstance(node, Num) != (leaf_index[k] % 3 == 1):
                failed.append(f"leaf at column {node.column}")
                return name
            fields = [("value", f"v{k}")] if isinstance(node, Num) else [("name", f"p[{leaf_index[k]}]")]
        elif isinstance(node, Unary):
            fields = [("op", repr(node.op)), ("operand", kids[0])]
        elif isinstance(node, BinOp):
            fields = [("op", repr(node.op)), ("left", kids[0]), ("right", kids[1])]
        else:
            fields = [("name", repr(node.name)), ("args", f"({''.join(k + ', ' for k in kids)})")]
        fields.append(("column", column(node)))
        sets = "; ".join(f"d[{f!r}] = {v}" for f, v in fields)
        lines.append(f"    {name} = new({type(node).__name__}); d = {name}.__dict__; {sets}")
        return name

    top = fold(tree, emit)
    if failed:
        return None
    refs = [f"p[{leaf_index[k]}], " for k in range(n) if leaf_index[k] % 3 == 2]
    source = (f"def build(p):\n{chr(10).join(lines)}\n    return {top}\n"
              f"def names(p):\n    return ({''.join(refs)})\n")
    env: dict[str, Any] = {"new": object.__new__, "Num": Num, "Ref": Ref, "Unary": Unary, "BinOp": BinOp,
                           "Call": Call}
    exec(compile(source, "<expression shape>", "exec"), env)
    build, names = env["build"], env["names"]
    calls = tuple((c.name, len(c.args)) for c in walk(tree) if isinstance(c, Call))
    if not same_tree(build(parts), tree):
        return None
    return Shape(build, calls, names)


def same_tree(a: Expr | None, b: Expr) -> bool:
    """Equal node for node, columns and the order of each node's fields included."""
    if a is None:
        return False
    xs, ys = list(walk(a)), list(walk(b))
    return len(xs) == len(ys) and all(
        type(x) is type(y) and len(children(x)) == len(children(y))
        and [(k, v) for k, v in vars(x).items() if k not in ("left", "right", "operand", "args")]
        == [(k, v) for k, v in vars(y).items() if k not in ("left", "right", "operand", "args")]
        and list(vars(x)) == list(vars(y))
        for x, y in zip(xs, ys, strict=True)
    )
