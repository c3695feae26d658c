"""
Result blocks reused across evaluations once nothing handed out still refers to them.

An evaluation writes its series into rows of one float64 block and hands out
read-only views of those rows. Allocating that block afresh costs a page fault
per 4 KiB on first touch, which at a million bins is most of an evaluation. A
``Pool`` keeps the blocks it made and gives one back out only when its
reference count shows that no view of it (nor its read-only face) is alive any
more: the results that used it were dropped, so overwriting it cannot change
anything anyone can see. Blocks still in use are left alone; a new one is made.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Hashable
from typing import Any

import numpy as np
import numpy.typing as npt

Block = npt.NDArray[np.float64]
KEEP = 2  # blocks kept per shape (one being read by a caller, one being written)
KEEP_BYTES = 1 << 30  # a block larger than this is never kept: its memory goes back when its results do


class Entry:
    """
    A pooled block, its read-only face (views of it are what callers get),
    optionally its rows made once (writable ones to write, read-only ones to
    hand out), and the reference counts of what is watched when it is idle.
    """

    __slots__ = ("block", "face", "face_rows", "idle", "rows", "watched")

    def __init__(self, shape: tuple[int, ...], rows: bool) -> None:
        self.block: Block = np.empty(shape, dtype=np.float64)
        face = self.block.view()
        face.flags.writeable = False
        self.face: Block = face
        self.rows: list[Block] = list(self.block) if rows else []
        self.face_rows: list[Block] = list(face) if rows else []
        self.watched: list[Any] = [self.block, face, *self.face_rows]
        self.idle: list[int] = []


def _counts(entry: Entry) -> list[int]:
    # Called the same way when idle is recorded and when it is checked, so the
    # temporaries of the call itself cancel out.
    return list(map(sys.getrefcount, entry.watched))


class Pool:
    """
    Blocks by key (a layout and its shape). ``claim`` gives an entry that no
    one else refers to: a kept one whose views are all gone, or a new one.

    >>> pool = Pool()
    >>> block, face = pool.claim("x", (2, 3))
    >>> row = face[0]
    >>> del block, face
    >>> other, _ = pool.claim("x", (2, 3))  # a view of the first block is alive: a second block
    >>> other is row.base
    False
    >>> del other, _
    >>> again, _ = pool.claim("x", (2, 3))  # nothing refers to the second one now: it is reused
    >>> len(pool)
    2
    """

    def __init__(self) -> None:
        self._kept: dict[Hashable, list[Entry]] = {}
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return sum(len(v) for v in self._kept.values())

    def claim(self, key: Hashable, shape: tuple[int, ...]) -> tuple[Block, Block]:
        """
        A block of ``shape`` that nothing else refers to, and its read-only
        face: the caller writes the block and hands out views of the face.
        (The pair holds both, so no one else can claim them while it is held.)
        """
        block, face, _, _ = self._claim(key, shape, False)
        return block, face

    def claim_rows(self, key: Hashable, shape: tuple[int, ...]) -> tuple[Block, Block, list[Block], list[Block]]:
        """
        ``claim``, and the block's rows made once: writable ones to compute
        into, and read-only ones to hand out (themselves, not new views: an
        evaluation of many nodes would otherwise spend much of its time making views).
        """
        return self._claim(key, shape, True)

    def _claim(self, key: Hashable, shape: tuple[int, ...],
               rows: bool) -> tuple[Block, Block, list[Block], list[Block]]:
        with self._lock:  # the returned tuple holds the block before anyone else can look
            kept = self._kept.setdefault((key, shape, rows), [])
            for entry in kept:
                if _counts(entry) == entry.idle:
                    kept.remove(entry)
                    kept.append(entry)  # most recently used last: the oldest is dropped first
                    return entry.block, entry.face, entry.rows, entry.face_rows
            entry = Entry(shape, rows)
            if entry.block.nbytes <= KEEP_BYTES:
                kept.append(entry)
                if len(kept) > KEEP:
                    del kept[0]
                entry.idle = _counts(entry)
            return entry.block, entry.face, entry.rows, entry.face_rows
