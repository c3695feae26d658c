"""
Dependencies between nodes: which node reads which, through how much SHIFT lag,
and the evaluation order that follows.

A reference inside ``SHIFT(..., k)`` with k >= 1 reads the past, so a cycle whose
every loop passes through such a reference is a legal feedback loop (a strongly
connected component evaluated bin by bin). A loop of immediate references is an
error naming the nodes on it.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field

from flowtime.expr.functions import TIMED, check_call, conv_kernel, pulse_timing
from flowtime.expr.syntax import Call, Expr, Num, Ref, Unary, children
from flowtime.records import record


@record
class ExprIssue:
    message: str
    column: int


def references_with_lag(e: Expr) -> dict[str, int]:
    """
    Each referenced name with the smallest total SHIFT lag it is read through.

    >>> from flowtime.expr.parser import parse_expression
    >>> references_with_lag(parse_expression("MAX(0, SHIFT(q, 1) + a - SHIFT(SHIFT(a, 1), 2))"))
    {'q': 1, 'a': 0}
    """
    out: dict[str, int] = {}
    stack: list[tuple[Expr, int]] = [(e, 0)]
    while stack:
        node, lag = stack.pop()
        if isinstance(node, Ref):
            if node.name not in out or lag < out[node.name]:
                out[node.name] = lag
            continue
        if isinstance(node, Call) and node.name == "SHIFT" and len(node.args) == 2:
            k = shift_lag(node)
            stack.append((node.args[0], lag + (k if k is not None and k > 0 else 0)))
            continue
        stack.extend((c, lag) for c in reversed(children(node)))
    # Keep first-occurrence order for stable edges.
    order: dict[str, int] = {}
    for name in _walk_refs(e):
        order.setdefault(name, out[name])
    return order


def outline_references(calls: Iterable[tuple[str, int]], names: Iterable[str]) -> dict[str, int] | None:
    """
    ``references_with_lag`` from the parser's outline of an expression (its
    calls and referenced names, ``parse_with_outline``) when the outline
    settles it: no SHIFT, so every name is read at lag 0, and no call that
    ``expression_issues`` would report (nor one with literal arguments to
    check: CONV, PULSE). None when the tree must be walked.

    >>> outline_references((("MIN", 2),), ("a", "b", "a")), outline_references((("SHIFT", 2),), ("q",))
    ({'a': 0, 'b': 0}, None)
    """
    for name, n_args in calls:
        if name in TIMED or check_call(name, n_args) is not None:
            return None
    return dict.fromkeys(names, 0)


def _walk_refs(e: Expr) -> list[str]:
    """Referenced names in source order, skipping SHIFT lags (a lag is a literal, never a series)."""
    names: list[str] = []
    stack = [e]
    while stack:
        node = stack.pop()
        if isinstance(node, Ref):
            names.append(node.name)
        elif isinstance(node, Call) and node.name == "SHIFT" and len(node.args) == 2:
            stack.append(node.args[0])
            continue
        stack.extend(reversed(children(node)))
    return names


def shift_lag(call: Call) -> int | None:
    """The literal lag of a SHIFT call, or None when it is not a whole number >= 0."""
    lag = call.args[1]
    if isinstance(lag, Num) and lag.value >= 0 and lag.value == int(lag.value):
        return int(lag.value)
    return None


def expression_issues(e: Expr) -> list[ExprIssue]:
    """Unknown functions, wrong argument counts, bad SHIFT lags, CONV kernels and PULSE timings, with columns."""
    issues: list[ExprIssue] = []
    stack = [e]
    while stack:
        node = stack.pop()
        if isinstance(node, Call):
            msg = check_call(node.name, len(node.args))
            if msg:
                issues.append(ExprIssue(msg, node.column))
            elif node.name == "SHIFT" and shift_lag(node) is None:
                lag = node.args[1]
                if isinstance(lag, Unary) and isinstance(lag.operand, Num):
                    got = f"-{lag.operand.value:g}"
                elif isinstance(lag, Num):
                    got = f"{lag.value:g}"
                else:
                    got = "an expression"
                issues.append(
                    ExprIssue(
                        f"SHIFT lag must be a whole number literal >= 0 (e.g. SHIFT(x, 1)), got {got}",
                        getattr(lag, "column", node.column),
                    )
                )
            elif node.name == "CONV" and conv_kernel(node.args[1]) is None:
                issues.append(ExprIssue("CONV kernel must be an array literal such as [0, 0.6, 0.3, 0.1] or a "
                                        "number literal, got an expression", node.args[1].column))
            elif node.name == "PULSE":
                timing = pulse_timing(node)
                if isinstance(timing, str):
                    bad = node.args[0] if timing.startswith("PULSE period") else node.args[1]
                    issues.append(ExprIssue(timing, bad.column))
        stack.extend(children(node))
    return issues


@dataclass
class DependencyGraph:
    """
    Result of analysing the references between nodes.

    ``order`` lists node ids in evaluation order; ``components`` maps a node id to
    the id list of its feedback component (only for nodes on a SHIFT loop).
    """

    order: list[str]
    inputs: dict[str, tuple[str, ...]]  # node -> the nodes it reads, in first-use order
    lags: dict[str, dict[str, int]]
    components: list[list[str]] = field(default_factory=list)
    cycles: list[list[str]] = field(default_factory=list)  # illegal loops (no SHIFT lag)

    def component_of(self) -> dict[str, int]:
        return {n: i for i, comp in enumerate(self.components) for n in comp}


def analyse(ids: list[str], lags: dict[str, dict[str, int]], *, within: bool = False) -> DependencyGraph:
    """
    Order nodes for evaluation and find feedback loops. ``within``: ``lags``
    has an entry for every id and names no other node (the caller checked).

    Acyclic parts follow Kahn's algorithm with a FIFO queue and declaration-order
    tie-breaking (the reference's observable order). A strongly connected set of
    nodes counts as one unit placed where its first-declared member would be.

    >>> g = analyse(["b", "a", "q"], {"b": {}, "a": {"b": 0}, "q": {"q": 1, "a": 0}})
    >>> g.order, g.components, g.cycles
    (['b', 'a', 'q'], [['q']], [])
    """
    index = dict(zip(ids, range(len(ids)), strict=True))
    inputs: dict[str, tuple[str, ...]]
    if within:
        inputs = {n: tuple(lags[n]) for n in ids}
    else:
        keys = index.keys()
        inputs = {}
        for n in ids:
            reads = lags.get(n, {})
            inputs[n] = tuple(reads) if keys >= reads.keys() else tuple(d for d in reads if d in index)
    acyclic = list(ids) if _declared_order_is_kahns(inputs, index) else _acyclic_order(ids, inputs, index)
    if acyclic is not None:
        return DependencyGraph(order=acyclic, inputs=inputs, lags=lags)
    sccs = _tarjan(ids, inputs)
    comp_of: dict[str, int] = {}
    for ci, comp in enumerate(sccs):
        for n in comp:
            comp_of[n] = ci

    components: list[list[str]] = []
    cycles: list[list[str]] = []
    unit_members: dict[int, list[str]] = {}
    for ci, comp in enumerate(sccs):
        members = sorted(comp, key=index.__getitem__)
        looped = len(members) > 1 or members[0] in inputs[members[0]]
        if looped:
            immediate = {
                n: [d for d in inputs[n] if comp_of.get(d) == ci and lags[n][d] == 0] for n in members
            }
            cycle = _find_cycle(members, immediate)
            if cycle:
                cycles.append(cycle)
            members = _intra_order(members, immediate, index)
            components.append(members)
        unit_members[ci] = members

    # Kahn over the condensation, FIFO, ties by declaration order of the unit's first member.
    n_units = len(sccs)
    unit_key = {ci: min(index[m] for m in sccs[ci]) for ci in range(n_units)}
    dependents: dict[int, set[int]] = {ci: set() for ci in range(n_units)}
    indeg = dict.fromkeys(range(n_units), 0)
    for n in ids:
        cu = comp_of[n]
        for d in set(inputs[n]):
            du = comp_of[d]
            if du != cu and cu not in dependents[du]:
                dependents[du].add(cu)
                indeg[cu] += 1
    ready = deque(sorted((u for u in range(n_units) if indeg[u] == 0), key=unit_key.__getitem__))
    order: list[str] = []
    while ready:
        u = ready.popleft()
        order.extend(unit_members[u])
        for v in sorted(dependents[u], key=unit_key.__getitem__):
            indeg[v] -= 1
            if indeg[v] == 0:
                ready.append(v)
    return DependencyGraph(order=order, inputs=inputs, lags=lags, components=components, cycles=cycles)


def _declared_order_is_kahns(inputs: dict[str, tuple[str, ...]], index: dict[str, int]) -> bool:
    """
    Whether Kahn's FIFO order is the declaration order itself, as it is for a
    model written inputs first: every node without inputs comes before every
    node with some, and the latest-declared input of each node (``m``) comes
    before the node and never earlier than that of the node declared before
    it. Then the queue is the declaration order by induction: processing the
    node at place p makes ready exactly the nodes with m = p, which follow
    those with smaller m, in declaration order. ``inputs`` is in declaration order.
    """
    last = -1
    started = False
    for j, reads in enumerate(inputs.values()):
        if not reads:
            if started:
                return False
            continue
        started = True
        m = -1
        for d in reads:  # (a plain loop: cheaper than max(map(...)) over one or two inputs)
            i = index[d]
            if i > m:
                m = i
        if m < last or m >= j:
            return False
        last = m
    return True


def _acyclic_order(ids: list[str], inputs: dict[str, tuple[str, ...]], index: dict[str, int]) -> list[str] | None:
    """
    The order ``analyse`` gives when no node is on a loop (Kahn over the nodes
    themselves, FIFO, ties by declaration), or None when some node is: a node
    reading itself, or nodes left over once every ready one is placed.
    ``inputs`` is in declaration order.
    """
    n = len(ids)
    indeg = [0] * n
    dependents: list[list[int]] = [[] for _ in range(n)]
    for j, (node, reads) in enumerate(inputs.items()):
        if reads:
            if node in reads:
                return None
            for d in reads:
                dependents[index[d]].append(j)  # readers in declaration order: already sorted
            indeg[j] = len(reads)
    queue = [j for j in range(n) if not indeg[j]]
    for u in queue:  # FIFO: the loop reaches what it appends
        for v in dependents[u]:
            indeg[v] -= 1
            if not indeg[v]:
                queue.append(v)
    return [ids[u] for u in queue] if len(queue) == n else None


def _tarjan(ids: list[str], inputs: dict[str, tuple[str, ...]]) -> list[list[str]]:
    """Strongly connected components, iteratively (graphs can be 100k nodes deep)."""
    counter = 0
    idx: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    out: list[list[str]] = []
    for root in ids:
        if root in idx:
            continue
        work: list[tuple[str, int]] = [(root, 0)]
        while work:
            v, i = work[-1]
            if i == 0:
                idx[v] = low[v] = counter
                counter += 1
                stack.append(v)
                on_stack.add(v)
            edges = inputs[v]
            if i < len(edges):
                work[-1] = (v, i + 1)
                w = edges[i]
                if w not in idx:
                    work.append((w, 0))
                elif w in on_stack:
                    low[v] = min(low[v], idx[w])
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[v])
            if low[v] == idx[v]:
                comp: list[str] = []
                while True:
                    w = stack.pop()
                    on_stack.discard(w)
                    comp.append(w)
                    if w == v:
                        break
                out.append(comp)
    return out


def _find_cycle(members: list[str], immediate: dict[str, list[str]]) -> list[str] | None:
    """A loop of immediate references among ``members`` (as a closed path), if any."""
    state: dict[str, int] = {}
    for start in members:
        if start in state:
            continue
        path: list[str] = []
        work: list[tuple[str, int]] = [(start, 0)]
        while work:
            v, i = work[-1]
            if i == 0:
                state[v] = 1
                path.append(v)
            nxt = immediate.get(v, [])
            if i < len(nxt):
                work[-1] = (v, i + 1)
                w = nxt[i]
                if state.get(w) == 1:
                    # v reads w immediately; report the loop in reading order w -> ... -> v -> w.
                    loop = path[path.index(w) :]
                    return [*loop, w]
                if w not in state:
                    work.append((w, 0))
                continue
            state[v] = 2
            path.pop()
            work.pop()
    return None


def _intra_order(members: list[str], immediate: dict[str, list[str]], index: dict[str, int]) -> list[str]:
    """Order inside one bin of a feedback loop: immediate inputs first, ties by declaration."""
    indeg = {m: len(set(immediate[m])) for m in members}
    users: dict[str, list[str]] = {m: [] for m in members}
    for m in members:
        for d in set(immediate[m]):
            users[d].append(m)
    ready = deque(m for m in members if indeg[m] == 0)
    out: list[str] = []
    while ready:
        m = ready.popleft()
        out.append(m)
        for u in sorted(users[m], key=index.__getitem__):
            indeg[u] -= 1
            if indeg[u] == 0:
                ready.append(u)
    if len(out) < len(members):  # an illegal loop; reported separately
        out.extend(m for m in members if m not in out)
    return out
