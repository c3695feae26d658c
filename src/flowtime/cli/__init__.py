"""
The ``flowtime`` command line: one typer app whose sub-commands load on first use.

Each sub-command module has ``register(app)``; the root only knows the table
``COMMANDS`` (name -> module and a one-line help), so ``flowtime run`` imports
the engine and nothing of the services, and ``flowtime --help`` lists every
command without importing any of them.

Errors are translated once, here: FlowTime's own errors print ``error: ...`` to
stderr and exit with the code from ``EXIT_CODES`` (0 ok, 1 invalid input or a
failed operation, 2 usage error - typer's own code for bad flags, 130 an
experiment cancelled by Ctrl-C). An experiment's problems print one line each,
``error: <spec path>: message``.
"""

from __future__ import annotations

import importlib
import sys
from typing import Any

import typer
from typer.core import TyperCommand, TyperGroup

from flowtime.errors import (
    ExperimentCancelled,
    ExperimentError,
    FlowTimeError,
    LimitExceeded,
    ModelError,
    RunNotFound,
    TemplateError,
)

# name -> (module holding ``register``, short help shown by ``flowtime --help``)
COMMANDS: dict[str, tuple[str, str]] = {
    "run": ("flowtime.cli.run", "Evaluate MODEL, write a run folder and print a summary of its series and topology."),
    "validate": ("flowtime.cli.run", "Check MODEL (--tier schema|compile|analyse) and print every problem; exit 1 "
                                     "when there are errors."),
    "graph": ("flowtime.cli.run", "Print the nodes, edges and evaluation order of MODEL without running it."),
    "runs": ("flowtime.cli.runs", "List, inspect, export, compare and delete stored runs."),
    "experiments": ("flowtime.cli.stored_experiments", "List and inspect stored experiments (the Engine's "
                                                       "experiment index)."),
    "sim": ("flowtime.cli.sim", "Sim: templates -> engine-ready models with provenance (never runs them)."),
    "serve": ("flowtime.cli.serve", "Run one FlowTime service over HTTP."),
    "up": ("flowtime.cli.serve", "Start Engine, Sim and the UI together; Ctrl-C stops all three."),
    "sweep": ("flowtime.cli.experiments", "Experiment: MODEL over a grid or Latin hypercube of parameter values."),
    "montecarlo": ("flowtime.cli.experiments", "Experiment: N replications with sampling; metric spreads and "
                                               "percentile bands."),
    "sensitivity": ("flowtime.cli.experiments", "Experiment: local, Morris or Sobol sensitivity of metrics to "
                                                "parameters."),
    "goalseek": ("flowtime.cli.experiments", "Experiment: the parameter value at which a metric hits a target."),
    "optimize": ("flowtime.cli.experiments", "Experiment: minimise or maximise a metric under constraints."),
    "fit": ("flowtime.cli.experiments", "Experiment: fit parameters to an observed series."),
}


class LazyGroup(TyperGroup):
    """A typer group that imports a sub-command's module only when that command runs."""

    _listing = False

    def list_commands(self, ctx: Any) -> list[str]:
        return list(COMMANDS)

    def get_command(self, ctx: Any, cmd_name: str) -> Any:
        if cmd_name not in COMMANDS:
            return None
        if self._listing:  # help needs a name and a line of text, not the command
            short = COMMANDS[cmd_name][1]
            return TyperCommand(cmd_name, help=short, short_help=short)
        if cmd_name not in self.commands:
            self.commands.update(_load(COMMANDS[cmd_name][0]))
        return self.commands.get(cmd_name)

    def format_help(self, ctx: Any, formatter: Any) -> None:
        self._listing = True
        try:
            super().format_help(ctx, formatter)
        finally:
            self._listing = False


def _load(module_name: str) -> dict[str, Any]:
    """The click commands a sub-command module registers (every one of them: ``run`` brings ``validate``)."""
    staging = typer.Typer(add_completion=False)
    importlib.import_module(module_name).register(staging)
    group = typer.main.get_group(staging)
    return dict(group.commands)


app = typer.Typer(
    name="flowtime",
    cls=LazyGroup,
    help="FlowTime: deterministic flow models over a time grid - engine, Sim and UI.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

EXIT_CODES: dict[type[BaseException], int] = {
    ModelError: 1,
    TemplateError: 1,
    LimitExceeded: 1,
    RunNotFound: 1,
    ExperimentError: 1,
    ExperimentCancelled: 130,  # what a shell reports for Ctrl-C
    FlowTimeError: 1,
}


def exit_code_for(exc: BaseException) -> int:
    for cls in type(exc).__mro__:
        if cls in EXIT_CODES:
            return EXIT_CODES[cls]
    return 1


def _version(value: bool) -> None:
    if value:
        from flowtime._version import __version__

        typer.echo(f"flowtime {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                 help="Print the version and exit."),
) -> None:
    """FlowTime: deterministic flow models over a time grid - engine, Sim and UI."""


def main() -> None:
    """Console-script entry point: typer handles usage errors (exit 2); ours are translated here."""
    try:
        app()
    except FlowTimeError as exc:
        for line in error_lines(exc):
            typer.echo(line, err=True)
        sys.exit(exit_code_for(exc))


def error_lines(exc: FlowTimeError) -> list[str]:
    """What stderr says about ``exc``: one line per located problem of an experiment."""
    if isinstance(exc, ExperimentError):
        return [f"error: {p}" for p in exc.problems]
    if isinstance(exc, ExperimentCancelled):
        return [f"cancelled: {exc}; nothing was written"]
    return [f"error: {exc}"]
