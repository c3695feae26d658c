"""
CONV, PULSE and array literals inside feedback loops: per bin on floats, as
vectors across loops and lanes, in waves, and compiled - the same bits as the
whole-series functions and the bin-by-bin interpreter (0017).
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import pytest
from tests.engine.oracle import interpret, same_bits

import flowtime
from flowtime.engine.schedule import levels
from flowtime.errors import ModelValidationError
from flowtime.expr import functions as fx
from flowtime.expr.parser import parse_expression
from flowtime.model.deps import references_with_lag
from flowtime.model.load import load_model

CASES = Path(__file__).parent.parent / "cases"

WAVE = """\
schemaVersion: 1
grid: {bins: 9, binSize: 1, binUnit: hours}
nodes:
  - {id: x, values: [4, 0, 1, 7, 0, 2, 9, 3, 1]}
  - {id: a, kind: expr, expr: "SHIFT(a, 1) * 0.5 + x + [1, -2, 0.5]"}
  - {id: b, kind: expr, expr: "SHIFT(b, 1) * 0.25 + CONV(SHIFT(a, 1), [0.5, 0.25, 0.25]) + PULSE(3, 1, SHIFT(a, 1))"}
  - {id: a2, kind: expr, expr: "SHIFT(a2, 1) * 0.75 + x + [1, -2, 0.5]"}
  - {id: b2, kind: expr, expr: "SHIFT(b2, 1) * 0.5 + CONV(SHIFT(a, 1), [0.5, 0.25, 0.25]) + PULSE(3, 1, SHIFT(a, 1))"}
"""

# The loop's own CONV argument goes non-finite in some bins (SQRT of a negative): skipped.
NON_FINITE = """\
schemaVersion: 1
grid: {bins: 10, binSize: 1, binUnit: hours}
nodes:
  - {id: arrivals, values: [5, 0, 0, 9, 0, 1, 0, 0, 4, 0]}
  - {id: q, kind: expr, expr: "MAX(0, SHIFT(q, 1) * 0.5 + arrivals - 2) + CONV(SQRT(SHIFT(q, 1) - 2), [1, 0.5, 0.25])"}
  - {id: probe, kind: expr, expr: "SQRT(SHIFT(q, 1) - 2)"}
"""


def _paths(text: str, sets: list[dict[str, object]]) -> flowtime.Results:
    """Every path gives the same bits: Python kernels, compiled kernels, K lanes of each, the interpreter."""
    model = load_model(text).model
    python, compiled = flowtime.plan(model, jit=False), flowtime.plan(model, jit=True)
    assert compiled.jit.sites and all(s.state.startswith("compiled") for s in compiled.jit.sites), compiled.jit
    expected = python.evaluate()
    oracle = interpret(python)
    got = compiled.evaluate()
    for n in python.order:
        assert same_bits(expected[n], oracle[n]), (n, expected[n], oracle[n])
        assert same_bits(expected[n], got[n]), (n, expected[n], got[n])
    many_p, many_c = python.evaluate_many(sets=sets), compiled.evaluate_many(sets=sets)
    for i, s in enumerate(sets):
        alone = python.evaluate(set=s)
        for n in python.order:
            assert same_bits(many_p[n][i], alone[n]), (i, n)
            assert same_bits(many_c[n][i], alone[n]), (i, n)
    return expected


def test_a_retry_loop_reading_conv_of_its_own_past_errors_gives_the_same_bits_on_every_path() -> None:
    text = (CASES / "conv_retry_loop" / "model.yaml").read_text()
    r = _paths(text, [{"capacity": 8}, {"capacity": 5}, {"capacity": [9, 3, 12, 0, 4, 6]}])
    assert r["retries"].tolist() == [0, 1, 2, 3.25, 1.75, 1]
    assert r["served"].tolist() == [8, 8, 8, 3.25, 1.75, 1]
    assert sum(r["served"].tolist()) == 30  # the kernel sums to 1: every arrival is served in the end


def test_conv_inside_a_loop_skips_non_finite_samples_on_every_path() -> None:
    r = _paths(NON_FINITE, [{"arrivals": 5}, {"arrivals": [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]}])
    assert any(math.isnan(v) for v in r["probe"].tolist()), "the case must produce NaN samples"
    assert all(math.isfinite(v) for v in r["q"].tolist())


def test_conv_pulse_and_arrays_in_a_wave_of_loops_reading_each_others_past() -> None:
    graph = flowtime.plan(load_model(WAVE).model, jit=False).graph
    # a, b and b2 step together; b and b2 (one shape, their own numbers) as one vector group
    assert [len(w) for lv in levels(graph) for w in lv.waves] == [3]
    r = _paths(WAVE, [{"x": 1}, {"x": [0, 1, 0, 1, 0, 1, 0, 1, 0]}, {}])
    # by hand: a0 = 4 + 1 = 5, a1 = 2.5 + 0 - 2 = 0.5; b0 = 0, b1 = 0 + 5 * 0.5 + 5 (a pulse at t = 1) = 7.5
    assert r["a"].tolist()[:2] == [5, 0.5]
    assert r["b"].tolist()[:2] == [0, 7.5]


def test_conv_reads_its_argument_in_the_same_bin() -> None:
    """CONV(x, k) reads x at lags 0 .. len(k) - 1: a dependency at lag 0, so reading itself is a cycle."""
    assert references_with_lag(parse_expression("CONV(x, [0, 0.6]) + CONV(SHIFT(y, 2), 1) + PULSE(3, 1, z)")) == {
        "x": 0, "y": 2, "z": 0}
    text = ("schemaVersion: 1\ngrid: {bins: 3, binSize: 1, binUnit: hours}\nnodes:\n"
            "  - {id: q, kind: expr, expr: 'CONV(q, [0, 1])'}\n")
    with pytest.raises(ModelValidationError, match="cycle without delay: q -> q"):
        load_model(text)


def test_a_bare_array_in_a_loop_is_its_value_per_bin_and_zero_past_its_end() -> None:
    text = ("schemaVersion: 1\ngrid: {bins: 5, binSize: 1, binUnit: hours}\nnodes:\n"
            "  - {id: q, kind: expr, expr: 'SHIFT(q, 1) * 2 + [1, 0, 3]'}\n"
            "  - {id: c, kind: const, values: 1}\n")
    r = _paths(text, [{"c": 2}, {}])
    assert r["q"].tolist() == [1, 2, 7, 14, 28]


def test_conv_and_pulse_replaced_in_the_table_are_called_with_their_literals(monkeypatch: pytest.MonkeyPatch) -> None:
    """A program lowers CONV/PULSE by the implementation's identity; a replaced one is called as it is."""
    calls: list[str] = []

    def conv(x: object, kernel: tuple[float, ...], bins: int) -> object:
        calls.append(f"CONV {kernel} {bins}")
        return fx.v_conv(x, kernel, bins)

    def pulse(period: int, phase: int, amp: object, bins: int) -> object:
        calls.append(f"PULSE {period} {phase} {bins}")
        return fx.v_pulse(period, phase, amp, bins)

    monkeypatch.setitem(fx.FUNCTIONS, "CONV", dataclasses.replace(fx.FUNCTIONS["CONV"], vector=conv))
    monkeypatch.setitem(fx.FUNCTIONS, "PULSE", dataclasses.replace(fx.FUNCTIONS["PULSE"], vector=pulse))
    text = ("schemaVersion: 1\ngrid: {bins: 4, binSize: 1, binUnit: hours}\nnodes:\n"
            "  - {id: a, values: [1, 2, 3, 4]}\n"
            "  - {id: b, kind: expr, expr: 'CONV(a, [1, 1]) + PULSE(2, 1, a)'}\n")
    r = flowtime.plan(load_model(text).model, jit=False).evaluate()
    assert r["b"].tolist() == [1, 5, 5, 11]
    assert calls == ["CONV (1.0, 1.0) 4", "PULSE 2 1 4"]
