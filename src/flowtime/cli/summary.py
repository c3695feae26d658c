"""
What a run means, for the terminal: a row per topology node and the analyser's findings.

``flowtime run`` prints these after its series table (the run id stays the first
line); ``flowtime validate`` prints the findings. Numbers come from
``analysis.metrics.derive`` and ``analysis.invariants.analyse``; this module only
condenses and lays them out. A cell is empty where the metric does not apply to
the node or is undefined in every bin.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt
import typer

from flowtime.cli.output import num, print_table

if TYPE_CHECKING:
    from flowtime.analysis.findings import Finding
    from flowtime.analysis.metrics import NodeMetrics

NODE_HEADERS = ["node", "category", "util mean", "util max", "latency p95 (min)", "SLA %"]
MAX_FINDINGS = 20  # printed; --json lists them all


def node_summary(metrics: NodeMetrics) -> dict[str, float | None]:
    """
    Utilisation mean and max, latency p95 (minutes) over the bins where each is
    defined, and the SLA's percentage of bins met; None where there is no number.
    p95 is NumPy's default (linear interpolation between the two nearest ranks).
    """
    util = _defined(metrics.series.get("utilization"))
    latency = _defined(metrics.series.get("latencyMinutes"))
    sla = metrics.sla
    return {
        "utilizationMean": float(util.mean()) if util.size else None,
        "utilizationMax": float(util.max()) if util.size else None,
        "latencyP95Minutes": float(np.percentile(latency, 95)) if latency.size else None,
        "slaPercent": float(sla.percent) if sla is not None and sla.percent is not None else None,
    }


def _defined(values: npt.NDArray[np.float64] | None) -> npt.NDArray[np.float64]:
    if values is None:
        return np.empty(0)
    return values[np.isfinite(values)]


def node_rows(metrics: Mapping[str, NodeMetrics]) -> list[list[str]]:
    rows = []
    for node_id, m in metrics.items():
        s = node_summary(m)
        rows.append([node_id, m.category, num(s["utilizationMean"]), num(s["utilizationMax"]),
                     num(s["latencyP95Minutes"]), num(s["slaPercent"])])
    return rows


def print_nodes(metrics: Mapping[str, NodeMetrics]) -> None:
    """The node table; nothing at all for a model without topology."""
    if metrics:
        print_table(NODE_HEADERS, node_rows(metrics), numeric_from=2)


def print_findings(findings: Sequence[Finding], *, none_line: str | None = None) -> None:
    """The findings, worst first, each located (code, node, bins) with its hint."""
    from flowtime.analysis.findings import SEVERITIES

    if not findings:
        if none_line:
            typer.echo(none_line)
        return
    ordered = sorted(findings, key=lambda f: -SEVERITIES.index(f.severity))  # stable: the analyser's order within
    n = len(findings)
    typer.echo(f"{n} analyser finding{'s' if n != 1 else ''}:")
    for f in ordered[:MAX_FINDINGS]:
        typer.echo(f"  {f}")
        if f.hint:
            typer.echo(f"    hint: {f.hint}")
    if n > MAX_FINDINGS:
        typer.echo(f"  ... and {n - MAX_FINDINGS} more (--json lists them all)")


def summary_json(metrics: Mapping[str, NodeMetrics], findings: Sequence[Finding]) -> dict[str, Any]:
    """The ``nodes`` and ``findings`` keys of ``flowtime run --json``."""
    return {"nodes": [{"id": k, "category": m.category, **node_summary(m)} for k, m in metrics.items()],
            "findings": [f.to_dict() for f in findings]}
