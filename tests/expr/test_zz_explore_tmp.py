import numpy as np, yaml
from hypothesis import given, settings, strategies as st, HealthCheck
from flowtime.engine import evaluate
from flowtime.expr.parser import parse_expression
from flowtime.expr.syntax import to_text, Ref, Call, Num, Unary, BinOp, fold
from flowtime.model.load import load_model
from tests.strategies import expressions, series, SERIES_NAMES, models

BIG = settings(max_examples=3000, deadline=None, suppress_health_check=list(HealthCheck))

@BIG
@given(expressions())
def test_roundtrip(e):
    assert parse_expression(to_text(e)) == e

def sub(e):
    def f(n, kids):
        if isinstance(n, Ref): return Call("IF", (Num(1.0), n, Call("SHIFT", (Ref("loop"), Num(1.0)))))
        if isinstance(n, Unary): return Unary(n.op, kids[0])
        if isinstance(n, BinOp): return BinOp(n.op, kids[0], kids[1])
        if isinstance(n, Call): return Call(n.name, tuple(kids))
        return n
    return fold(e, f)

@st.composite
def inputs(draw):
    bins = draw(st.integers(1, 6))
    return bins, draw(series(bins)), draw(series(bins))

@BIG
@given(expressions(valid=True, names=SERIES_NAMES, max_leaves=10), inputs())
def test_loop_matches_vector(e, inp):
    bins, a, b = inp
    text = to_text(e)
    if any(f in text for f in ("EXP", "LOG", "POW")):
        return
    doc = {"schemaVersion": 1, "grid": {"bins": bins, "binSize": 1, "binUnit": "hours"},
           "nodes": [{"id": "a", "values": a}, {"id": "b", "values": b},
                     {"id": "x", "kind": "expr", "expr": text},
                     {"id": "loop", "kind": "expr", "expr": to_text(sub(e)) + " + 0 * 0"}]}
    out = evaluate(load_model(yaml.safe_dump(doc)).model).series
    np.testing.assert_array_equal(out["loop"], out["x"], err_msg=text)
