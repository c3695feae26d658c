"""
``Finding``: one thing the analyser noticed about a run, located in the topology and in time.

>>> f = Finding("queue_negative", "warning", "queue depth is below 0", node="Queue", bins=(3, 4), count=2,
...             value=-1.5, hint="a queue cannot hold less than nothing; check what drains it")
>>> str(f)
'queue_negative (warning) at Queue, bins 3, 4: queue depth is below 0 (value -1.5)'
>>> f.to_dict()["binCount"], f.to_dict()["nodeId"]
(2, 'Queue')
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from flowtime.records import record

SEVERITIES = ("info", "warning", "error")  # in rising order; --strict fails from "warning" up
MAX_BINS = 5  # bins listed in a finding; ``count`` says how many there are in all


@record
class Finding:
    code: str
    severity: str  # one of SEVERITIES
    message: str
    node: str | None = None  # topology node id
    edge: str | None = None  # edge id as the series index names it (``edge_name``)
    bins: tuple[int, ...] = ()  # the first MAX_BINS offending bins
    count: int = 0  # offending bins in all (0 for a finding about the model, not about bins)
    value: float | None = None  # the size of the mismatch (worst value, ratio or difference)
    hint: str = ""  # one line: what to look at

    def at_least(self, severity: str) -> bool:
        return SEVERITIES.index(self.severity) >= SEVERITIES.index(severity)

    def to_dict(self) -> dict[str, Any]:
        value = self.value if self.value is None or math.isfinite(self.value) else None
        return {"code": self.code, "severity": self.severity, "message": self.message, "nodeId": self.node,
                "edgeIds": [self.edge] if self.edge else [], "bins": list(self.bins), "binCount": self.count,
                "value": value, "hint": self.hint}

    def __str__(self) -> str:
        where = [f"at {self.node}" if self.node else "", f"edge {self.edge}" if self.edge else ""]
        if self.bins:
            more = f" (+{self.count - len(self.bins)} more)" if self.count > len(self.bins) else ""
            where.append("bin" + ("s " if len(self.bins) > 1 else " ") + ", ".join(map(str, self.bins)) + more)
        loc = " ".join(w for w in where if w).replace(" bin", ", bin")
        value = f" (value {self.value:g})" if self.value is not None else ""
        return f"{self.code} ({self.severity}){' ' + loc if loc else ''}: {self.message}{value}"


def offending(mask: npt.NDArray[np.bool_]) -> tuple[tuple[int, ...], int]:
    """The first MAX_BINS bins where ``mask`` holds, and how many there are."""
    idx = np.flatnonzero(mask)
    return tuple(int(i) for i in idx[:MAX_BINS]), int(idx.size)


def worst(findings: Sequence[Finding]) -> str | None:
    """The highest severity among ``findings`` (None when there are none)."""
    return max((f.severity for f in findings), key=SEVERITIES.index, default=None)
