"""
The FlowTime model, schema v1, as frozen dataclasses.

Python attributes are snake_case; ``to_json`` gives the reference's camelCase.
The loader (``model.load``) checks every field by hand to locate each problem,
so these types only hold checked values: plain dataclasses cost nothing at
import, where pydantic classes cost half the CLI's start-up budget (0013).
"""

from __future__ import annotations

import math
from dataclasses import field
from enum import StrEnum
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from flowtime.model.analysis_settings import DEFAULT_ANALYSIS, AnalysisSettings
from flowtime.records import record

FloatArray = npt.NDArray[np.float64]



class BinUnit(StrEnum):
    MINUTES = "minutes"
    HOURS = "hours"
    DAYS = "days"
    WEEKS = "weeks"

    @property
    def minutes(self) -> int:
        return _UNIT_MINUTES[self]


_UNIT_MINUTES = {BinUnit.MINUTES: 1, BinUnit.HOURS: 60, BinUnit.DAYS: 1440, BinUnit.WEEKS: 10080}


@record
class Grid:
    """
    The time grid: ``bins`` bins of ``bin_size`` ``bin_unit`` each.

    >>> g = Grid(bins=24, bin_size=1, bin_unit="HOURS")
    >>> g.bin_unit.value, g.bin_minutes, g.total_minutes
    ('hours', 60, 1440)
    """

    bins: int
    bin_size: int
    bin_unit: BinUnit

    def __post_init__(self) -> None:
        if not isinstance(self.bin_unit, BinUnit):
            object.__setattr__(self, "bin_unit", BinUnit(str(self.bin_unit).strip().lower()))

    @property
    def bin_minutes(self) -> int:
        return self.bin_size * self.bin_unit.minutes

    @property
    def total_minutes(self) -> int:
        return self.bins * self.bin_minutes

    def to_json(self) -> dict[str, Any]:
        return {"bins": self.bins, "binSize": self.bin_size, "binUnit": self.bin_unit.value}


@record
class ConstNode:
    id: str
    values: FloatArray
    kind: Literal["const"] = "const"
    title: str | None = None
    description: str | None = None

    def __post_init__(self) -> None:
        # Models are immutable: values the caller could still change (a writeable array, a view of
        # one, a list) are copied once into a read-only float64 array.
        v = self.values
        if not (isinstance(v, np.ndarray) and v.dtype == np.float64 and not v.flags.writeable and v.base is None):
            v = np.array(v, dtype=np.float64)
            v.flags.writeable = False
            object.__setattr__(self, "values", v)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, ConstNode):
            return NotImplemented
        return (self.id, self.title, self.description) == (other.id, other.title, other.description) and bool(
            np.array_equal(self.values, other.values))

    __hash__ = None  # type: ignore[assignment]

    def to_json(self) -> dict[str, Any]:
        values: list[Any] = self.values.tolist()
        if not np.isfinite(self.values).all():  # a file's NaN: canonical JSON has none, so as text ("nan")
            values = [v if math.isfinite(v) else str(v) for v in values]
        return {"id": self.id, "kind": "const", "values": values}


@record
class ExprNode:
    id: str
    expr: str
    kind: Literal["expr"] = "expr"
    title: str | None = None
    description: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "kind": "expr", "expr": self.expr}


@record
class PmfNode:
    id: str
    values: FloatArray
    probabilities: FloatArray
    kind: Literal["pmf"] = "pmf"
    sample: bool = False
    title: str | None = None
    description: str | None = None

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, PmfNode):
            return NotImplemented
        return (self.id, self.sample, self.title, self.description) == (
            other.id, other.sample, other.title, other.description) and bool(
            np.array_equal(self.values, other.values) and np.array_equal(self.probabilities, other.probabilities))

    __hash__ = None  # type: ignore[assignment]

    @property
    def expected_value(self) -> float:
        """Σ value·p, summed in declaration order (the reference's order)."""
        total = 0.0
        for v, p in zip(self.values.tolist(), self.probabilities.tolist(), strict=True):
            total += v * p
        return total

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "id": self.id,
            "kind": "pmf",
            "pmf": {"values": self.values.tolist(), "probabilities": self.probabilities.tolist()},
        }
        if self.sample:
            out["pmf"]["sample"] = True
        return out


Node = ConstNode | ExprNode | PmfNode  # the built-in kinds; others register in model.kinds


@record
class Output:
    series: str
    as_: str | None = None

    @property
    def is_wildcard(self) -> bool:
        return "*" in self.series

    def to_json(self) -> dict[str, Any]:
        return {"series": self.series, "as": self.as_}


@record
class Rng:
    kind: Literal["pcg32"] = "pcg32"
    seed: int | None = None

    def to_json(self) -> dict[str, Any]:
        return {"kind": self.kind, "seed": self.seed}


@record
class Metadata:
    title: str | None = None
    description: str | None = None
    tags: tuple[str, ...] = ()


@record
class Model:
    """A validated model. Build it with ``flowtime.model.load.load_model``."""

    grid: Grid
    nodes: tuple[Node, ...] = ()
    outputs: tuple[Output, ...] = ()
    rng: Rng | None = None
    metadata: Metadata = field(default_factory=Metadata)
    schema_version: int = 1
    topology: Any = None  # model.topology.Topology: services and their series (queues are in ``nodes``)
    classes: tuple[Any, ...] = ()  # model.classes.FlowClass: the declared flow classes
    arrivals: tuple[Any, ...] = ()  # model.classes.Arrival: traffic.arrivals (which class arrives where)
    # The analyser's thresholds (the ``analysis:`` block). They change no series, so not the model hash.
    analysis: AnalysisSettings = DEFAULT_ANALYSIS

    def node(self, node_id: str) -> Any:
        for n in self.nodes:
            if n.id == node_id:
                return n
        raise KeyError(node_id)

    @property
    def node_ids(self) -> list[str]:
        return [n.id for n in self.nodes]

    def canonical(self) -> dict[str, Any]:
        """
        The parts that decide what is computed, as plain JSON data: the input of
        ``modelHash``. Comments, key order, number spelling, metadata and
        provenance do not appear here, so they cannot change the hash; an
        expression appears as printed from its syntax tree (the model graph's),
        so spacing and redundant parentheses do not count either.
        """
        from flowtime.expr.syntax import to_text
        from flowtime.model.graph import graph_of

        exprs = graph_of(self).exprs
        out = {
            "schemaVersion": self.schema_version,
            "grid": self.grid.to_json(),
            "nodes": [
                {**n.to_json(), "expr": to_text(exprs[n.id])} if isinstance(n, ExprNode) else n.to_json()
                for n in self.nodes
            ],
            "outputs": [o.to_json() for o in self.outputs],
            "rng": self.rng.to_json() if self.rng else None,
        }
        if self.topology is not None:  # only then: the hash of every model without one is unchanged
            out["topology"] = self.topology.to_json()
        if self.classes or self.arrivals:
            out["classes"] = [c.to_json() for c in self.classes]
            out["traffic"] = {"arrivals": [a.to_json() for a in self.arrivals]}
        return out
