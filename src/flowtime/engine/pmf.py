"""
PMF nodes: expected values and seeded sampling with the reference's PCG32.

The generator is PCG-XSH-RR 64->32 seeded the way the reference engine does it
(state = seed as uint64, increment fixed, one warm-up output discarded). Its
outputs are produced for a whole series at once: the LCG states are computed
with jump-ahead doubling, so drawing a million values is a handful of NumPy
operations instead of a million Python steps.
"""

from __future__ import annotations

import hashlib

import numpy as np
import numpy.typing as npt

MULT = 6364136223846793005
INC = 1442695040888963407
_MASK64 = (1 << 64) - 1


def _lcg_states(first: int, n: int) -> npt.NDArray[np.uint64]:
    """The n consecutive LCG states starting at ``first``."""
    out = np.empty(n, dtype=np.uint64)
    if n == 0:
        return out
    out[0] = np.uint64(first & _MASK64)
    filled = 1
    a, c = MULT, INC  # state_{k+filled} = a * state_k + c, for the current block size
    with np.errstate(over="ignore"):
        while filled < n:
            take = min(filled, n - filled)
            out[filled : filled + take] = out[:take] * np.uint64(a) + np.uint64(c)
            filled += take
            # Compose the step with itself: jump twice as far next round.
            a, c = (a * a) & _MASK64, (a * c + c) & _MASK64
    return out


def pcg32_uint32(seed: int, n: int) -> npt.NDArray[np.uint32]:
    """
    The first ``n`` outputs of the reference PCG32 after its warm-up draw.

    >>> pcg32_uint32(42, 5).tolist()
    [1971522493, 242089394, 3457789919, 3637502659, 19596830]
    """
    s0 = seed & _MASK64
    s1 = (s0 * MULT + INC) & _MASK64  # warm-up: one output generated and discarded
    old = _lcg_states(s1, n)
    xorshifted = (((old >> np.uint64(18)) ^ old) >> np.uint64(27)).astype(np.uint32)
    rot = (old >> np.uint64(59)).astype(np.uint32)
    with np.errstate(over="ignore"):
        left = (-rot.astype(np.int64) & 31).astype(np.uint32)
        return (xorshifted >> rot) | (xorshifted << left)


def pcg32_doubles(seed: int, n: int) -> npt.NDArray[np.float64]:
    """
    Uniform doubles in [0, 1): each output divided by 2**32.

    >>> [round(x, 12) for x in pcg32_doubles(42, 3).tolist()]
    [0.459030851023, 0.056365829427, 0.805079452461]
    """
    return pcg32_uint32(seed, n).astype(np.float64) / 4294967296.0


def sample(values: npt.NDArray[np.float64], probabilities: npt.NDArray[np.float64], seed: int, n: int
           ) -> npt.NDArray[np.float64]:
    """
    ``n`` draws by inverse CDF: the first value whose running probability is >= u.

    >>> v, p = np.array([100.0, 200.0]), np.array([0.5, 0.5])
    >>> sample(v, p, 42, 10).tolist()
    [100.0, 100.0, 200.0, 200.0, 100.0, 200.0, 200.0, 100.0, 100.0, 200.0]
    """
    cumulative = np.cumsum(probabilities)
    u = pcg32_doubles(seed, n)
    idx = np.searchsorted(cumulative, u, side="left")
    np.minimum(idx, len(values) - 1, out=idx)
    return values[idx]


def node_seed(seed: int, node_id: str) -> int:
    """
    The stream seed of one PMF node: a hash of the run seed and the node id, so
    nodes draw independently and adding a node never changes another's draws.
    """
    digest = hashlib.sha256(f"{seed & _MASK64}:{node_id}".encode()).digest()
    return int.from_bytes(digest[:8], "little")
