"""
One table for every engine benchmark: each row is a time against a baseline
measured in the same run, and a target that the row either meets or misses.

Targets are written the way the issue states them: ``Target.at_most(2)`` (our
time at most 2x the baseline), ``Target.faster(4)`` (at least 4x faster than
the baseline), ``Target.within(150e-6)`` (an absolute time), or no target
(``info``: a figure shown for context).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Target:
    kind: str  # "ratio" (ours / base <= limit), "faster" (base / ours >= limit), "time" (ours <= limit s), "info"
    limit: float = 0.0
    as_speedup: bool = False  # show the ratio as "N x faster" (base / ours)

    @classmethod
    def at_most(cls, ratio: float) -> Target:
        return cls("ratio", ratio)

    @classmethod
    def faster(cls, ratio: float) -> Target:
        return cls("faster", ratio, as_speedup=True)

    @classmethod
    def within(cls, seconds: float) -> Target:
        return cls("time", seconds)

    @classmethod
    def info(cls, *, faster: bool = False) -> Target:
        return cls("info", as_speedup=faster)

    def text(self) -> str:
        if self.kind == "ratio":
            return f"<= {self.limit:g}x"
        if self.kind == "faster":
            return f">= {self.limit:g}x faster"
        if self.kind == "time":
            return f"<= {duration(self.limit)}"
        return "info"


@dataclass(frozen=True)
class Row:
    name: str
    ours: float  # seconds
    base: float  # seconds, the baseline measured in the same run (or a fixed mark, said in the note)
    target: Target
    note: str = ""

    @property
    def ratio(self) -> float:
        return self.ours / self.base

    def ratio_text(self) -> str:
        return f"{1 / self.ratio:.1f}x faster" if self.target.as_speedup else f"{self.ratio:.2f}"

    def met(self) -> bool | None:
        t = self.target
        if t.kind == "ratio":
            return self.ratio <= t.limit
        if t.kind == "faster":
            return 1 / self.ratio >= t.limit
        if t.kind == "time":
            return self.ours <= t.limit
        return None

    def verdict(self) -> str:
        met = self.met()
        if met is None:
            return ""
        if met:
            return "met"
        t = self.target
        if t.kind == "ratio":
            return f"MISSED by {self.ratio / t.limit:.2f}x"
        if t.kind == "faster":
            return f"MISSED by {t.limit * self.ratio:.2f}x"
        return f"MISSED by {self.ours / t.limit:.2f}x"


def duration(seconds: float) -> str:
    """A time in the unit that reads best: 42 us, 1.23 ms, 3.4 s."""
    if seconds < 1e-3:
        return f"{seconds * 1e6:.0f} us" if seconds >= 1e-5 else f"{seconds * 1e6:.1f} us"
    if seconds < 1.0:
        return f"{seconds * 1e3:.2f} ms" if seconds < 0.1 else f"{seconds * 1e3:.0f} ms"
    return f"{seconds:.2f} s"


def print_table(rows: list[Row]) -> None:
    width = max(40, *(len(r.name) for r in rows))
    head = f"{'benchmark':{width}} {'flowtime':>10} {'baseline':>10} {'ratio':>13}  {'target':15} {'verdict':17} note"
    print(head)
    print("-" * (len(head) + 40))
    for r in rows:
        print(f"{r.name:{width}} {duration(r.ours):>10} {duration(r.base):>10} {r.ratio_text():>13}  "
              f"{r.target.text():15} {r.verdict():17} {r.note}", flush=True)
