"""The batched objectives the numerical kinds search over, and the bounds of their parameters."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from numpy.typing import NDArray

from flowtime.records import record

# (n_points, n_params) -> (n_points, n_metrics)
Objective = Callable[[NDArray[np.float64]], NDArray[np.float64]]
# (n_points, n_params) -> (n_points, bins): one model series per point (fitting)
SeriesObjective = Callable[[NDArray[np.float64]], NDArray[np.float64]]


@record
class Bounds:
    name: str
    low: float
    high: float
