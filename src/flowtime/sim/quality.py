"""
Structure validation and the quality report - reading a model, never running it.

``validate_text`` runs the shared model loader, the analyser's model-only
checks (``analysis.invariants.check_model``: no series, Sim never evaluates)
and then a fixed list of checks. The score is the fraction of the applicable
checks that pass (see docs/decisions/0006-sim-quality-score.md and 0028); a
model the loader rejects scores 0.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from flowtime.analysis.findings import Finding
from flowtime.analysis.invariants import check_model
from flowtime.errors import ModelError, Problem
from flowtime.expr.syntax import Array, BinOp, Call, Expr, Num, Ref, Unary
from flowtime.model.load import LoadedModel, load_error_problems, load_model
from flowtime.model.schema import ConstNode, Model, PmfNode
from flowtime.sim.topology import Topology, topology

PMF_EXACT = 1e-9  # the loader's "float noise" bound: beyond it a PMF is normalised


@dataclass(frozen=True)
class Check:
    name: str
    passed: bool
    message: str

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "passed": self.passed, "message": self.message}


@dataclass(frozen=True)
class QualityReport:
    """
    Checks that apply to a model and the share of them that pass.

    >>> QualityReport.from_checks([Check("a", True, ""), Check("b", False, "")]).score
    0.5
    """

    score: float
    checks: tuple[Check, ...]

    @classmethod
    def from_checks(cls, checks: Sequence[Check]) -> QualityReport:
        passed = sum(1 for c in checks if c.passed)
        score = round(passed / len(checks), 3) if checks else 0.0
        return cls(score, tuple(checks))

    def to_json(self) -> dict[str, Any]:
        return {"score": self.score, "checks": [c.to_json() for c in self.checks]}


@dataclass(frozen=True)
class ValidationReport:
    """What ``validate`` says about a model: problems, warnings and quality."""

    valid: bool
    problems: tuple[Problem, ...]
    warnings: tuple[Problem, ...]
    quality: QualityReport
    loaded: LoadedModel | None = field(default=None, compare=False)
    findings: tuple[Finding, ...] = ()  # the analyser's model-only findings (``check_model``)

    def to_json(self) -> dict[str, Any]:
        return {
            "valid": self.valid,
            "problems": [p.to_dict() for p in self.problems],
            "warnings": [p.to_dict() for p in self.warnings],
            "analysis": [f.to_dict() for f in self.findings],
            "quality": self.quality.to_json(),
        }

    def summary(self) -> dict[str, Any]:
        """The short form kept in a stored model's metadata.json."""
        return {
            "valid": self.valid,
            "problemCount": len(self.problems),
            "warningCount": len(self.warnings),
            "qualityScore": self.quality.score,
        }


def validate_text(text: str, source: str = "<string>", *,
                  unused_parameters: Sequence[str] | None = None) -> ValidationReport:
    """
    Validate model text and assess it. Model errors become problems in the
    report (never raised); over-limit input still raises ``LimitExceeded``.

    ``unused_parameters`` - when the model came from a template - adds the
    ``parameters_used`` check.
    """
    try:
        loaded = load_model(text, source)
    except ModelError as exc:
        problems = load_error_problems(exc)
        errors = tuple(p for p in problems if p.severity == "error") or tuple(problems)
        warnings = tuple(p for p in problems if p.severity != "error")
        check = Check("schema", False, f"the model does not validate ({len(errors)} problem(s))")
        return ValidationReport(False, errors, warnings, QualityReport(0.0, (check,)), None)
    return validate_loaded(loaded, unused_parameters=unused_parameters)


def validate_loaded(loaded: LoadedModel, *, unused_parameters: Sequence[str] | None = None,
                    topo: Topology | None = None) -> ValidationReport:
    """The report for a model the loader already accepted."""
    findings = tuple(check_model(loaded.model))
    quality = assess(loaded, unused_parameters=unused_parameters, topo=topo, findings=findings)
    return ValidationReport(True, (), tuple(unsaid(loaded.warnings, findings)), quality, loaded, findings)


def unsaid(warnings: Sequence[Problem], findings: Sequence[Finding]) -> list[Problem]:
    """
    The loader's warnings less those leading with a code a finding reports (``edge_behavior_violation_lag: ...``):
    the finding says it once, located by node - as the run writer does for run.json.
    """
    said = {f.code for f in findings}
    return [w for w in warnings if w.message.partition(":")[0] not in said]


def assess(loaded: LoadedModel, *, unused_parameters: Sequence[str] | None = None,
           topo: Topology | None = None, findings: Sequence[Finding] | None = None) -> QualityReport:
    model = loaded.model
    topo = topo or topology(model)
    if findings is None and model.topology is not None:
        findings = check_model(model)
    checks = [Check("schema", True, "the model passes the shared model validation")]
    checks.append(_has_outputs(topo))
    checks.append(_reach_outputs(topo))
    if unused_parameters is not None:
        checks.append(_parameters_used(unused_parameters))
    pmfs = [n for n in model.nodes if isinstance(n, PmfNode)]
    if pmfs:
        checks.append(_pmfs_valid(pmfs, loaded.warnings))
    checks.append(_non_negative(model))
    if topo.outputs:
        checks.append(_no_zero_outputs(model, topo))
    checks.append(_no_warnings(unsaid(loaded.warnings, findings or ())))
    if model.topology is not None:  # the analyser's model checks read the topology
        checks.append(_no_analyser_warnings(findings or ()))
    return QualityReport.from_checks(checks)


def _has_outputs(topo: Topology) -> Check:
    if topo.outputs:
        return Check("has_outputs", True, f"{len(topo.outputs)} output series declared")
    return Check("has_outputs", False, "no outputs: add an `outputs` list naming the series to write")


def _reach_outputs(topo: Topology) -> Check:
    reached = topo.reaching_outputs()
    dead = [n for n in topo.inputs if n not in reached]
    if not dead:
        return Check("nodes_reach_output", True, "every node feeds an output")
    return Check("nodes_reach_output", False,
                 f"{len(dead)} node(s) feed no output: {_names(dead)}")


def _parameters_used(unused: Sequence[str]) -> Check:
    if not unused:
        return Check("parameters_used", True, "every template parameter is used")
    return Check("parameters_used", False,
                 f"{len(unused)} template parameter(s) are never used: {_names(unused)}")


def _pmfs_valid(pmfs: Sequence[PmfNode], warnings: Sequence[Problem]) -> Check:
    # The loader normalises near-misses (and warns); the model then sums to 1 exactly.
    normalised = {w.path for w in warnings if w.path.endswith(".pmf")}
    bad = [n.id for n in pmfs if f"nodes.{n.id}.pmf" in normalised
           or abs(math.fsum(n.probabilities.tolist()) - 1.0) > PMF_EXACT]
    if not bad:
        return Check("pmfs_valid", True, f"{len(pmfs)} PMF(s) have probabilities >= 0 summing to 1")
    return Check("pmfs_valid", False, f"PMF(s) needed normalising (probabilities do not sum to 1): "
                 f"{_names(bad)}")


def _non_negative(model: Model) -> Check:
    bad = []
    for n in model.nodes:
        if isinstance(n, ConstNode | PmfNode) and (n.values < 0).any():
            bad.append(n.id)
    if not bad:
        return Check("capacities_non_negative", True,
                     "every input (const and PMF values: demands, capacities) is >= 0")
    return Check("capacities_non_negative", False, f"input(s) with negative values: {_names(bad)}")


def _no_zero_outputs(model: Model, topo: Topology) -> Check:
    zero = provably_zero(model, topo)
    dead = [n for n in topo.outputs if zero.get(n)]
    if not dead:
        return Check("no_constant_zero_outputs", True, "no output is zero in every bin")
    return Check("no_constant_zero_outputs", False,
                 f"output(s) zero in every bin whatever the inputs: {_names(dead)}")


def _no_warnings(warnings: Sequence[Problem]) -> Check:
    if not warnings:
        return Check("no_warnings", True, "the loader reported no warnings")
    return Check("no_warnings", False, f"{len(warnings)} warning(s), e.g. {warnings[0].message}")


def _no_analyser_warnings(findings: Sequence[Finding]) -> Check:
    # Infos (a series the model does not declare, say) are notes, not faults: only warnings and worse fail.
    bad = [f for f in findings if f.at_least("warning")]
    if not bad:
        return Check("no_analyser_warnings", True, "the analyser's model checks found no warnings")
    first = bad[0]
    at = f" at {first.node}" if first.node else ""
    return Check("no_analyser_warnings", False, f"{len(bad)} analyser warning(s), e.g. {first.code}{at}: "
                 f"{first.message}")


def _names(ids: Sequence[str], limit: int = 8) -> str:
    shown = ", ".join(ids[:limit])
    return shown + (f" and {len(ids) - limit} more" if len(ids) > limit else "")


def provably_zero(model: Model, topo: Topology) -> dict[str, bool]:
    """
    Nodes whose every bin is 0 for any reason visible in the model text.

    A small abstract interpretation in evaluation order: a product is zero when
    a factor is, a sum when every term is, ``SHIFT`` of zero is zero (the
    fill value is 0), a division by zero is 0 (the engine's rule). Nodes on a
    feedback loop read their own past before it is known, so are never zero.
    """
    zero: dict[str, bool] = {}
    for node_id in topo.order:
        node = model.node(node_id)
        if isinstance(node, ConstNode | PmfNode):
            zero[node_id] = bool((node.values == 0).all())
        elif node_id in topo.asts:
            zero[node_id] = _zero(topo.asts[node_id], zero)
    return zero


def _zero(e: Expr, known: dict[str, bool]) -> bool:
    if isinstance(e, Num):
        return e.value == 0
    if isinstance(e, Array):
        return all(v == 0 for v in e.values)
    if isinstance(e, Ref):
        return known.get(e.name, False)
    if isinstance(e, Unary):
        return _zero(e.operand, known)
    if isinstance(e, BinOp):
        a, b = _zero(e.left, known), _zero(e.right, known)
        if e.op in ("*", "/"):
            return a or b
        if e.op in ("+", "-"):
            return a and b
        return False  # comparisons give 1 for equal zeros
    if isinstance(e, Call):
        args = [_zero(x, known) for x in e.args]
        if e.name in ("SHIFT", "ABS", "SQRT", "FLOOR", "CEIL", "ROUND", "MOD"):
            return args[0]
        if e.name == "CONV":  # of a zero series, or with a kernel of zeros
            return args[0] or args[1]
        if e.name == "PULSE":  # zero when its amplitude is
            return len(args) > 2 and args[2]
        if e.name in ("MIN", "MAX", "CLAMP"):
            return all(args)
        if e.name == "IF":
            return args[1] and args[2]
    return False
