"""
The cyclic garbage collector's pauses, kept out of the work.

``paused_gc()``: no cyclic garbage collection while a model is loaded or planned.

Loading builds hundreds of thousands of small objects (YAML nodes, values,
syntax trees) and keeps nearly all of them: each automatic collection walks
them again for nothing, and at 10,000 nodes those walks cost more than the
parsing itself (measured: load of the 10,000-node benchmark model 2.0 s with
collections, 1.0 s without). Nothing made while loading forms a reference
cycle that must be freed early, so collections resume once the work is done.

``settled()``: a service's start-up heap moved out of later collections. A full
(generation 2) collection visits every tracked object; a started service holds
~60,000 (modules, classes, functions, the app) that live as long as the
process, and on the 2-core machine visiting them took 30-55 ms, a pause that
landed inside a what-if answer or a scrub step now and then and made most of
their p95. ``gc.freeze`` (CPython's documented remedy) leaves those objects to
reference counting: later collections visit only what the service made since.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def paused_gc() -> Iterator[None]:
    """Collections off for the block (left off if the caller had turned them off already)."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


@contextmanager
def settled() -> Iterator[int]:
    """
    Collect once and freeze every surviving object for the block (a service's
    life: the lifespan's ``yield``), yielding how many are frozen; unfrozen at
    the end, so a process that starts and stops many services (the tests) can
    still collect the ones it dropped.
    """
    gc.collect()
    gc.freeze()
    try:
        yield gc.get_freeze_count()
    finally:
        gc.unfreeze()
