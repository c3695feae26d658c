"""The fast CSV path writes every number exactly as the one-number reference formatter does."""

from __future__ import annotations

import numpy as np
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from flowtime.artifacts.canonical import format_number, format_rows

# Whole numbers, decimals, and the edges of fixed notation (1e-4, 1e15), so that
# whole, mixed and special series all occur.
VALUES = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(-(10**16), 10**16).map(float),
    st.sampled_from([0.0, -0.0, 0.5, 1.0, 10.0, 1e-4, 9.999e-5, 1e15, 999999999999999.9, 1e15 - 1, 0.1 + 0.2]),
    st.floats(-1e6, 1e6).map(lambda x: round(x, 3)),
    # below 1e-4: orjson's 0.00001 and 1.5e-7 become the reference's 1E-05 and 1.5E-07
    st.floats(1e-8, 1e-4), st.floats(-1e-4, -1e-8), st.floats(5e-324, 1e-300),
    st.sampled_from([1e-5, 9.999999999999999e-05, 1e-6, 1.5e-7, 1e-10, -3e-9, 5e-324, 1.0000000000000002e-06]),
)


@given(hnp.arrays(np.float64, hnp.array_shapes(min_dims=2, max_dims=2, max_side=12), elements=VALUES))
def test_every_row_is_t_comma_the_reference_number(block: np.ndarray) -> None:
    bodies = format_rows(block)
    assert len(bodies) == block.shape[0]
    for row, body in zip(block, bodies, strict=True):
        expected = "".join(f"{t},{format_number(v)}\n" for t, v in enumerate(row.tolist()))
        assert body.decode() == expected


def test_small_numbers_take_the_references_exponent_form() -> None:
    block = np.array([[1e-5, 9.999e-5, 1.5e-7, -3e-9, 1e-10, 5e-324, 0.5], [1e-5, 1e20, 2.5e-6, 0.0001, 3, 0, 1]])
    assert format_rows(block) == [
        b"0,1E-05\n1,9.999E-05\n2,1.5E-07\n3,-3E-09\n4,1E-10\n5,5E-324\n6,0.5\n",
        b"0,1E-05\n1,1E+20\n2,2.5E-06\n3,0.0001\n4,3\n5,0\n6,1\n",
    ]


def test_whole_mixed_and_special_series_in_one_block() -> None:
    block = np.array([[0.0, 1.0, 2e14], [0.5, 3.0, 10.0], [1e-5, -0.0, 7.0]])
    assert format_rows(block) == [b"0,0\n1,1\n2,200000000000000\n", b"0,0.5\n1,3\n2,10\n",
                                  b"0,1E-05\n1,-0\n2,7\n"]
