"""
Expression text -> syntax tree, with Lark (LALR) and a caret-pointing error.

The grammar lives in ``grammar.lark``; the parser is built once per process.
The tree conversion is iterative so that very long expressions cannot exhaust
Python's recursion limit; nesting depth is bounded before parsing.
"""

from __future__ import annotations

import math
from functools import lru_cache

from lark import Lark, Token, Tree
from lark.exceptions import UnexpectedCharacters, UnexpectedEOF, UnexpectedInput, UnexpectedToken

from flowtime.errors import ExpressionError
from flowtime.expr.syntax import BinOp, Call, Expr, Num, Ref, Unary

MAX_EXPRESSION_LENGTH = 100_000
MAX_NESTING = 200

_BINARY = {
    "add": "+", "sub": "-", "mul": "*", "div": "/",
    "lt": "<", "le": "<=", "gt": ">", "ge": ">=", "eq": "==", "ne": "!=",
}
_TOKEN_TEXT = {
    "LPAR": "'('", "RPAR": "')'", "COMMA": "','", "PLUS": "'+'", "MINUS": "'-'",
    "STAR": "'*'", "SLASH": "'/'", "NUMBER": "a number", "NAME": "a name",
    "LESSTHAN": "'<'", "MORETHAN": "'>'", "$END": "end of expression",
}


@lru_cache(maxsize=1)
def _parser() -> Lark:
    return Lark.open_from_package(
        "flowtime.expr", "grammar.lark", parser="lalr", propagate_positions=True, maybe_placeholders=True
    )


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
    try:
        tree = _parser().parse(text)
    except UnexpectedInput as exc:
        raise _syntax_error(text, exc) from None
    return _convert(tree, text)


def _clip(text: str, column: int) -> str:
    return text if len(text) <= 120 else text[max(0, column - 61) : column + 59]


def _syntax_error(text: str, exc: UnexpectedInput) -> ExpressionError:
    # Lark's column is per line; an expression may span lines, so use the offset.
    pos = getattr(exc, "pos_in_stream", None)
    column = pos + 1 if isinstance(pos, int) and pos >= 0 else len(text) + 1
    column = min(column, len(text) + 1)
    if isinstance(exc, UnexpectedCharacters):
        msg = f"unexpected character {text[column - 1]!r} at column {column}"
    elif isinstance(exc, UnexpectedEOF) or (isinstance(exc, UnexpectedToken) and exc.token.type == "$END"):
        column = len(text.rstrip()) + 1
        msg = f"expression ends too early at column {column}; expected {_expected(exc)}"
    elif isinstance(exc, UnexpectedToken):
        tok = exc.token
        msg = f"unexpected {str(tok)!r} at column {column}; expected {_expected(exc)}"
    else:  # pragma: no cover - lark has no other UnexpectedInput kinds
        msg = f"cannot parse at column {column}"
    if len(text) > 120:
        start = max(0, column - 61)
        return ExpressionError(msg, text[start : start + 120], column - start)
    return ExpressionError(msg, text, column)


def _expected(exc: UnexpectedInput) -> str:
    names = sorted(getattr(exc, "expected", None) or getattr(exc, "allowed", None) or ())
    words = [_TOKEN_TEXT.get(n, n.lower()) for n in names]
    if not words:
        return "more input"
    if len(words) > 4:
        return "a number, a name, '(' or an operator"
    return " or ".join(words)


def _convert(tree: Tree[Token] | Token, text: str) -> Expr:
    """Lark tree -> syntax tree, post-order with an explicit stack."""
    out: list[Expr] = []
    stack: list[tuple[Tree[Token] | Token, bool]] = [(tree, False)]
    while stack:
        node, done = stack.pop()
        if isinstance(node, Token):  # only for a bare NUMBER/NAME start rule
            out.append(_leaf(node, text))
            continue
        rule = node.data
        if rule == "number":
            out.append(_leaf(node.children[0], text))  # type: ignore[arg-type]
            continue
        if rule == "ref":
            tok = node.children[0]
            assert isinstance(tok, Token)
            out.append(Ref(str(tok), tok.column or 1))
            continue
        kids: list[Tree[Token] | Token]
        if rule == "call":
            args = node.children[1]
            kids = [] if args is None else list(args.children)  # type: ignore[union-attr]
        else:
            kids = [c for c in node.children if c is not None]
        if not done:
            stack.append((node, True))
            stack.extend((k, False) for k in reversed(kids))
            continue
        n = len(kids)
        vals = out[len(out) - n :] if n else []
        if n:
            del out[len(out) - n :]
        column = node.meta.column if not node.meta.empty else 1
        if rule == "call":
            name_tok = node.children[0]
            out.append(Call(str(name_tok).upper(), tuple(vals), column))
        elif rule in ("neg", "pos"):
            out.append(Unary("-" if rule == "neg" else "+", vals[0], column))
        elif rule in _BINARY:
            out.append(BinOp(_BINARY[rule], vals[0], vals[1], column))
        else:  # pragma: no cover - every grammar rule is handled above
            raise ExpressionError(f"internal: unknown rule {rule}", text, column)
    return out[0]


def _leaf(tok: Token, text: str) -> Expr:
    if tok.type == "NAME":
        return Ref(str(tok), tok.column or 1)
    value = float(str(tok))
    if not math.isfinite(value):
        raise ExpressionError(f"number {tok} is too large for a 64-bit float", text, tok.column or 1)
    return Num(value, tok.column or 1)
