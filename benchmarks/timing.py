"""
The timing rules every benchmark uses: one warm-up call, then the median of
``repeats``; two contenders are timed alternately, so a machine that drifts
(other load, the disk's write-back) weighs on both alike.
"""

from __future__ import annotations

import os
import statistics
import time
from collections.abc import Callable
from typing import Any


def median_time(fn: Callable[[], Any], repeats: int, *, before: Callable[[], Any] | None = None) -> float:
    """The median of ``repeats`` calls of ``fn``, each after ``before()`` (untimed) if given."""
    fn()  # warm-up (first calls pay caches, imports and JIT-like code generation)
    times = []
    for _ in range(repeats):
        if before is not None:
            before()
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def paired_median_times(a: Callable[[], Any], b: Callable[[], Any], repeats: int,
                        *, settle_disk: bool = False, before: Callable[[], Any] | None = None) -> tuple[float, float]:
    """
    Medians of ``a`` and ``b`` timed in turns (a, b, a, b, ...). ``settle_disk``
    flushes pending writes (``os.sync``, untimed) before each call, so neither
    pays for the other's write-back; ``before`` runs (untimed) before each call
    too, e.g. to empty a cache so that every call is a cold one.
    """
    a()
    b()
    times: tuple[list[float], list[float]] = ([], [])
    for _ in range(repeats):
        for fn, out in ((a, times[0]), (b, times[1])):
            if settle_disk:
                os.sync()
            if before is not None:
                before()
            t0 = time.perf_counter()
            fn()
            out.append(time.perf_counter() - t0)
    return statistics.median(times[0]), statistics.median(times[1])
