"""
Hypothesis strategies shared across the test suite.

``expressions()`` builds syntax trees directly (not text), so printing and
parsing can be checked against them; with ``valid=True`` every call has a known
function, the right number of arguments and a literal SHIFT lag, so the tree
also evaluates. ``grids()`` and ``series()`` give the pieces of a model, and
``models()`` whole model texts with sampled PMF nodes.
"""

from __future__ import annotations

from typing import Any

import yaml
from hypothesis import strategies as st

from flowtime.expr.functions import FUNCTIONS
from flowtime.expr.syntax import BINARY_OPS, Array, BinOp, Call, Expr, Num, Ref, Unary, to_text

# Reference names: include ones that look like function names or numbers'
# exponents, to catch printer/lexer confusions.
NAMES = ("a", "b", "demand", "x_1", "Served", "min_rate", "e", "_tmp")
# Names that evaluate: nodes a and b exist in the models built by the tests.
SERIES_NAMES = ("a", "b")
UNKNOWN_FUNCTIONS = ("FOO", "DELAY")
BIN_UNITS = ("minutes", "hours", "days", "weeks")


def numbers() -> st.SearchStrategy[float]:
    """Non-negative finite literals (a leading minus parses as unary minus)."""
    return st.one_of(
        st.integers(min_value=0, max_value=10**6).map(float),
        st.sampled_from([0.5, 0.25, 0.1, 2.5, 1e-7, 1e16, 1.5e300]),
        st.floats(min_value=0.0, allow_nan=False, allow_infinity=False),
    )


def arrays() -> st.SearchStrategy[Array]:
    """Array literals: small signed kernels (the parser stores a -0 as 0, so none is drawn)."""
    value = st.one_of(numbers(), numbers().map(lambda v: -v)).map(lambda v: v + 0.0)
    return st.builds(Array, st.lists(value, max_size=5).map(tuple))


def kernels() -> st.SearchStrategy[Expr]:
    """CONV kernels: arrays of modest numbers, or one number (signed)."""
    value = st.sampled_from([0.0, 0.1, 0.25, 0.5, 0.6, 1.0, 2.0, 1.5, 0.3]).flatmap(
        lambda v: st.sampled_from([v, -v + 0.0]))
    return st.one_of(st.builds(Array, st.lists(value, max_size=5).map(tuple)), st.builds(Num, value.filter(
        lambda v: v >= 0)), value.filter(lambda v: v > 0).map(lambda v: Unary("-", Num(v))))


def expressions(
    *, valid: bool = False, names: tuple[str, ...] = NAMES, max_leaves: int = 20
) -> st.SearchStrategy[Expr]:
    """
    Random expression trees over ``names``.

    With ``valid=False`` calls may name unknown functions and take any number of
    arguments (the parser accepts both); with ``valid=True`` only built-ins with
    correct arity appear and SHIFT lags are small whole-number literals.
    """
    leaves: st.SearchStrategy[Expr] = st.one_of(st.builds(Num, numbers()), st.builds(Ref, st.sampled_from(names)),
                                                arrays())

    def extend(children: st.SearchStrategy[Expr]) -> st.SearchStrategy[Expr]:
        unary = st.builds(Unary, st.sampled_from(["-", "+"]), children)
        binary = st.builds(BinOp, st.sampled_from(BINARY_OPS), children, children)
        if valid:
            fixed = st.sampled_from([n for n in FUNCTIONS if n not in ("SHIFT", "CONV", "PULSE")
                                     and FUNCTIONS[n].max_args is not None])
            calls = st.one_of(
                st.builds(lambda x, k: Call("CONV", (x, k)), children, kernels()),
                st.builds(lambda p, ph, amp: Call("PULSE", (Num(float(p)), Num(float(ph)), *amp)),
                          st.integers(1, 5), st.integers(0, 6), st.lists(children, max_size=1)),
                fixed.flatmap(lambda n: st.builds(Call, st.just(n), st.tuples(*[children] * FUNCTIONS[n].min_args))),
                st.builds(
                    Call,
                    st.sampled_from(["MIN", "MAX"]),
                    st.lists(children, min_size=1, max_size=4).map(tuple),
                ),
                st.builds(lambda x, k: Call("SHIFT", (x, Num(float(k)))), children, st.integers(0, 10)),
            )
        else:
            calls = st.builds(
                Call,
                st.sampled_from([*FUNCTIONS, *UNKNOWN_FUNCTIONS]),
                st.lists(children, min_size=0, max_size=4).map(tuple),
            )
        return st.one_of(unary, binary, calls)

    return st.recursive(leaves, extend, max_leaves=max_leaves)


def grids(*, max_bins: int = 12) -> st.SearchStrategy[dict[str, Any]]:
    """A model's ``grid`` mapping, as it would appear in YAML."""
    return st.fixed_dictionaries(
        {
            "bins": st.integers(min_value=1, max_value=max_bins),
            "binSize": st.integers(min_value=1, max_value=1000),
            "binUnit": st.sampled_from(BIN_UNITS),
        }
    )


def series(bins: int, *, magnitude: float = 1e6) -> st.SearchStrategy[list[float]]:
    """``bins`` finite values with ``abs(v) <= magnitude``."""
    value = st.floats(min_value=-magnitude, max_value=magnitude, allow_nan=False, allow_infinity=False)
    return st.lists(value, min_size=bins, max_size=bins)


@st.composite
def pmfs(draw: st.DrawFn, *, sample: bool = True) -> dict[str, Any]:
    """
    A list-form PMF over distinct whole numbers whose probabilities are
    multiples of 1/16 summing to exactly 1 (so expected values are exact).
    """
    n = draw(st.integers(min_value=1, max_value=5))
    values = draw(st.lists(st.integers(-1000, 1000).map(float), min_size=n, max_size=n, unique=True))
    cuts = sorted(draw(st.lists(st.integers(0, 16), min_size=n - 1, max_size=n - 1)))
    weights = [b - a for a, b in zip([0, *cuts], [*cuts, 16], strict=True)]
    return {"values": values, "probabilities": [w / 16 for w in weights], "sample": sample}


@st.composite
def models(draw: st.DrawFn) -> str:
    """
    Model YAML: const nodes ``a`` and ``b``, a sampled PMF node ``p`` and an
    expression node ``out`` over ``a``, ``b`` and ``p``.
    """
    grid = draw(grids())
    bins = grid["bins"]
    expr = draw(expressions(valid=True, names=(*SERIES_NAMES, "p"), max_leaves=10))
    doc = {
        "schemaVersion": 1,
        "grid": grid,
        "nodes": [
            {"id": "a", "kind": "const", "values": draw(series(bins))},
            {"id": "b", "kind": "const", "values": draw(series(bins))},
            {"id": "p", "kind": "pmf", "pmf": draw(pmfs())},
            {"id": "out", "kind": "expr", "expr": to_text(expr)},
        ],
    }
    return yaml.safe_dump(doc, sort_keys=False)
