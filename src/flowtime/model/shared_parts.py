"""
Class parts, computed once: a subexpression several class parts repeat becomes one hidden node.

The class rules (``model.decompose``) write each part out in full, and parts
repeat one another's pieces: every class of a sum divides by the same sum of
parts, a MIN's winner test is the same for every class. Inside a feedback loop
(a queue's class parts) that made the per-bin code grow past what the loop
compiler takes, and the loop fell back to Python. Here each subexpression met
more than once across all parts is computed by one hidden node
``{node}#part{k}`` (``node``: the first whose parts hold it) that the parts
read instead: the same operations on the same numbers, so the same bits,
done once. Only value operands are shared (not a SHIFT's lag or a
CONV's kernel); numbers are told apart by their bits (``-0.0`` is not ``0.0``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from flowtime.expr.syntax import Array, BinOp, Call, Expr, Num, Ref, Unary, value_args, value_operands
from flowtime.model.kinds import INTERNAL

Key = tuple[Any, ...]
MIN_SIZE = 3  # a Ref or a number is read, not computed: never worth a node


class _Sharer:
    def __init__(self) -> None:
        self.keys: dict[int, tuple[Key, int]] = {}  # id(tree) -> (key, size); the trees are alive meanwhile
        self.count: dict[Key, int] = {}
        self.names: dict[Key, str] = {}
        self.made: list[tuple[str, Expr]] = []
        self.owner = ""

    def key(self, e: Expr) -> tuple[Key, int]:
        got = self.keys.get(id(e))
        if got is not None:
            return got
        if isinstance(e, Num):
            out: tuple[Key, int] = (("n", float(e.value).hex()), 1)
        elif isinstance(e, Ref):
            out = (("r", e.name), 1)
        elif isinstance(e, Array):
            out = (("a", tuple(float(v).hex() for v in e.values)), 1)
        elif isinstance(e, Unary):
            k, s = self.key(e.operand)
            out = (("u", e.op, k), s + 1)
        elif isinstance(e, BinOp):
            (kl, sl), (kr, sr) = self.key(e.left), self.key(e.right)
            out = (("b", e.op, kl, kr), sl + sr + 1)
        else:
            ks = [self.key(a) for a in e.args]
            out = (("c", e.name, *(k for k, _ in ks)), 1 + sum(s for _, s in ks))
        self.keys[id(e)] = out
        return out

    def tally(self, e: Expr, top: bool = True) -> None:
        k, size = self.key(e)
        if size >= MIN_SIZE and not top:
            self.count[k] = self.count.get(k, 0) + 1
            if self.count[k] > 1:
                return  # its insides are counted once: shared with it
        for child in value_operands(e):
            self.tally(child, False)

    def rewrite(self, e: Expr, top: bool = True) -> Expr:
        k, size = self.key(e)
        if not top and size >= MIN_SIZE and self.count.get(k, 0) > 1:
            name = self.names.get(k)
            if name is None:
                inner = self.rewrite(e, True)
                name = f"{self.owner}{INTERNAL}part{len(self.made)}"
                self.names[k] = name
                self.made.append((name, inner))
            return Ref(name)
        if isinstance(e, Unary):
            return Unary(e.op, self.rewrite(e.operand, False))
        if isinstance(e, BinOp):
            return BinOp(e.op, self.rewrite(e.left, False), self.rewrite(e.right, False))
        if isinstance(e, Call):
            values = value_args(e)
            return Call(e.name, tuple(self.rewrite(a, False) if i in values else a for i, a in enumerate(e.args)))
        return e


def share_parts(parts: Sequence[tuple[str, str, Expr]]) -> tuple[list[tuple[str, Expr]], list[tuple[str, Expr]]]:
    """
    ``(part id, node, tree)`` rewritten to read shared hidden nodes, and those
    nodes (each after the ones it reads).
    """
    s = _Sharer()
    for _, _, tree in parts:
        s.tally(tree)
    rewritten = []
    for pid, node, tree in parts:
        s.owner = node
        rewritten.append((pid, s.rewrite(tree)))
    return rewritten, s.made
