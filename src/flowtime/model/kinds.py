"""
Node kinds: one table from ``kind:`` to what the loader and the graph need.

A kind is a schema class plus two functions:

* ``parse(item, source)`` builds the node from its YAML mapping, reporting
  every problem through ``source`` (located at the node's fields), or returns
  None when the node cannot be built;
* ``expression(node)`` gives the node as an expression over other nodes - the
  form every later stage (graph, plan, evaluation) works with. Inputs (``const``)
  and draws (``pmf``) return None: the engine fills those in itself.

Adding a kind is one schema class, these two functions and a ``register``
call (see ``docs/decisions/0014-node-kinds-and-the-plan.md``); nothing in the
loader, the graph or the engine changes. Higher-level kinds (the topology
nodes of later models) lower to expressions this way, so feedback loops,
batching and determinism come with them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, Protocol

from flowtime.records import record

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

    from flowtime.expr.syntax import Expr


class NodeLike(Protocol):
    """What every node has: an id, a kind, and its canonical JSON (the input of the model hash)."""

    @property
    def id(self) -> str: ...

    @property
    def kind(self) -> str: ...

    def to_json(self) -> dict[str, Any]: ...


class NodeSource(Protocol):
    """What a kind's ``parse`` may ask of the loader while it reads one node."""

    node_id: str
    bins: int | None
    title: str | None
    description: str | None

    def error(self, field: str | tuple[str | int, ...], message: str, *, key: bool = False) -> None:
        """A problem located at ``field`` of this node (a key name or a path below the node)."""

    def warn(self, field: str | tuple[str | int, ...], message: str, *, key: bool = False) -> None:
        """A warning located at ``field`` of this node."""

    def numbers(self, field: str | tuple[str | int, ...], values: list[Any], what: str
                ) -> npt.NDArray[np.float64] | None:
        """Finite numbers as a read-only float64 array, or None after reporting the first bad item."""

    def expression(self, field: str, text: str) -> Expr | None:
        """``text`` parsed as an expression (errors located with a caret), or None."""


@record
class NodeKind:
    """One entry of the kind table."""

    name: str
    cls: type[Any]
    fields: frozenset[str]  # keys a node of this kind may have (others are warned about)
    parse: Callable[[dict[str, Any], NodeSource], Any]
    expression: Callable[[Any], Expr | None]
    # A mapping an author wrote with these keys and no `kind` is of this kind.
    default: bool = False
    # False for kinds only FlowTime makes (a queue's derived series): not accepted in a model's text.
    written: bool = True


_KINDS: dict[str, NodeKind] = {}

# In a node id only when FlowTime made the node (a queue's initial depth, ...): an author's id never
# holds it, and such nodes are never outputs.
INTERNAL = "#"


def is_internal(node_id: str) -> bool:
    return INTERNAL in node_id


def register(kind: NodeKind) -> NodeKind:
    """Add (or replace) a kind; returns it, so a module can keep the entry."""
    _KINDS[kind.name] = kind
    return kind


def unregister(name: str) -> None:
    """Remove a kind (tests that register a toy kind clean up with this)."""
    _KINDS.pop(name, None)


def kinds() -> dict[str, NodeKind]:
    """Every registered kind by name, built-ins first (importing them on first use)."""
    if "const" not in _KINDS or "serviceWithBuffer" not in _KINDS or "router" not in _KINDS:
        import flowtime.model.nodes
        import flowtime.model.queues
        import flowtime.model.routers  # noqa: F401 - registers router

    return _KINDS


def kind_of(node: Any) -> NodeKind:
    """The table entry of a node object (by its class)."""
    for k in kinds().values():
        if isinstance(node, k.cls):
            return k
    raise KeyError(f"no node kind is registered for {type(node).__name__}")


def names() -> tuple[str, ...]:
    return tuple(kinds())


def expressions(nodes: Iterable[Any], parsed: dict[str, Expr] | None = None) -> dict[str, Expr]:
    """Each node's expression (``parsed`` first, else its kind's), for nodes that have one."""
    out: dict[str, Expr] = {}
    parsed = parsed or {}
    for node in nodes:
        e = parsed.get(node.id)
        if e is None:
            e = kind_of(node).expression(node)
        if e is not None:
            out[node.id] = e
    return out
