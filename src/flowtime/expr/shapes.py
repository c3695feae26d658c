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
Outline = tuple[Calls, tuple[str, ...]]  # the calls, and the referenced names in source order (repeats kept)
# A skeleton's generated function: the tree and outline of a text from its parts (or from its
# leaves alone), or None when a number in it is not a finite float.
Builder = Callable[[Any], tuple[Expr, Outline] | None]

_NUMBER = r"(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?"
_NAME = r"[^\W\d]\w*+(?!\s*\()"
_MAX_PARTS = 3 * MAX_LEAVES + 1


class _Shape:
    """
    One skeleton: its builder from split parts, and, to skip the split, a
    pattern matching exactly its texts (the skeleton's pieces literally, each
    leaf as ``_LEAF`` reads it, atomically) with the builder from its groups.
    """

    __slots__ = ("from_leaves", "from_parts", "match")

    def __init__(self, from_parts: Builder, match: Callable[[str], re.Match[str] | None] | None,
                 from_leaves: Builder | None) -> None:
        self.from_parts = from_parts
        self.match = match
        self.from_leaves = from_leaves


def _refused(parts: Any) -> None:
    """The builder of a skeleton the generated code cannot rebuild: the full parser reads its texts."""
    return None


def _no_match(text: str) -> None:
    return None


_REFUSED = _Shape(_refused, None, None)
_SHAPES: dict[tuple[Any, ...], _Shape] = {}
# The skeleton of the last text read: the next text is tried against it first, with no split
# (a model repeats one formula over many nodes). Replaced whole, so threads only read a pair.
_last: tuple[Callable[[str], re.Match[str] | None], Builder] = (_no_match, _refused)


def clear() -> None:
    """Forget every skeleton (benchmarks measuring a cold load call this)."""
    global _last
    _SHAPES.clear()
    _last = (_no_match, _refused)


def parse(text: str, full: Callable[[str], Expr]) -> tuple[Expr, Outline] | None:
    """
    The tree and outline of ``text`` (an ASCII text within the parser's
    limits) through its skeleton, or None when the full parser must read it.
    ``full`` parses one text the long way, raising ``ExpressionError``.
    """
    global _last
    match, from_leaves = _last
    m = match(text)
    if m is not None:
        return from_leaves(m.groups())
    parts = _split(text)
    if len(parts) > _MAX_PARTS:
        return None
    key = (*parts[0::3], *map(bool, parts[1::3]))
    shape = _SHAPES.get(key)
    if shape is None:
        try:
            tree = full(text)
        except ExpressionError:
            return None  # not remembered: another text of this skeleton may parse
        shape = _compile(text, parts, tree)
        if len(_SHAPES) >= MAX_SHAPES:
            _SHAPES.clear()
        _SHAPES[key] = shape
    if shape.match is not None and shape.from_leaves is not None:
        _last = (shape.match, shape.from_leaves)
    return shape.from_parts(parts)


def _compile(text: str, parts: Parts, tree: Expr) -> _Shape:
    """The shape giving ``tree`` back from ``parts`` (and the trees of any text of its skeleton)."""
    n = len(parts) // 3
    leaf_index = [3 * k + 1 if parts[3 * k + 1] is not None else 3 * k + 2 for k in range(n)]
    is_number = [i % 3 == 1 for i in leaf_index]
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

    lines: list[str] = []  # the body, over the leaves L0, L1, ...
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
            lines.append(f"    s{sums + 1} = {f's{sums} + ' if sums else ''}len(L{sums})")
            sums += 1
        const = at + 1 - sum(len(leaf) for leaf in leaves[:before])
        return f"{const} + s{before}" if before else str(const)

    numbers = [k for k in range(n) if is_number[k]]
    for k in numbers:
        lines.append(f"    v{k} = float(L{k})")
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
            if k is None or isinstance(node, Num) != is_number[k]:
                failed.append(f"leaf at column {node.column}")
                return name
            fields = [("value", f"v{k}")] if isinstance(node, Num) else [("name", f"L{k}")]
        elif isinstance(node, Unary):
            fields = [("op", repr(node.op)), ("operand", kids[0])]
        elif isinstance(node, BinOp):
            fields = [("op", repr(node.op)), ("left", kids[0]), ("right", kids[1])]
        elif isinstance(node, Call):
            fields = [("name", repr(node.name)), ("args", f"({''.join(k + ', ' for k in kids)})")]
        else:  # an array literal: its texts are left to the full parser (parser._shaped)
            failed.append(f"array at column {node.column}")
            return name
        fields.append(("column", column(node)))
        sets = "; ".join(f"d[{f!r}] = {v}" for f, v in fields)
        lines.append(f"    {name} = new({type(node).__name__}); d = {name}.__dict__; {sets}")
        return name

    top = fold(tree, emit)
    if failed:
        return _REFUSED
    names = "".join(f"L{k}, " for k in range(n) if not is_number[k])
    body = "\n".join(lines)
    unpack = "".join(f"L{k}, " for k in range(n))
    source = (f"def from_parts(p):\n{''.join(f'    L{k} = p[{i}]{chr(10)}' for k, i in enumerate(leaf_index))}"
              f"{body}\n    return {top}, (CALLS, ({names}))\n"
              f"def from_leaves(p):\n    {unpack or '_'} = {'p' if n else '()'}\n"
              f"{body}\n    return {top}, (CALLS, ({names}))\n")
    calls = tuple((c.name, len(c.args)) for c in walk(tree) if isinstance(c, Call))
    env: dict[str, Any] = {"new": object.__new__, "Num": Num, "Ref": Ref, "Unary": Unary, "BinOp": BinOp,
                           "Call": Call, "CALLS": calls}
    exec(compile(source, "<expression shape>", "exec"), env)
    from_parts: Builder = env["from_parts"]
    built = from_parts(parts)
    if built is None or not same_tree(built[0], tree):
        return _REFUSED
    # The pattern: each separator as it is, each leaf read as _split reads it there.
    pattern = re.compile("".join(
        re.escape(parts[3 * k]) + (f"(?<!\\w)((?>{_NUMBER}))" if is_number[k] else f"(?<!\\w)({_NAME})")
        for k in range(n)) + re.escape(parts[-1]))
    m = pattern.fullmatch(text)
    if m is None or list(m.groups()) != leaves:
        return _Shape(from_parts, None, None)
    return _Shape(from_parts, pattern.fullmatch, env["from_leaves"])


def same_tree(a: Expr, b: Expr) -> bool:
    """Equal node for node, columns and the order of each node's fields included."""
    xs, ys = list(walk(a)), list(walk(b))
    return len(xs) == len(ys) and all(
        type(x) is type(y) and len(children(x)) == len(children(y))
        and [(k, v) for k, v in vars(x).items() if k not in ("left", "right", "operand", "args")]
        == [(k, v) for k, v in vars(y).items() if k not in ("left", "right", "operand", "args")]
        and list(vars(x)) == list(vars(y))
        for x, y in zip(xs, ys, strict=True)
    )
