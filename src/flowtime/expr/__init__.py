"""The expression language: grammar, syntax tree, parser and built-in functions."""

from flowtime.expr.parser import parse_expression
from flowtime.expr.syntax import BinOp, Call, Expr, Num, Ref, Unary, to_text

__all__ = ["BinOp", "Call", "Expr", "Num", "Ref", "Unary", "parse_expression", "to_text"]
