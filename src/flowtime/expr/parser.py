"""
Expression text -> syntax tree: one regular-expression tokenizer and an
operator-precedence parser with an explicit stack, and a caret-pointing error.

The language (loosest binding first; binary operators are left-associative)::

    comparison := sum (("<" | "<=" | ">" | ">=" | "==" | "!=") sum)*
    sum        := product (("+" | "-") product)*
    product    := unary (("*" | "/") unary)*
    unary      := ("-" | "+") unary | atom
    atom       := NUMBER | array | NAME "(" [comparison ("," comparison)*] ")" | NAME | "(" comparison ")"
    array      := "[" [element ("," element)*] "]"
    element    := ["-" | "+"] NUMBER
    NUMBER     := (\\d+(\\.\\d*)? | \\.\\d+) ([eE][+-]?\\d+)?
    NAME       := a letter or "_", then letters, digits or "_"

Why not a parser generator (0013): this grammar is small and fixed, a hand
parser reads it in a few microseconds without building tables at start-up,
and no input can exhaust the Python stack (nothing recurses). Nesting is
bounded before parsing all the same, and every node keeps its source column
(the first character of its span, parentheses around a left operand included).
An array literal holds signed number literals only - never an expression -
and a ``-0`` in it is stored as 0 (0017).
"""

from __future__ import annotations

import math
import re
from functools import lru_cache

from flowtime.errors import ExpressionError
from flowtime.expr import shapes
from flowtime.expr.syntax import Array, BinOp, Call, Expr, Num, Ref, Unary

MAX_EXPRESSION_LENGTH = 100_000
MAX_NESTING = 200

_TOKEN = re.compile(
    r"(?P<num>(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?)"
    r"|(?P<name>[^\W\d]\w*)"
    r"|(?P<op><=|>=|==|!=|[-+*/<>(),\[\]])"
    r"|(?P<space>\s+)"
)
_PRECEDENCE = {"<": 1, "<=": 1, ">": 1, ">=": 1, "==": 1, "!=": 1, "+": 2, "-": 2, "*": 3, "/": 3}
_EXPECTED = "a number, a name, '(' or an operator"
_ARRAY = "an array holds number literals only, such as [0, 0.6, 0.3, 0.1]"

# Token kinds (_BAD: a character no token starts with; reported when the parser reaches it)
_NUM, _NAME, _OP, _END, _BAD = 0, 1, 2, 3, 4
# Operator-stack entry kinds
_BIN, _UN, _PAR, _CALL = 0, 1, 2, 3


def _nesting(text: str) -> tuple[int, int]:
    """(deepest parenthesis nesting, its column); unary sign runs count as nesting too."""
    depth = best = 0
    where = 1
    run = 0
    for i, ch in enumerate(text):
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        if ch in "+-":
            run += 1
        elif not ch.isspace():
            run = 0
        if depth + run > best:
            best, where = depth + run, i + 1
    return best, where


def parse_expression(text: str, *, max_nesting: int = MAX_NESTING, max_length: int = MAX_EXPRESSION_LENGTH) -> Expr:
    """
    Parse one expression.

    >>> parse_expression("MIN(demand, capacity) * 0.95")
    BinOp(op='*', left=Call(name='MIN', args=(Ref(name='demand'), Ref(name='capacity'))), right=Num(value=0.95))

    >>> parse_expression("a + @b")
    Traceback (most recent call last):
    ...
    flowtime.errors.ExpressionError: unexpected character '@' at column 5
        a + @b
            ^
    """
    if _shaped(text, max_nesting, max_length):
        found = shapes.parse(text, _full)
        if found is not None:
            return found[0]
    return parse_full(text, max_nesting=max_nesting, max_length=max_length)


def parse_with_outline(text: str, max_nesting: int = MAX_NESTING, max_length: int = MAX_EXPRESSION_LENGTH
                       ) -> tuple[Expr, shapes.Outline | None]:
    """
    ``parse_expression`` plus, when the text's skeleton is known, its outline:
    the calls (name, number of arguments) and the referenced names in source
    order, repeats kept - what the model graph needs, without walking the tree.

    >>> parse_with_outline("MIN(a, b) * 0.5 + a")[1]
    ((('MIN', 2),), ('a', 'b', 'a'))
    """
    if (text.__class__ is str and len(text) <= max_length and text.isascii() and "[" not in text  # _shaped, inline
            and (len(text) <= max_nesting or text.count("(") + text.count("+") + text.count("-") <= max_nesting)):
        found = shapes.parse(text, _full)
        if found is not None:
            return found
    return parse_full(text, max_nesting=max_nesting, max_length=max_length), None


def _shaped(text: str, max_nesting: int, max_length: int) -> bool:
    """
    Whether the skeleton path may read ``text``: an ASCII text within every
    limit, without an array literal (whose numbers are values of one node, not
    leaves: the full parser reads those, each distinct text once). Nesting
    counts parentheses and sign runs (see ``_nesting``), so it is at most the
    number of "(", "+" and "-", and at most the length.
    """
    return (text.__class__ is str and len(text) <= max_length and text.isascii() and "[" not in text
            and (len(text) <= max_nesting or text.count("(") + text.count("+") + text.count("-") <= max_nesting))


def parse_full(text: str, *, max_nesting: int = MAX_NESTING, max_length: int = MAX_EXPRESSION_LENGTH) -> Expr:
    """``parse_expression`` by the full parser alone (the reference the skeleton path is tested against)."""
    if not isinstance(text, str):
        raise ExpressionError("expression must be a string", str(text), 1)
    if len(text) > max_length:
        raise ExpressionError(
            f"expression is {len(text)} characters long; the limit is {max_length}", text[:60] + "...", 1
        )
    if not text.strip():
        raise ExpressionError("empty expression; expected a formula such as `demand * 0.9`", text, 1)
    nest, where = _nesting(text)
    if nest > max_nesting:
        raise ExpressionError(
            f"expression nests {nest} levels deep; the limit is {max_nesting}", _clip(text, where), min(where, 61)
        )
    return _parse_cached(text)


def _full(text: str) -> Expr:
    return _Parser(text).parse()


@lru_cache(maxsize=4096)
def _parse_cached(text: str) -> Expr:
    # Trees are immutable: models that repeat a formula (templates, generated
    # models) parse each distinct text once.
    return _Parser(text).parse()


def _clip(text: str, column: int) -> str:
    return text if len(text) <= 120 else text[max(0, column - 61) : column + 59]


def _error(text: str, message: str, column: int) -> ExpressionError:
    if len(text) > 120:
        start = max(0, column - 61)
        return ExpressionError(message, text[start : start + 120], column - start)
    return ExpressionError(message, text, column)


class _Parser:
    """One parse: tokens in, tree out. ``out``/``starts`` are operands and the column each one's span starts at."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens = self._tokens()
        self.out: list[Expr] = []
        self.starts: list[int] = []
        # (_BIN, op, column) | (_UN, op, column) | (_PAR, column) | (_CALL, name, column, operands before it)
        self.ops: list[tuple[int, str, int, int]] = []
        self.too_large: tuple[str, int] | None = None  # reported once the text has parsed

    def _tokens(self) -> list[tuple[int, str, int]]:
        text = self.text
        out: list[tuple[int, str, int]] = []
        pos = 0
        n = len(text)
        match = _TOKEN.match
        while pos < n:
            m = match(text, pos)
            if m is None:
                out.append((_BAD, text[pos], pos + 1))
                return out
            kind = m.lastgroup
            if kind == "num":
                out.append((_NUM, m.group(), pos + 1))
            elif kind == "name":
                out.append((_NAME, m.group(), pos + 1))
            elif kind == "op":
                out.append((_OP, m.group(), pos + 1))
            pos = m.end()
        out.append((_END, "", len(text.rstrip()) + 1))
        return out

    def _unexpected(self, tok: tuple[int, str, int]) -> ExpressionError:
        kind, value, column = tok
        if kind == _BAD:
            return _error(self.text, f"unexpected character {value!r} at column {column}", column)
        if kind == _END:
            return _error(self.text, f"expression ends too early at column {column}; expected {_EXPECTED}", column)
        return _error(self.text, f"unexpected {value!r} at column {column}; expected {_EXPECTED}", column)

    def _array(self, i: int) -> int:
        """Read the array literal whose "[" is token ``i``; push it and return the index of its "]"."""
        tokens = self.tokens
        column = tokens[i][2]
        values: list[float] = []
        i += 1
        if tokens[i][0] == _OP and tokens[i][1] == "]":
            self._push(Array((), column), column)
            return i
        while True:
            sign = 1.0
            if tokens[i][0] == _OP and tokens[i][1] in ("-", "+"):
                sign = -1.0 if tokens[i][1] == "-" else 1.0
                i += 1
            kind, value, at = tokens[i]
            if kind != _NUM:
                raise self._in_array(tokens[i], "a number")
            number = float(value)
            if not math.isfinite(number) and self.too_large is None:
                self.too_large = (value, at)
            values.append(sign * number + 0.0)  # + 0.0: a -0 is stored as 0
            i += 1
            kind, value, at = tokens[i]
            if kind == _OP and value == "]":
                self._push(Array(tuple(values), column), column)
                return i
            if kind != _OP or value != ",":
                raise self._in_array(tokens[i], "',' or ']'")
            i += 1

    def _in_array(self, tok: tuple[int, str, int], expected: str) -> ExpressionError:
        kind, value, column = tok
        if kind == _BAD:
            return self._unexpected(tok)
        if kind == _END:
            return _error(self.text, f"expression ends too early at column {column}, inside an array literal; "
                                     f"expected {expected}", column)
        return _error(self.text, f"unexpected {value!r} at column {column}; expected {expected}: {_ARRAY}", column)

    def _push(self, e: Expr, start: int) -> None:
        self.out.append(e)
        self.starts.append(start)

    def _reduce_top(self) -> None:
        kind, op, column, _ = self.ops.pop()
        if kind == _UN:
            operand = self.out.pop()
            self.starts.pop()
            self._push(Unary(op, operand, column), column)
        else:  # _BIN
            right = self.out.pop()
            self.starts.pop()
            left = self.out.pop()
            start = self.starts.pop()
            self._push(BinOp(op, left, right, start), start)

    def _reduce_while(self, prec: int) -> None:
        """Reduce operators that bind at least as tightly as ``prec`` (left associativity)."""
        ops = self.ops
        while ops:
            kind = ops[-1][0]
            if kind == _UN or (kind == _BIN and _PRECEDENCE[ops[-1][1]] >= prec):
                self._reduce_top()
            else:
                break

    def parse(self) -> Expr:
        tokens = self.tokens
        ops = self.ops
        i = 0
        expect_operand = True
        while True:
            tok = tokens[i]
            kind, value, column = tok
            if expect_operand:
                if kind == _NUM:
                    number = float(value)
                    if not math.isfinite(number) and self.too_large is None:
                        self.too_large = (value, column)
                    self._push(Num(number, column), column)
                    expect_operand = False
                elif kind == _NAME:
                    if tokens[i + 1][1] == "(" and tokens[i + 1][0] == _OP:
                        ops.append((_CALL, value, column, len(self.out)))
                        i += 1
                        if tokens[i + 1][1] == ")" and tokens[i + 1][0] == _OP:  # no arguments
                            ops.pop()
                            self._push(Call(value.upper(), (), column), column)
                            i += 1
                            expect_operand = False
                    else:
                        self._push(Ref(value, column), column)
                        expect_operand = False
                elif kind == _OP and value in ("-", "+"):
                    ops.append((_UN, value, column, 0))
                elif kind == _OP and value == "(":
                    ops.append((_PAR, "", column, 0))
                elif kind == _OP and value == "[":
                    i = self._array(i)
                    expect_operand = False
                else:
                    raise self._unexpected(tok)
                i += 1
                continue
            # After an operand: an operator, a closing parenthesis, a comma or the end.
            if kind == _OP and value in _PRECEDENCE:
                self._reduce_while(_PRECEDENCE[value])
                ops.append((_BIN, value, column, 0))
                expect_operand = True
            elif kind == _OP and value == ")":
                self._reduce_while(0)
                if not ops:
                    raise self._unexpected(tok)
                top = ops.pop()
                if top[0] == _PAR:
                    self.starts[-1] = top[2]  # the span now starts at "("
                else:  # the end of a call's arguments
                    first = top[3]
                    args = tuple(self.out[first:])
                    del self.out[first:]
                    del self.starts[first:]
                    self._push(Call(top[1].upper(), args, top[2]), top[2])
            elif kind == _OP and value == ",":
                self._reduce_while(0)
                if not ops or ops[-1][0] != _CALL:
                    raise self._unexpected(tok)
                expect_operand = True
            elif kind == _END:
                self._reduce_while(0)
                if ops:
                    raise self._unexpected(tok)
                if self.too_large is not None:
                    value, column = self.too_large
                    raise ExpressionError(f"number {value} is too large for a 64-bit float", self.text, column)
                return self.out[0]
            else:
                raise self._unexpected(tok)
            i += 1
