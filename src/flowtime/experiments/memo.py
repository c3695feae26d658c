"""
``Memo``: a batched function of points remembered point by point, for the iterative kinds.

Optimisers ask for the same point more than once (the objective and each
constraint at one x, a line search returning to its start, the callback's
current point); each distinct point is evaluated once. Every call hands the
wrapped function ONE batch of the points it has not seen (a finite-difference
Jacobian's p + 1 points are one engine call). ``jacobian`` is that batched
forward difference. Points are remembered by their exact float64 bytes.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import numpy.typing as npt

Array = npt.NDArray[np.float64]


class Memo:
    """``f`` of ``(n, p)`` points -> ``(n, k)`` rows, each distinct point evaluated once, in first-seen order."""

    def __init__(self, f: Callable[[Array], Array], p: int) -> None:
        self._f = f
        self.p = p
        self._rows: dict[bytes, int] = {}
        self.points: list[Array] = []  # every distinct point evaluated, in order
        self.values: list[Array] = []  # its row of f
        self.calls = 0  # batches handed to f

    def __call__(self, x: Array) -> Array:
        """The rows of ``f`` at ``x`` (``(n, p)`` or one point ``(p,)``: then one row)."""
        pts = np.asarray(x, dtype=np.float64)
        one = pts.ndim == 1
        pts = pts.reshape(-1, self.p)
        keys = [np.ascontiguousarray(r).tobytes() for r in pts]
        new: dict[bytes, Array] = {}
        for key, row in zip(keys, pts, strict=True):
            if key not in self._rows and key not in new:
                new[key] = row
        if new:
            got = np.asarray(self._f(np.stack(list(new.values()))), dtype=np.float64)
            got = got.reshape(len(new), -1)
            self.calls += 1
            for (key, row), value in zip(new.items(), got, strict=True):
                self._rows[key] = len(self.points)
                self.points.append(row.copy())
                self.values.append(value.copy())
        out = np.stack([self.values[self._rows[k]] for k in keys])
        return out[0] if one else out

    @property
    def evaluations(self) -> int:
        return len(self.points)

    def table(self) -> tuple[Array, Array]:
        """(points ``(n, p)``, rows ``(n, k)``) of every distinct evaluation so far."""
        if not self.points:
            return np.zeros((0, self.p)), np.zeros((0, 0))
        return np.stack(self.points), np.stack(self.values)


def jacobian(memo: Memo, u: Array, step: float, low: float = 0.0, high: float = 1.0) -> tuple[Array, Array]:
    """
    (f(u), J) by forward differences, the p + 1 points in one batch. Each step is ``step`` wide and
    taken backwards where a forward step would leave ``[low, high]`` (the model is never asked
    outside the bounds).
    """
    u = np.asarray(u, dtype=np.float64)
    p = u.size
    h = np.where(u + step <= high, step, -step)
    h = np.where(u + h >= low, h, 0.0)  # a range narrower than the step: leave that direction flat
    pts = np.vstack([u, u + np.diag(h)])
    rows = memo(pts)
    base = rows[0]
    jac = np.zeros((base.size, p))
    for j in range(p):
        if h[j] != 0.0:
            jac[:, j] = (rows[j + 1] - base) / h[j]
    return base, jac
