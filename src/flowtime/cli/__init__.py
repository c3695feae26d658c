"""
The ``flowtime`` command line: one typer app, sub-commands registered per module.

Errors are translated once, here: FlowTime's own errors print ``error: ...`` to
stderr and exit with the code from ``EXIT_CODES`` (0 ok, 1 invalid input or a
failed operation, 2 usage error - typer's own code for bad flags).
"""

from __future__ import annotations

import sys

import typer

from flowtime.errors import FlowTimeError, LimitExceeded, ModelError, RunNotFound, TemplateError

app = typer.Typer(
    name="flowtime",
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


def _register() -> None:
    from flowtime.cli import run, runs, serve, sim

    for module in (run, runs, sim, serve):
        module.register(app)


_register()


def main() -> None:
    """Console-script entry point: typer handles usage errors (exit 2); ours are translated here."""
    try:
        app()
    except FlowTimeError as exc:
        typer.echo(f"error: {exc}", err=True)
        sys.exit(exit_code_for(exc))
