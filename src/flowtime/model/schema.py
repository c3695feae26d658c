"""
The FlowTime model, schema v1, as frozen pydantic objects.

Field names follow the reference YAML (camelCase aliases); Python attributes
are snake_case. Node kinds form a discriminated union on ``kind``.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Any, Literal

import numpy as np
import numpy.typing as npt
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, field_validator

FloatArray = npt.NDArray[np.float64]

NODE_KINDS = ("const", "expr", "pmf")


class BinUnit(StrEnum):
    MINUTES = "minutes"
    HOURS = "hours"
    DAYS = "days"
    WEEKS = "weeks"

    @property
    def minutes(self) -> int:
        return _UNIT_MINUTES[self]


_UNIT_MINUTES = {BinUnit.MINUTES: 1, BinUnit.HOURS: 60, BinUnit.DAYS: 1440, BinUnit.WEEKS: 10080}


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, populate_by_name=True, extra="ignore", arbitrary_types_allowed=True)


class Grid(_Frozen):
    """
    The time grid: ``bins`` bins of ``bin_size`` ``bin_unit`` each.

    >>> g = Grid(bins=24, binSize=1, binUnit="HOURS")
    >>> g.bin_unit.value, g.bin_minutes, g.total_minutes
    ('hours', 60, 1440)
    """

    bins: int
    bin_size: int = Field(alias="binSize")
    bin_unit: BinUnit = Field(alias="binUnit")

    @field_validator("bin_unit", mode="before")
    @classmethod
    def _lower_unit(cls, v: Any) -> Any:
        return v.strip().lower() if isinstance(v, str) else v

    @property
    def bin_minutes(self) -> int:
        return self.bin_size * self.bin_unit.minutes

    @property
    def total_minutes(self) -> int:
        return self.bins * self.bin_minutes

    def to_json(self) -> dict[str, Any]:
        return {"bins": self.bins, "binSize": self.bin_size, "binUnit": self.bin_unit.value}


class _NodeBase(_Frozen):
    id: str
    title: str | None = None
    description: str | None = None


class ConstNode(_NodeBase):
    kind: Literal["const"] = "const"
    values: FloatArray

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "kind": "const", "values": self.values.tolist()}


class ExprNode(_NodeBase):
    kind: Literal["expr"]
    expr: str
    # The parsed expression, attached by the loader so it is parsed only once.
    _ast: Any = PrivateAttr(default=None)

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "kind": "expr", "expr": self.expr}

    def canonical_expr(self) -> str:
        """The expression as printed from its syntax tree: spacing, line breaks and
        redundant parentheses do not change it (nor, therefore, the model hash)."""
        from flowtime.expr.parser import parse_expression
        from flowtime.expr.syntax import to_text

        return to_text(self._ast if self._ast is not None else parse_expression(self.expr))


class PmfNode(_NodeBase):
    kind: Literal["pmf"]
    values: FloatArray
    probabilities: FloatArray
    sample: bool = False

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


Node = Annotated[ConstNode | ExprNode | PmfNode, Field(discriminator="kind")]


class Output(_Frozen):
    series: str
    as_: str | None = Field(default=None, alias="as")

    @property
    def is_wildcard(self) -> bool:
        return "*" in self.series

    def to_json(self) -> dict[str, Any]:
        return {"series": self.series, "as": self.as_}


class Rng(_Frozen):
    kind: Literal["pcg32"] = "pcg32"
    seed: int | None = None

    def to_json(self) -> dict[str, Any]:
        return {"kind": self.kind, "seed": self.seed}


class Metadata(_Frozen):
    title: str | None = None
    description: str | None = None
    tags: tuple[str, ...] = ()

    @field_validator("tags", mode="before")
    @classmethod
    def _split_tags(cls, v: Any) -> Any:
        if isinstance(v, str):
            return tuple(t.strip() for t in v.strip("[]").split(",") if t.strip())
        return v


class Model(_Frozen):
    """A validated model. Build it with ``flowtime.model.load.load_model``."""

    schema_version: int = Field(default=1, alias="schemaVersion")
    grid: Grid
    nodes: tuple[Node, ...] = ()
    outputs: tuple[Output, ...] = ()
    rng: Rng | None = None
    metadata: Metadata = Metadata()

    def node(self, node_id: str) -> ConstNode | ExprNode | PmfNode:
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
        provenance do not appear here, so they cannot change the hash.
        """
        return {
            "schemaVersion": self.schema_version,
            "grid": self.grid.to_json(),
            "nodes": [
                {**n.to_json(), "expr": n.canonical_expr()} if isinstance(n, ExprNode) else n.to_json()
                for n in self.nodes
            ],
            "outputs": [o.to_json() for o in self.outputs],
            "rng": self.rng.to_json() if self.rng else None,
        }
