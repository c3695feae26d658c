"""
Retry echo synthesis: the retries a service's failures send back, as CONV.

When a topology node's ``semantics.retryEcho`` names a series that does not
exist (and is not a ``file:`` reference), FlowTime adds it, as the reference's
C# compiler does (``engine-head.md`` §3.4):

    retryEcho = CONV(failures or else errors, kernel)

with the kernel from ``semantics.retryKernel`` after the reference's
``RetryKernelPolicy`` (``retry_kernel``). The node is an author-visible
series (its id is the one the author wrote), located at the topology node.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from flowtime.expr.syntax import Array, Call, Ref
from flowtime.model.queues import DerivedNode
from flowtime.model.topology import Path, Reporter, TopologyNode
from flowtime.records import record

DEFAULT_RETRY_KERNEL = (0.0, 0.6, 0.3, 0.1)
MAX_RETRY_KERNEL = 32


@record
class RetryKernel:
    """A kernel after the policy, and what the policy changed (one sentence each)."""

    values: tuple[float, ...]
    changes: tuple[str, ...] = ()


def retry_kernel(given: Sequence[float] | None) -> RetryKernel:
    """
    The reference's ``RetryKernelPolicy.Apply``: missing or empty -> the
    default; more than 32 coefficients -> the first 32; a negative or
    non-finite coefficient -> 0; a sum above 1 -> every coefficient times
    ``1 / sum`` (the sum taken left to right, as C# adds it).

    >>> retry_kernel(None).values, retry_kernel([0.5, -1, float("nan")]).values
    ((0.0, 0.6, 0.3, 0.1), (0.5, 0.0, 0.0))
    >>> retry_kernel([1.0, 3.0]).values
    (0.25, 0.75)
    """
    if not given:
        return RetryKernel(DEFAULT_RETRY_KERNEL)
    changes: list[str] = []
    if len(given) > MAX_RETRY_KERNEL:
        changes.append(f"trimmed to {MAX_RETRY_KERNEL} coefficients (from {len(given)})")
    kept = [float(x) for x in given[:MAX_RETRY_KERNEL]]
    clean = [x + 0.0 if math.isfinite(x) and x >= 0 else 0.0 for x in kept]  # + 0.0: -0 is 0
    if any(not (math.isfinite(x) and x >= 0) for x in kept):
        changes.append("negative or non-finite coefficients set to 0")
    total = 0.0
    for x in clean:
        total += x
    if total > 1.0:
        scale = 1.0 / total
        clean = [x * scale for x in clean]
        changes.append(f"scaled to sum 1 (the coefficients summed to {total:g})")
    return RetryKernel(tuple(clean), tuple(changes))


def retry_echoes(tnodes: Sequence[TopologyNode], known: set[str], at: Reporter) -> list[DerivedNode]:
    """
    The retry echo series to add, one per ``retryEcho`` that names no node;
    ``known`` gains their ids. A retryEcho without failures or errors to echo
    is left for the reference check to report.
    """
    out: list[DerivedNode] = []
    made: dict[str, str] = {}  # echo id -> topology id
    for t in tnodes:
        echo = t.ref("retryEcho")
        if echo is None or echo.form not in ("node", "series", "self"):
            continue
        name = t.id if echo.form == "self" else echo.node
        here: Path = ("topology", "nodes", t.index, "semantics", "retryEcho")
        if name in made:
            at.error(here, f"topology node '{t.id}': retryEcho '{name}' is already the retry echo FlowTime adds "
                     f"for topology node '{made[name]}'; give each node its own retryEcho series")
            continue
        if name in known:
            continue
        source = t.ref("failures") or t.ref("errors")
        if source is None or source.form not in ("node", "series", "self"):
            continue
        kernel = retry_kernel(t.semantics.get("retryKernel"))
        for change in kernel.changes:
            at.warn(("topology", "nodes", t.index, "semantics", "retryKernel"),
                    f"topology node '{t.id}': retryKernel {change}, as the reference's retry kernel policy does")
        producer = t.id if source.form == "self" else source.node
        made[name] = t.id
        known.add(name)
        if producer not in known:
            continue  # the unknown source is reported; the echo is not reported again
        out.append(DerivedNode(name, Call("CONV", (Ref(producer), Array(kernel.values))), "retry_echo", t.id))
    return out
