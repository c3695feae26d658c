"""
Each topology node's flow classes as the state API shows them (``byClass``,
``classTruth``): the class parts of the node's flow inputs, read from the
stored class series (``node@NODE@Class``, decision 0021), and the derived
metrics that have a per-class meaning.

A class's derived metrics are the node's formulas with every term taken for
that class (decision 0027):

* ``throughputRatio`` = served_c / arrivals_c, clamped to [0, 1], undefined
  where arrivals_c is at most the analysis tolerance;
* ``queueTimeMs`` = queue_c / served_c x bin ms (Little's law on the class's
  own share of the backlog), undefined where served_c <= 0, and
  ``latencyMinutes`` = queueTimeMs / 60000 - only for a node whose total has a
  queue time (queue semantics).

Utilization, service time and flow latency are not split: capacity and
processing time are not per class.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from flowtime.artifacts import layout
from flowtime.records import record

Block = npt.NDArray[np.float64]
# The inputs that are flows (split by class); capacity, parallelism and the processing-time inputs are not.
CLASS_KEYS = ("arrivals", "served", "errors", "attempts", "failures", "exhaustedFailures", "retryEcho",
              "externalDemand", "queue")
CLASS_DERIVED = ("throughputRatio", "queueTimeMs", "latencyMinutes")
COVERAGES = ("full", "partial", "missing")
_MS_PER_MINUTE = 60_000.0


@record
class NodeClasses:
    """One topology node's classes: its truth flags and, per class, key -> row of the class block."""

    coverage: str  # full | partial | missing
    specific: bool  # some flow input has a named class's part
    fallback: bool  # some of the node's flow is in no named class
    rows: dict[str, dict[str, int]]  # class id -> metric key -> row, classes in declaration order

    def truth(self) -> dict[str, Any]:
        return {"coverage": self.coverage, "hasSpecificClasses": self.specific, "hasFallbackClass": self.fallback}


def node_classes(metrics: Mapping[str, Any], class_ids: Sequence[str], rows: Mapping[str, int], values: Block,
                 bin_ms: float, tolerance: float) -> tuple[dict[str, NodeClasses], Block]:
    """
    Per topology node (``analysis.metrics.NodeMetrics`` by id) its classes, and
    every class series stacked in one read-only block (inputs and derived).
    """
    out: dict[str, NodeClasses] = {}
    arrays: list[Block] = []
    bins = values.shape[1]
    for node_id, m in metrics.items():
        flows = {k: name for k, name in m.inputs.items() if k in CLASS_KEYS}
        per_class: dict[str, dict[str, int]] = {}
        parted: dict[str, Block] = {}  # key -> sum of its class parts
        for cls in class_ids:
            series: dict[str, Block] = {}
            for key, name in flows.items():
                row = rows.get(layout.class_series_id(name, cls))
                if row is not None:
                    series[key] = values[row]
                    parted[key] = parted[key] + values[row] if key in parted else values[row].copy()
            if not series:
                continue
            series.update(_derived(series, "queueTimeMs" in m.series, bin_ms, tolerance))
            per_class[cls] = {}
            for key, arr in series.items():
                per_class[cls][key] = len(arrays)
                arrays.append(np.asarray(arr, dtype=np.float64))
        fallback = any(_unattributed(m.series[k], parted.get(k), tolerance) for k in flows)
        specific = bool(parted)
        coverage = "missing" if not specific else "partial" if fallback else "full"
        out[node_id] = NodeClasses(coverage, specific, fallback, per_class)
    block = np.stack(arrays) if arrays else np.empty((0, bins))
    block.flags.writeable = False
    return out, block


def _derived(s: Mapping[str, Block], queued: bool, bin_ms: float, tolerance: float) -> dict[str, Block]:
    out: dict[str, Block] = {}
    arrivals, served, queue = s.get("arrivals"), s.get("served"), s.get("queue")
    with np.errstate(divide="ignore", invalid="ignore"):
        if arrivals is not None and served is not None:
            out["throughputRatio"] = np.where(arrivals > tolerance, np.clip(served / arrivals, 0.0, 1.0), np.nan)
        if queued and queue is not None and served is not None:
            out["queueTimeMs"] = np.where(served > 0, queue / served * bin_ms, np.nan)
            out["latencyMinutes"] = out["queueTimeMs"] / _MS_PER_MINUTE
    return out


def _unattributed(total: Block, parts: Block | None, tolerance: float) -> bool:
    """
    Whether some of ``total`` is in no named class: the parts (None: there are
    none) fall short of it by more than ``tolerance`` x max(1, |total|) in a bin.
    Undefined bins are skipped.
    """
    rest = total if parts is None else total - parts
    slack = tolerance * np.maximum(1.0, np.abs(total))
    with np.errstate(invalid="ignore"):
        return bool(np.any(np.abs(rest) > slack))


def class_list(model: Any) -> list[dict[str, Any]]:
    """The run's declared classes (``metadata.classes``)."""
    if model is None:
        return []
    return [{"id": c.id, "displayName": c.display_name} for c in model.classes]


def check_classes(requested: Sequence[str] | None, known: Sequence[str], run_id: str) -> list[str] | None:
    """The ``classIds`` asked for (None: all), or ``QueryError`` naming the run's classes."""
    from flowtime.errors import QueryError

    if requested is None:
        return None
    chosen = list(dict.fromkeys(requested))
    unknown = [c for c in chosen if c not in known]
    if unknown:
        valid = ", ".join(known) if known else "none: the run has no classes"
        raise QueryError("classIds", f"classIds: run {run_id} has no class {', '.join(unknown[:5])}; "
                         f"its classes are {valid}", valid)
    return chosen
