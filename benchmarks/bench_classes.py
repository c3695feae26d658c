"""
Classes and routers (issue 12): a Sim template of 288 five-minute bins (one
day) with 3 flow classes, rendered through our Sim, against a hand-written
NumPy floor of the same recurrences, timed in turns.

    python benchmarks/bench_classes.py [--quick]

The template has ``corridors`` hub-and-spoke corridors side by side (8 by
default; ``--quick``: 2). In each, three daily-shaped const sources, one class
each (``traffic.arrivals``), feed a hub queue (a topology ``serviceWithBuffer``
whose outflow is ``MIN(cap, in + SHIFT(queue, 1))``); a ``kind: router`` (C#
form) sends the hub's outflow, class by class, into three placeholder targets,
each the arrivals of a line queue of the same form with its own capacity.

The floor computes every series the engine computes for these nodes: the
totals and the per-class parts (``Results.classes``), stepping all corridors
at once per bin with preallocated arrays and in-place ufuncs. It uses what the
class rules (``model/decompose.py``) come to here: a source's part is the
source; a queue or ``MIN`` shares its total in proportion to what each class
offered (``Q_c = (Q_c[t-1] + in_c) * Q / (Q[t-1] + in)``, the same for the
outflow; the initial depth splits by the bin-0 inflow, which the same formula
gives); a router target and its part are the routed class's outflow; a node one
class reaches has that class as its whole total. So the floor's shares are
``Q / avail`` where the engine writes each class part as the normalised
expression of 0021 (same value, other operations): the hub's totals are checked
bit for bit (``np.array_equal``), every class part and everything downstream of
the router with ``assert_allclose(rtol=1e-12)``.

Also timed, for information: one corridor, and the reference's own
``transportation-basic-classes`` template (byte-identical copy in
``tests/sim/reference_templates_head/``) with its defaults.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from flowtime.engine.plan import Plan, plan
from flowtime.sim.catalog import load_template_file
from flowtime.sim.render import render_template
from flowtime.sim.template import parse_template
from table import Row, Target, print_table
from timing import median_time, paired_median_times

Block = npt.NDArray[np.float64]
CLASSES = (("air", "Airport"), ("ind", "Industrial"), ("dwn", "Downtown"))
REFERENCE = (Path(__file__).resolve().parent.parent / "tests" / "sim" / "reference_templates_head"
             / "transportation-basic-classes.yaml")


def corridor_inputs(k: int, bins: int) -> dict[str, Block]:
    """Daily-shaped sources ``(bins, k, 3)``, hub seeds and capacities ``(k,)``, line capacities ``(k, 3)``."""
    t = np.arange(bins) / bins
    c = np.arange(3)[None, :, None]
    i = np.arange(k)[:, None, None]
    # Morning and evening peaks, shifted per class and corridor; never 0 (see topology_floor).
    shape = 4.0 + 3.0 * np.sin(2 * np.pi * (t[None, None, :] - 0.3 - 0.05 * c)) \
        + 1.5 * np.sin(4 * np.pi * (t[None, None, :] + 0.1 * i)) ** 2 + 0.2 * i
    sources = np.round(shape, 2).transpose(2, 0, 1).copy()
    return {"sources": sources,
            "hub_seed": np.round(5.0 + np.arange(k) % 3, 1),
            "hub_cap": np.round(14.0 + 0.5 * (np.arange(k) % 4), 1),
            "line_cap": np.round(4.2 + 0.3 * ((np.arange(k)[:, None] + np.arange(3)[None, :]) % 3), 1)}


def classes_template(inputs: dict[str, Block]) -> str:
    """The Sim template's text (what an author writes, with the numbers of ``inputs``)."""
    bins, k, _ = inputs["sources"].shape
    out = ["schemaVersion: 1", "generator: flowtime-sim",
           "metadata: {id: classes-routers, title: Hub corridors with class routing, version: 1.0.0}",
           "parameters:", f"  - {{name: bins, type: integer, default: {bins}, minimum: 12, maximum: {bins}}}",
           "grid:", "  bins: ${bins}", "  binSize: 5", "  binUnit: minutes",
           "classes: [" + ", ".join(f"{{id: {cid}}}" for _, cid in CLASSES) + "]",
           "traffic:", "  arrivals:"]
    for i in range(k):
        for c, cid in CLASSES:
            out.append(f"  - {{nodeId: src{i}_{c}, classId: {cid}, pattern: {{kind: constant, ratePerBin: 1}}}}")
    out += ["topology:", "  nodes:"]
    for i in range(k):
        out += [f"    - id: Hub{i}", "      kind: serviceWithBuffer",
                f"      semantics: {{arrivals: hub{i}_in, served: hub{i}_out}}",
                f"      initialCondition: {{queueDepth: {inputs['hub_seed'][i]}}}"]
        for c, _ in CLASSES:
            out += [f"    - id: Line{i}{c.title()}", "      kind: serviceWithBuffer",
                    f"      semantics: {{arrivals: line{i}_{c}_in, served: line{i}_{c}_out}}"]
    out.append("nodes:")
    for i in range(k):
        for j, (c, _) in enumerate(CLASSES):
            values = ", ".join(repr(float(v)) for v in inputs["sources"][:, i, j])
            out.append(f"  - {{id: src{i}_{c}, kind: const, values: [{values}]}}")
        out += [f"  - {{id: hub{i}_cap, kind: const, values: {inputs['hub_cap'][i]}}}",
                f"  - {{id: hub{i}_in, kind: expr, expr: 'src{i}_air + src{i}_ind + src{i}_dwn'}}",
                f"  - {{id: hub{i}_out, kind: expr, expr: 'MIN(hub{i}_cap, hub{i}_in + SHIFT(hub{i}_queue, 1))'}}",
                f"  - id: Router{i}", "    kind: router", f"    inputs: {{queue: hub{i}_out}}", "    routes:"]
        out += [f"      - {{target: line{i}_{c}_in, classes: [{cid}]}}" for c, cid in CLASSES]
        for j, (c, _) in enumerate(CLASSES):
            line = f"line{i}_{c}"
            out += [f"  - {{id: {line}_in, kind: expr, expr: '0'}}",
                    f"  - {{id: {line}_cap, kind: const, values: {inputs['line_cap'][i, j]}}}",
                    f"  - {{id: {line}_out, kind: expr, expr: 'MIN({line}_cap, {line}_in + SHIFT({line}_queue, 1))'}}"]
    return "\n".join(out) + "\n"


Floor = dict[str, Block]


def topology_floor(inputs: dict[str, Block]) -> Callable[[], Floor]:
    """
    Every series, stepped across all corridors per bin: hub totals ``(bins, k)``,
    hub class parts and line series ``(bins, k, 3)``. The sources are > 0, so the
    hub's offered flow ``in + Q[t-1]`` never is 0 and its shares need no guard.
    """
    src = inputs["sources"]
    bins, k, _ = src.shape
    hub_cap, line_cap = inputs["hub_cap"], inputs["line_cap"]
    seed = np.zeros(k)
    hub_in, avail, hub_out, hub_q = (np.empty((bins, k)) for _ in range(4))
    share, keep = np.empty((bins, k)), np.empty((bins, k))
    class_avail, class_q, class_out = (np.empty((bins, k, 3)) for _ in range(3))
    line_avail, line_out, line_q = (np.empty((bins, k, 3)) for _ in range(3))
    scratch, zero_k, zero_kc = np.empty(k), np.zeros(k), np.zeros((k, 3))
    seeded = inputs["hub_seed"].copy()
    hub_steps = list(zip(hub_in, avail, hub_out, hub_q, [zero_k, *hub_q[:-1]], [seeded, *([seed] * (bins - 1))],
                         strict=True))
    class_steps = list(zip(src, class_avail, class_q, class_out, keep[:, :, None], share[:, :, None],
                           [zero_kc, *class_q[:-1]], line_avail, line_out, line_q, [zero_kc, *line_q[:-1]],
                           strict=True))
    s0, s1, s2 = src[:, :, 0], src[:, :, 1], src[:, :, 2]
    add, sub, mul, div, minimum, maximum = np.add, np.subtract, np.multiply, np.divide, np.minimum, np.maximum

    def run() -> Floor:
        add(s0, s1, hub_in)
        add(hub_in, s2, hub_in)
        for a_in, av, out, q, prev, sd in hub_steps:
            add(a_in, prev, av)
            minimum(hub_cap, av, out=out)
            add(prev, sd, scratch)  # the initial depth enters the depth, not the outflow (bin 0 only)
            add(scratch, a_in, scratch)
            sub(scratch, out, scratch)
            maximum(scratch, zero_k, out=q)
        div(hub_out, avail, share)
        div(hub_q, avail, keep)
        for c_in, c_av, c_q, c_out, kp, sh, c_prev, l_av, l_out, l_q, l_prev in class_steps:
            add(c_in, c_prev, c_av)
            mul(c_av, kp, c_q)
            mul(c_av, sh, c_out)
            add(c_out, l_prev, l_av)
            minimum(line_cap, l_av, out=l_out)
            sub(l_av, l_out, l_q)
            maximum(l_q, zero_kc, out=l_q)
        return {"hub_in": hub_in, "hub_out": hub_out, "hub_queue": hub_q, "hub_in_class": src,
                "hub_queue_class": class_q, "hub_out_class": class_out, "line_out": line_out, "line_queue": line_q}

    return run


def check(got: Any, floor: Floor, k: int) -> int:
    """The engine's series against the floor's; how many were compared."""
    exact, close = 0, 0
    parts: set[str] = set()

    def same(a: Any, b: Block, name: str, bitwise: bool) -> None:
        nonlocal exact, close
        if "#" in name:
            parts.add(name)
        if bitwise:
            assert np.array_equal(a, b), f"{name} differs"
            exact += 1
        else:
            np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12, err_msg=name)
            close += 1

    series, classes = got.series, got.classes
    for i in range(k):
        for key, name in (("hub_in", "in"), ("hub_out", "out"), ("hub_queue", "queue")):
            same(series[f"hub{i}_{name}"], floor[key][:, i], f"hub{i}_{name}", True)
        for j, (c, cid) in enumerate(CLASSES):
            same(classes[f"src{i}_{c}"][cid], floor["hub_in_class"][:, i, j], f"src{i}_{c}#{cid}", True)
            same(classes[f"hub{i}_in"][cid], floor["hub_in_class"][:, i, j], f"hub{i}_in#{cid}", False)
            same(classes[f"hub{i}_queue"][cid], floor["hub_queue_class"][:, i, j], f"hub{i}_queue#{cid}", False)
            routed = floor["hub_out_class"][:, i, j]
            same(classes[f"hub{i}_out"][cid], routed, f"hub{i}_out#{cid}", False)
            same(classes[f"Router{i}"][cid], routed, f"Router{i}#{cid}", False)
            line = f"line{i}_{c}"
            same(series[f"{line}_in"], routed, f"{line}_in", False)
            for node, want in ((f"{line}_out", floor["line_out"][:, i, j]),
                               (f"{line}_queue", floor["line_queue"][:, i, j])):
                same(series[node], want, node, False)
            for node, want in ((f"{line}_in", routed), (f"{line}_out", floor["line_out"][:, i, j]),
                               (f"{line}_queue", floor["line_queue"][:, i, j])):
                assert tuple(classes[node]) == (cid,), f"{node} carries {tuple(classes[node])}"
                same(classes[node][cid], want, f"{node}#{cid}", False)
    every = {f"{n}#{c}" for n, cs in classes.items() for c in cs}
    assert parts == every, f"the floor does not compute {sorted(every - parts)}"
    return exact + close


def corridor_row(k: int, bins: int, repeats: int, target: Target) -> tuple[Row, Plan]:
    inputs = corridor_inputs(k, bins)
    started = time.perf_counter()
    generated = render_template(parse_template(classes_template(inputs), "bench-classes.yaml"))
    p = plan(generated.loaded.model)
    prepared = time.perf_counter() - started
    floor = topology_floor(inputs)
    compared = check(p.evaluate(), floor(), k)
    evaluate: Callable[[], Any] = p.evaluate
    ours, base = paired_median_times(evaluate, floor, repeats)
    nodes = len(generated.loaded.model.nodes)
    hidden = sum(1 for n in p.evaluate().series if "#" in n)
    note = (f"{nodes} model nodes, {hidden} hidden series; {compared} series checked; "
            f"render + plan {prepared * 1e3:,.0f} ms")
    name = f"{k} corridor{'s' if k > 1 else ''} x 3 classes x {bins} bins"
    return Row(name, ours, base, target, note), p


def reference_row(repeats: int) -> Row:
    started = time.perf_counter()
    generated = render_template(load_template_file(REFERENCE))
    p = plan(generated.loaded.model)
    prepared = time.perf_counter() - started
    got = p.evaluate()
    parts = sum(len(v) for v in got.classes.values())
    ours = median_time(p.evaluate, repeats)
    return Row("reference transportation-basic-classes", ours, ours, Target.info(),
               f"{len(generated.loaded.model.nodes)} model nodes, {parts} class parts, "
               f"{generated.loaded.model.grid.bins} bins, defaults; render + plan {prepared * 1e3:,.0f} ms "
               "(baseline column: itself, no floor)")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    ap.add_argument("--quick", action="store_true", help="2 corridors, fewer repeats")
    args = ap.parse_args()
    k, repeats = (2, 21) if args.quick else (8, 101)
    t0 = time.perf_counter()
    main_row, p = corridor_row(k, 288, repeats, Target.at_most(2.0))
    rows = [main_row, corridor_row(1, 288, repeats, Target.info())[0], reference_row(repeats)]
    print_table(rows)
    print(f"(loops: {p.jit!r:.120}; NumPy {np.__version__}, Python {sys.version.split()[0]}; "
          f"{time.perf_counter() - t0:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
