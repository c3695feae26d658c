"""
FlowTime's own exceptions and the located ``Problem`` record.

Every error the core raises is one of these; the CLI and the HTTP services
translate them once, at their edge, into exit codes and problem+json bodies.

    FlowTimeError
    ├── ModelError                  the model text is wrong (CLI exit 1, HTTP 400)
    │   ├── ModelSyntaxError        not YAML, or YAML of the wrong shape
    │   ├── ModelValidationError    every problem found in one pass, located
    │   ├── ExpressionError         an expression does not parse (with a caret line)
    │   └── SeriesFileError         a `file:` series cannot be read (names the file and line)
    ├── LimitExceeded               an input is over a configured limit (HTTP 400; 413 for the body)
    ├── EvaluationError             a node failed while being computed (names the node)
    ├── GateFailed                  a strict run with analyser warnings: nothing stored (HTTP 422)
    ├── TemplateError               a Sim template or its parameters are wrong
    │   ├── TemplateNotFound        (also a LookupError)
    │   └── ParameterError          parameter overrides rejected, every problem listed
    ├── ModelNotFound               no model in Sim's temporary store has that id (LookupError)
    ├── ArtifactError               a run folder cannot be written or read
    │   ├── StorageFull             the disk is full: nothing was stored (HTTP 507)
    │   └── RunNotFound             (also a LookupError)
    │       ├── InvalidRunId        not shaped like a run id at all (HTTP 400; also a ValueError)
    │       └── ExperimentNotFound  no stored or running experiment has that id (HTTP 404)
    │           └── InvalidExperimentId  not shaped like an experiment id (HTTP 400)
    ├── ExperimentError             an experiment spec is wrong, every problem located in the spec (HTTP 400)
    ├── ExperimentCancelled         an experiment was cancelled before all its points were evaluated
    ├── WhatIfError                 a what-if message a session cannot take, located (HTTP 400)
    ├── SessionNotFound             no what-if session has that id, or it expired (HTTP 404; LookupError)
    ├── SessionsFull                the what-if session cap is reached (HTTP 429)
    ├── ConflictError               a request contradicts stored state (HTTP 409)
    └── QueryError                  a query parameter out of range, e.g. a bin past the run (HTTP 400; ValueError)
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from flowtime.records import record


@record
class Problem:
    """
    One thing wrong (or worth a warning) in an input, with where it is.

    ``path`` uses dots and node ids: ``nodes.served.expr``, ``grid.bins``.

    >>> str(Problem("grid.bins", "bins must be between 1 and 1000000", line=3, column=9))
    'line 3, column 9, grid.bins: bins must be between 1 and 1000000'
    """

    path: str
    message: str
    line: int | None = None
    column: int | None = None
    severity: str = "error"
    source: str | None = None

    def location(self) -> str:
        parts: list[str] = []
        if self.source:
            parts.append(self.source)
        if self.line is not None:
            parts.append(f"line {self.line}")
            if self.column is not None:
                parts.append(f"column {self.column}")
        if self.path:
            parts.append(self.path)
        return ", ".join(parts)

    def __str__(self) -> str:
        where = self.location()
        return f"{where}: {self.message}" if where else self.message

    def sort_key(self) -> tuple[int, int, str, str]:
        big = 1 << 30
        return (
            self.line if self.line is not None else big,
            self.column if self.column is not None else big,
            self.path,
            self.message,
        )

    def to_dict(self) -> dict[str, object]:
        return {
            "path": self.path,
            "line": self.line,
            "column": self.column,
            "message": self.message,
            "severity": self.severity,
        }


def sorted_problems(problems: Iterable[Problem]) -> list[Problem]:
    return sorted(problems, key=Problem.sort_key)


class FlowTimeError(Exception):
    """Base of every error FlowTime raises on purpose."""

    title = "FlowTime error"

    @property
    def problems(self) -> Sequence[Problem]:
        return ()


class ModelError(FlowTimeError):
    title = "Invalid model"


class _ProblemsError(ModelError):
    """An error carrying a sorted list of located problems."""

    def __init__(self, problems: Iterable[Problem], source: str | None = None) -> None:
        self._problems = sorted_problems(problems)
        self.source = source
        super().__init__(self._render())

    @property
    def problems(self) -> Sequence[Problem]:
        return self._problems

    def _render(self) -> str:
        errors = [p for p in self._problems if p.severity == "error"]
        n = len(errors) or len(self._problems)
        warns = len(self._problems) - len(errors)
        where = f" in {self.source}" if self.source else ""
        extra = f" (and {warns} warning{'s' if warns != 1 else ''})" if warns and errors else ""
        head = f"{n} error{'s' if n != 1 else ''}{extra}{where}:"
        return "\n".join([head, *(f"  - {p}" for p in self._problems)])


class ModelSyntaxError(_ProblemsError):
    title = "Model is not valid YAML"


class ModelValidationError(_ProblemsError):
    title = "Model validation failed"


class ExpressionError(ModelError):
    """
    An expression that does not parse or refers to something unknown.

    ``str()`` is the message, then the expression, then a caret under ``column``
    (1-based).
    """

    title = "Invalid expression"

    def __init__(self, message: str, expression: str, column: int) -> None:
        self.message = message
        self.expression = expression
        self.column = column
        # One display line, so the caret lines up even for multi-line expressions.
        shown = expression.replace("\r", " ").replace("\n", " ").replace("\t", " ")
        super().__init__(f"{message}\n    {shown}\n    {' ' * (column - 1)}^")


class SeriesFileError(ModelError):
    """
    A ``file:`` series that cannot be found, read or parsed. Raised by the edge
    that reads the file; the loader turns it into a problem at the reference.
    """

    title = "Series file rejected"


class LimitExceeded(FlowTimeError):
    title = "Input over a configured limit"

    def __init__(self, message: str, *, limit_name: str = "") -> None:
        self.limit_name = limit_name
        super().__init__(message)


class EvaluationError(FlowTimeError):
    title = "Evaluation failed"

    def __init__(self, node_id: str, message: str) -> None:
        self.node_id = node_id
        super().__init__(f"node `{node_id}`: {message}")


class Reportable(Protocol):
    """What ``GateFailed`` needs of a finding (``analysis.findings.Finding``; errors imports no analysis)."""

    @property
    def node(self) -> str | None: ...

    @property
    def severity(self) -> str: ...

    def to_dict(self) -> dict[str, Any]: ...


class GateFailed(FlowTimeError):
    """A run refused by the strict gate: the analyser found warnings, so nothing was stored."""

    title = "Run failed the strict analysis gate"

    def __init__(self, findings: Sequence[Reportable]) -> None:
        self.findings = list(findings)
        n = len(self.findings)
        head = (f"{n} analyser finding{'s' if n != 1 else ''} of severity warning or worse; "
                "the run was not stored (strict):")
        super().__init__("\n".join([head, *(f"  - {f}" for f in self.findings)]))

    @property
    def problems(self) -> Sequence[Problem]:
        return [Problem(f"topology.nodes.{f.node}" if f.node else "", str(f), severity=f.severity)
                for f in self.findings]


class TemplateError(FlowTimeError):
    title = "Template error"


class TemplateNotFound(TemplateError, LookupError):
    title = "Template not found"


class ParameterError(TemplateError):
    """Parameter overrides rejected; ``problems`` lists each one."""

    title = "Invalid parameters"

    def __init__(self, problems: Iterable[Problem], template_id: str = "") -> None:
        self._problems = sorted_problems(problems)
        self.template_id = template_id
        lines = [f"{len(self._problems)} parameter problem(s) for template '{template_id}':"]
        lines += [f"  - {p}" for p in self._problems]
        super().__init__("\n".join(lines))

    @property
    def problems(self) -> Sequence[Problem]:
        return self._problems


class ModelNotFound(FlowTimeError, LookupError):
    """No model in Sim's temporary store answers to the given id."""

    title = "Model not found"


class ArtifactError(FlowTimeError):
    title = "Artifact error"


class RunNotFound(ArtifactError, LookupError):
    title = "Run not found"


class InvalidRunId(RunNotFound, ValueError):
    """
    Text that is not a run id: no run can have it. A ``RunNotFound`` too, so callers
    that look a run up need one ``except``; HTTP answers 400, not 404.
    """

    title = "Not a run id"


class ExperimentNotFound(RunNotFound):
    title = "Experiment not found"


class InvalidExperimentId(ExperimentNotFound, ValueError):
    title = "Not an experiment id"


class StorageFull(ArtifactError):
    """The disk (or quota) is full; whatever was being stored was removed again."""

    title = "Insufficient storage"


class ExperimentError(FlowTimeError):
    """
    An experiment spec that cannot run: ``problems`` are located at the spec's
    paths (``parameters[1].range.high``, ``metrics[0].series``), all found in one pass.
    """

    title = "Invalid experiment"

    def __init__(self, problems: Iterable[Problem]) -> None:
        self._problems = sorted_problems(problems)
        n = len(self._problems)
        lines = [f"{n} problem{'s' if n != 1 else ''} in the experiment:", *(f"  - {p}" for p in self._problems)]
        super().__init__("\n".join(lines))

    @property
    def problems(self) -> Sequence[Problem]:
        return self._problems


class WhatIfError(FlowTimeError):
    """A what-if message (or session request) that cannot be taken: ``problems`` located at its paths (``set.<id>``)."""

    title = "Invalid what-if message"

    def __init__(self, problems: Iterable[Problem]) -> None:
        self._problems = sorted_problems(problems)
        super().__init__("; ".join(f"{p.path}: {p.message}" for p in self._problems))

    @property
    def problems(self) -> Sequence[Problem]:
        return self._problems


class SessionNotFound(FlowTimeError, LookupError):
    title = "What-if session not found"


class SessionsFull(FlowTimeError):
    title = "Too many what-if sessions"


class ConflictError(FlowTimeError):
    title = "Conflict"


class ExperimentCancelled(FlowTimeError):
    """An experiment was cancelled: ``done`` of its ``total`` batches had finished; their results are dropped."""

    title = "Experiment cancelled"

    def __init__(self, done: int, total: int) -> None:
        self.done = done
        self.total = total
        super().__init__(f"experiment cancelled after {done} of {total} batches")


@dataclass
class Warnings:
    """A collector the loader and evaluator append warnings to."""

    items: list[Problem] = field(default_factory=list)

    def add(self, path: str, message: str, line: int | None = None, column: int | None = None) -> None:
        self.items.append(Problem(path, message, line, column, severity="warning"))


class QueryError(FlowTimeError, ValueError):
    """A query parameter outside what the run offers; names the parameter and its valid range."""

    title = "Invalid query parameter"

    def __init__(self, parameter: str, message: str, valid: str = "") -> None:
        self.parameter = parameter
        self.valid = valid
        super().__init__(message)
