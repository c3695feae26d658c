"""The one timing rule every benchmark uses: one warm-up call, then the median of ``repeats``."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from typing import Any


def median_time(fn: Callable[[], Any], repeats: int) -> float:
    fn()  # warm-up (first calls pay caches, imports and JIT-like code generation)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)
