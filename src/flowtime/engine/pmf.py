"""
PMF nodes: expected values and seeded sampling with the reference's PCG32.

The generator is PCG-XSH-RR 64->32 seeded the way the reference engine does it
(state = seed as uint64, increment fixed, one warm-up output discarded). Its
outputs are produced for a whole series at once: the LCG states are computed
with jump-ahead doubling, so drawing a million values is a handful of NumPy
operations instead of a million Python steps.

The ``*_many`` functions draw for K seeds at once, row k equal bit for bit to
the single-seed function with ``seeds[k]``: the state after j steps is
``A[j] * seed + C[j]`` with coefficients shared by every seed, so a block of
rows is one multiply-add, and the work runs in blocks that stay in cache.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

MULT = 6364136223846793005
INC = 1442695040888963407
_MASK64 = (1 << 64) - 1
Seeds = Sequence[int] | npt.NDArray[np.integer[Any]]


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


# -- many seeds at once ---------------------------------------------------------------------------

_BLOCK = 32768  # elements per work block: its few uint64 buffers stay in the L2 cache (measured best)
_LINEAR = 16  # up to this many thresholds, counting them beats a binary search per draw (measured)
_CACHED_BINS = 1 << 16  # jump coefficients are kept for grids up to this size (1 MiB)
_U18, _U27, _U59 = np.uint64(18), np.uint64(27), np.uint64(59)
_LOW32 = np.uint64(0xFFFFFFFF)
_TWICE = np.uint64(0x100000001)  # x * _TWICE == x | x << 32 for x < 2**32
U64 = npt.NDArray[np.uint64]


def _compute_jumps(n: int) -> tuple[U64, U64]:
    """
    ``(A, C)`` with the LCG state after ``j + 1`` steps from ``s`` equal to
    ``A[j] * s + C[j]`` (mod 2**64): the warm-up step, then the first ``n`` draws.
    """
    mul, inc = np.zeros(n, dtype=np.uint64), np.zeros(n, dtype=np.uint64)
    mul[:1], inc[:1] = np.uint64(MULT), np.uint64(INC)
    filled = 1
    a, c = MULT, INC  # the step of the current block size, as in _lcg_states
    while filled < n:
        take = min(filled, n - filled)
        # (a, c) after (A[j], C[j]) is (a * A[j], a * C[j] + c); arrays wrap without warnings.
        np.multiply(mul[:take], np.uint64(a), out=mul[filled : filled + take])
        np.multiply(inc[:take], np.uint64(a), out=inc[filled : filled + take])
        inc[filled : filled + take] += np.uint64(c)
        filled += take
        a, c = (a * a) & _MASK64, (a * c + c) & _MASK64
    mul.flags.writeable = inc.flags.writeable = False
    return mul, inc


_cached_jumps = functools.lru_cache(maxsize=8)(_compute_jumps)


def _jumps(n: int) -> tuple[U64, U64]:
    return _cached_jumps(n) if n <= _CACHED_BINS else _compute_jumps(n)


def _seed_array(seeds: Seeds) -> U64:
    """Seeds as uint64, reduced mod 2**64 as the single-seed functions do (-1 is 2**64 - 1)."""
    if isinstance(seeds, np.ndarray) and seeds.dtype.kind in "iu":
        flat = seeds.reshape(-1)
        return flat.view(np.uint64) if flat.dtype == np.uint64 else flat.astype(np.int64).view(np.uint64)
    return np.array([int(s) & _MASK64 for s in seeds], dtype=np.uint64)


class _Scratch:
    """Work buffers for the blocks of a ``(K, n)`` draw, reused from block to block and node to node."""

    def __init__(self, n: int) -> None:
        self.rows = max(1, _BLOCK // max(n, 1))
        self.width = max(1, min(n, _BLOCK))
        shape = (self.rows, self.width)
        self.state, self.draws = np.empty(shape, dtype=np.uint64), np.empty(shape, dtype=np.uint64)
        self.index, self.above = np.empty(shape, dtype=np.uint8), np.empty(shape, dtype=np.bool_)

    def blocks(self, k: int, n: int) -> Iterator[tuple[slice, slice]]:
        """Row and column ranges of the blocks covering ``(k, n)``."""
        for r0 in range(0, k, self.rows):
            for c0 in range(0, n, self.width):
                yield slice(r0, min(k, r0 + self.rows)), slice(c0, min(n, c0 + self.width))


def _draws(s0: U64, n: int, scratch: _Scratch) -> Iterator[tuple[slice, slice, U64]]:
    """Each block of the ``(K, n)`` PCG32 outputs (below 2**32, as uint64): rows, columns, outputs."""
    mul, inc = _jumps(n)
    # Array arithmetic wraps mod 2**64 without a warning (only NumPy scalars check overflow).
    for rows, cols in scratch.blocks(len(s0), n):
        h, w = rows.stop - rows.start, cols.stop - cols.start
        state, out = scratch.state[:h, :w], scratch.draws[:h, :w]
        np.multiply(s0[rows, None], mul[cols], out=state)
        state += inc[cols]
        np.right_shift(state, _U18, out=out)  # XSH: ((old >> 18) ^ old) >> 27, low 32 bits
        out ^= state
        out >>= _U27
        out &= _LOW32
        out *= _TWICE  # a 32-bit rotate right by r is now the low half of a 64-bit shift by r
        state >>= _U59
        out >>= state
        out &= _LOW32
        yield rows, cols, out


def pcg32_uint32_many(seeds: Seeds, n: int) -> npt.NDArray[np.uint32]:
    """
    ``(K, n)``: row k is ``pcg32_uint32(seeds[k], n)``.

    >>> pcg32_uint32_many([42, 7], 3).tolist()[0]
    [1971522493, 242089394, 3457789919]
    """
    s0 = _seed_array(seeds)
    result = np.empty((len(s0), n), dtype=np.uint32)
    for rows, cols, out in _draws(s0, n, _Scratch(n)):
        result[rows, cols] = out
    return result


def pcg32_doubles_many(seeds: Seeds, n: int) -> npt.NDArray[np.float64]:
    """``(K, n)``: row k is ``pcg32_doubles(seeds[k], n)``."""
    return pcg32_uint32_many(seeds, n).astype(np.float64) / 4294967296.0


def sample_many(values: npt.NDArray[np.float64], probabilities: npt.NDArray[np.float64], seeds: Seeds, n: int,
                *, out: npt.NDArray[np.float64] | None = None) -> npt.NDArray[np.float64]:
    """
    ``(K, n)`` draws: row k is ``sample(values, probabilities, seeds[k], n)``
    (for non-negative probabilities, as a PMF node's are). Written into ``out`` if given.

    >>> v, p = np.array([100.0, 200.0]), np.array([0.5, 0.5])
    >>> sample_many(v, p, [42, 42], 4).tolist()
    [[100.0, 100.0, 200.0, 200.0], [100.0, 100.0, 200.0, 200.0]]
    """
    s0 = _seed_array(seeds)
    result = np.empty((len(s0), n), dtype=np.float64) if out is None else out
    _sample_into(np.asarray(values, dtype=np.float64), np.asarray(probabilities, dtype=np.float64), s0, n,
                 result, _Scratch(n))
    return result


def _sample_into(values: npt.NDArray[np.float64], probabilities: npt.NDArray[np.float64], s0: U64, n: int,
                 result: npt.NDArray[np.float64], scratch: _Scratch) -> None:
    # The reference takes the first i with cumulative[i] >= x / 2**32: that is the number of i
    # with x > floor(cumulative[i] * 2**32) (the scaling is exact), so draws compare as integers.
    # The last value needs no threshold: every draw above the others ends there, as min() makes it.
    cumulative = np.cumsum(probabilities)[: len(values) - 1]
    thresholds = np.clip(np.floor(cumulative * 4294967296.0), 0.0, 4294967296.0).astype(np.uint64)
    if len(thresholds) == 0:
        result[...] = values[0]
        return
    first, rest = thresholds[0], thresholds[1:]
    linear = len(thresholds) <= _LINEAR
    for rows, cols, draws in _draws(s0, n, scratch):
        if linear:
            index = scratch.index[: draws.shape[0], : draws.shape[1]]
            above = scratch.above[: draws.shape[0], : draws.shape[1]]
            np.greater(draws, first, out=index.view(np.bool_))
            for t in rest:
                np.greater(draws, t, out=above)
                index += above.view(np.uint8)
            np.take(values, index, out=result[rows, cols], mode="clip")  # "clip": NumPy's fast path for uint8
        else:
            np.take(values, np.searchsorted(thresholds, draws, side="left"), out=result[rows, cols])


class RunSeeds:
    """
    Run seeds prepared for the stream seeds of many nodes: each seed's SHA-256
    state after ``"{seed}:"``, copied for each node, so that prefix is hashed once.
    """

    __slots__ = ("_states",)

    def __init__(self, seeds: Iterable[int]) -> None:
        self._states = [hashlib.sha256(b"%d:" % (int(s) & _MASK64)) for s in seeds]

    def __len__(self) -> int:
        return len(self._states)

    def node(self, node_id: str) -> U64:
        """``node_seed(s, node_id)`` for each run seed ``s``."""
        suffix = node_id.encode()
        digests = []
        for state in self._states:
            h = state.copy()
            h.update(suffix)
            digests.append(h.digest())
        return _first_words(digests)


def _first_words(digests: list[bytes]) -> U64:
    """The first 8 bytes of each 32-byte digest, little-endian, as ``node_seed`` reads them."""
    return np.frombuffer(b"".join(digests), dtype="<u8")[::4].astype(np.uint64)


def node_seeds(seeds: Iterable[int] | RunSeeds, node_id: str) -> U64:
    """
    ``node_seed(s, node_id)`` for every run seed ``s``, as uint64; pass
    ``RunSeeds(seeds)`` when asking for many nodes of the same seeds.

    >>> node_seeds([1, -1], "p").tolist() == [node_seed(1, "p"), node_seed(-1, "p")]
    True
    """
    if isinstance(seeds, RunSeeds):
        return seeds.node(node_id)
    text = b"%d:" + node_id.encode().replace(b"%", b"%%")
    sha = hashlib.sha256
    return _first_words([sha(text % (int(s) & _MASK64)).digest() for s in seeds])


def sample_nodes(nodes: Sequence[tuple[str, npt.NDArray[np.float64], npt.NDArray[np.float64]]],
                 seeds: Sequence[int], n: int, out: npt.NDArray[np.float64] | None = None) -> npt.NDArray[np.float64]:
    """
    ``(P, K, n)``: ``[i, k]`` is ``sample(values, probabilities,
    node_seed(seeds[k], node_id), n)`` of the i-th of ``nodes``, given as
    ``(node_id, values, probabilities)``. One block for all nodes: one
    allocation (which NumPy asks the OS to back with huge pages) instead of
    one per node; read-only, unless written into ``out`` (the caller's block).
    """
    block = np.empty((len(nodes), len(seeds), n), dtype=np.float64) if out is None else out
    run, scratch = RunSeeds(seeds), _Scratch(n)
    for i, (node_id, values, probabilities) in enumerate(nodes):
        _sample_into(np.asarray(values, dtype=np.float64), np.asarray(probabilities, dtype=np.float64),
                     run.node(node_id), n, block[i], scratch)
    if out is None:
        block.flags.writeable = False
    return block
