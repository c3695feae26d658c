"""
Tiered validation of model text, and the strict gate of a run.

The tiers are cumulative, as the reference's ``/v1/validate`` (analysis-head.md §1.1):

* ``schema`` - the YAML parses and the document has the right shape (``model.shape``);
* ``compile`` - the full load (references, expressions, cycles, topology) and the plan;
* ``analyse`` - one evaluation, then the analyser (``analysis.invariants.analyse``): its
  findings are warnings, and the model stays valid.

Unlike the reference, every problem is located (path, line, column) and a finding
keeps its severity, bins, value and hint. The compile tier loads the text once and
reports every problem the loader finds - the shape problems among them - rather
than stopping at the first tier that fails.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import field
from typing import TYPE_CHECKING, Any

from flowtime.errors import EvaluationError, GateFailed, ModelError, Problem, sorted_problems
from flowtime.model.files import SeriesFiles
from flowtime.model.limits import DEFAULT_LIMITS, Limits
from flowtime.model.load import LoadedModel, load_error_problems, load_model
from flowtime.model.shape import check_shape
from flowtime.records import record

if TYPE_CHECKING:
    from flowtime.analysis.findings import Finding
    from flowtime.model.schema import Model

TIERS = ("schema", "compile", "analyse")
_ALIASES = {"analyze": "analyse"}  # the American spelling, accepted


def tier_named(text: str) -> str | None:
    """
    The tier ``text`` names (any case), or None.

    >>> tier_named("Compile"), tier_named("analyze"), tier_named("lint")
    ('compile', 'analyse', None)
    """
    name = text.strip().lower()
    name = _ALIASES.get(name, name)
    return name if name in TIERS else None


@record
class Validation:
    """What validating a model at one tier found: located problems and the analyser's findings."""

    tier: str
    problems: tuple[Problem, ...] = ()  # errors and warnings, sorted by place
    findings: tuple[Finding, ...] = ()  # the analyse tier's
    loaded: LoadedModel | None = field(default=None, compare=False)  # from the compile tier on, when valid

    @property
    def valid(self) -> bool:
        return not self.errors

    @property
    def errors(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == "error"]

    @property
    def warnings(self) -> list[Problem]:
        return [p for p in self.problems if p.severity != "error"]

    def to_json(self) -> dict[str, Any]:
        """
        The body of ``POST /v1/validate``: our ``valid``/``problems`` and the
        reference's ``isValid``/``errors``/``warnings`` (a warning has ``code``,
        ``severity``, ``message`` and ``nodeId``; a finding adds its bins, value
        and hint, a loader warning its path, line and column).
        """
        return {
            "tier": self.tier,
            "valid": self.valid,
            "isValid": self.valid,
            "problems": [p.to_dict() for p in self.problems],
            "errors": [{"message": p.message, "path": p.path, "line": p.line, "column": p.column}
                       for p in self.errors],
            "warnings": [*({**p.to_dict(), "code": None, "nodeId": None} for p in self.warnings),
                         *(f.to_dict() for f in self.findings)],
        }


def validate_model(text: str, source: str = "<string>", *, tier: str = "analyse", limits: Limits = DEFAULT_LIMITS,
                   series_files: SeriesFiles | None = None, lenient_outputs: bool = False,
                   seed: int | None = None, sample_pmf: bool = False,
                   overrides: Mapping[str, Any] | None = None) -> Validation:
    """
    Validate ``text`` up to ``tier`` (one of ``TIERS``). Model problems are the
    answer, never raised; input over ``limits`` still raises ``LimitExceeded``.
    ``seed``, ``sample_pmf`` and ``overrides`` shape the analyse tier's evaluation
    as they shape a run.
    """
    if tier not in TIERS:
        raise ValueError(f"unknown tier {tier!r}; expected one of {', '.join(TIERS)}")
    if tier == "schema":
        try:
            return Validation(tier, tuple(check_shape(text, source, limits=limits)))
        except ModelError as exc:  # not YAML at all
            return Validation(tier, tuple(load_error_problems(exc)))
    from flowtime.engine.plan import plan

    try:
        loaded = load_model(text, source, limits=limits, series_files=series_files, lenient_outputs=lenient_outputs)
        planned = plan(loaded.model)
    except ModelError as exc:
        return Validation(tier, tuple(load_error_problems(exc)))
    if tier == "compile":
        return Validation(tier, tuple(loaded.warnings), loaded=loaded)
    try:
        results = planned.evaluate(seed, sample_pmf=sample_pmf, set=overrides)
    except ModelError as exc:  # overrides that do not fit the model
        return Validation(tier, tuple(sorted_problems([*loaded.warnings, *load_error_problems(exc)])))
    except EvaluationError as exc:
        return Validation(tier, tuple(sorted_problems([*loaded.warnings, Problem(f"nodes.{exc.node_id}", str(exc))])))
    model = results.model or loaded.model
    found = analyse_run(model, results.series)
    said = {f.code for f in found}  # a warning leading with a finding's code is said once, by the finding
    warned = [p for p in (*loaded.warnings, *results.warnings, *results.nonfinite_warnings())
              if p.message.partition(":")[0] not in said]
    return Validation(tier, tuple(warned), tuple(found), loaded)


def analyse_run(model: Model, series: Mapping[str, Any], metrics: Mapping[str, Any] | None = None) -> list[Finding]:
    """
    The analyser's findings over an evaluated model, with the model's own ``analysis:``
    settings (``metrics``: ``analysis.metrics.derive``'s, when the caller has them).
    """
    from flowtime.analysis.invariants import analyse

    return analyse(model, series, model.analysis, metrics)


def strict_gate(findings: Sequence[Finding]) -> None:
    """Raise ``GateFailed`` when any finding is a warning or worse (``run --strict``, ``?strict=true``)."""
    failing = [f for f in findings if f.at_least("warning")]
    if failing:
        raise GateFailed(failing)
