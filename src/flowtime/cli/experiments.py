"""
``flowtime sweep|montecarlo|sensitivity|goalseek|optimize|fit SPEC``: experiments from the command line.

One function serves every kind: the spec is read (a file, or ``-`` for JSON/YAML
on stdin), its ``kind`` checked against the command's (a spec without one takes
the command's), its model found (``--model``, else the spec's ``model:`` key,
relative to the spec file), the model's const nodes edited by ``--set``, and the
experiment run by ``experiments.runner.run_experiment`` - so a kind added to the
runner's table works here with no change but its name in ``KINDS``.

Ctrl-C sets the experiment's cancel event (the backend stops between batches and
raises ``ExperimentCancelled``, exit 130); a second Ctrl-C interrupts at once.
The progress bar goes to stderr, the result to stdout (only JSON with ``--json``).
"""

from __future__ import annotations

import os
import signal
import sys
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer

from flowtime.cli.run import SetOpt, parse_assignments
from flowtime.errors import ExperimentError, Problem

KINDS = ("sweep", "montecarlo", "sensitivity", "goalseek", "optimize", "fit")
HELP = {
    "sweep": "Run MODEL over a grid or Latin hypercube of parameter values; print parameters -> metrics.",
    "montecarlo": "Run MODEL N times with sampled PMFs and parameter draws; print metric spreads and bands.",
    "sensitivity": "Which parameters move the metrics: local elasticities, Morris screening or Sobol indices.",
    "goalseek": "Find the parameter value at which a metric hits a target (Brent's method).",
    "optimize": "Minimise or maximise a metric over bounded parameters, with constraints on other metrics.",
    "fit": "Fit parameters so that a series matches an observed one (RMSE, MAE or weighted).",
}
PLOTTED = ("sweep", "montecarlo", "sensitivity")

SpecArg = Annotated[str, typer.Argument(help="Experiment spec (YAML or JSON), or - for standard input.",
                                        metavar="SPEC")]
ModelOpt = Annotated[str | None, typer.Option(
    "--model", "-m", metavar="MODEL", help="The model YAML (overrides the spec's model:, which is relative to the "
                                           "spec file).")]
OutOpt = Annotated[Path | None, typer.Option(
    "--output", "-o", metavar="FILE", help="Write the result: .csv or .parquet (the table: a row per point) or "
                                           ".json (everything, as --json prints it).")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print the result as JSON and nothing else on stdout.")]
DaskOpt = Annotated[str | None, typer.Option(
    "--dask", metavar="ADDRESS", help="Run the batches on Dask: tcp://host:port, or local (a local cluster of 2 "
                                      "worker processes); default env FLOWTIME_DASK_ADDRESS.")]
BackendOpt = Annotated[str | None, typer.Option(
    "--backend", metavar="NAME", help="inprocess (default) or processes[:N] (a local process pool).")]
PlotOpt = Annotated[Path | None, typer.Option(
    "--plot", metavar="PNG", help="Draw the result: sweep - metrics against the first parameter; montecarlo - the "
                                  "percentile bands of the first captured series; sensitivity - a tornado.")]
ProgressOpt = Annotated[bool | None, typer.Option(
    "--progress/--no-progress", help="Show the progress bar on stderr (default: when stderr is a terminal).")]


def read_spec(source: str, kind: str) -> tuple[dict[str, Any], Path | None]:
    """(the spec's data with its kind checked, the folder its relative paths start from)."""
    from flowtime.model.yamltext import parse_yaml
    from flowtime.sources import read_model_text

    text, name = read_model_text(source)
    data = parse_yaml(text, name)[0]
    if not isinstance(data, Mapping):
        raise ExperimentError([Problem("", f"{name}: an experiment spec is a mapping (kind, parameters, "
                                           f"metrics, ...), got {type(data).__name__}")])
    data = dict(data)
    given = data.setdefault("kind", kind)
    if given != kind:
        runs = f"; run it with `flowtime {given}`" if given in KINDS else ""
        raise ExperimentError([Problem("kind", f"the spec's kind is {given!r} but this is `flowtime {kind}`{runs}")])
    return data, (None if source == "-" else Path(source).parent)


def model_source(data: dict[str, Any], option: str | None, base: Path | None) -> str:
    """The model's path: ``--model``, else the spec's ``model:`` (removed from the data: not a spec field)."""
    named = data.pop("model", None)
    if option is not None:
        return option
    if not isinstance(named, str) or not named:
        raise ExperimentError([Problem("model", "no model: give --model MODEL.yaml or model: in the spec")])
    path = Path(named)
    return os.path.normpath(path if path.is_absolute() or base is None else base / path)


TemplateOpt = Annotated[str | None, typer.Option(
    "--template", "-t", metavar="TEMPLATE", help="A Sim template (id, or a template file) instead of a model: it is "
                                                 "rendered here, once per distinct value of its template.<name> "
                                                 "parameters; --set then sets its base parameters.")]


def template_of(data: dict[str, Any], option: str | None, model: str | None, items: list[str] | None,
                base: Path | None) -> tuple[str, str, Any] | None:
    """
    (base model text, its name, the renderer) when the experiment's model is a template (``--template`` or the
    spec's ``template:``, with ``--set`` over its base parameters), else None. Rendered through the Sim library.
    """
    if option is None and "template" not in data:
        return None
    if model is not None or "model" in data:
        where = "--model" if model is not None else "model"
        raise ExperimentError([Problem(where, "give a model or a template, not both")])
    given = data.get("template")
    given = {"id": given} if isinstance(given, str) else dict(given) if isinstance(given, Mapping) else {}
    if option is not None:
        given["id"] = option  # the spec's base parameters stay
    sets = parse_assignments(items)
    if sets:
        given["parameters"] = {**(given.get("parameters") or {}), **sets}
    data["template"] = given
    from flowtime.cli.sim import _catalog
    from flowtime.template_sources import template_source

    source = template_source(data, base, _catalog(None))
    return source.base_text, f"template {source.template_id}", source


def with_sets(text: str, name: str, items: list[str] | None) -> str:
    """The model's YAML with the ``--set`` const nodes holding their new values (checked as ``flowtime run``)."""
    overrides = parse_assignments(items)
    if not overrides:
        return text
    import yaml

    from flowtime.model.load import load_model
    from flowtime.model.overrides import normalise
    from flowtime.model.yamltext import parse_yaml

    model = load_model(text, name).model
    given = normalise(overrides, model.grid.bins, model)
    data = parse_yaml(text, name)[0]
    nodes = {n.get("id"): n for n in data.get("nodes") or [] if isinstance(n, dict)}
    for node_id, value in given.items():
        node = nodes.get(node_id)
        if node is None:  # a const the loader made (a topology capacity...): a parameter target can vary it
            raise typer.BadParameter(f"{node_id!r} is not a node written in the model file; vary it with a "
                                     "parameter target instead", param_hint="--set")
        node.pop("file", None)
        node["values"] = value
    return yaml.safe_dump(data, sort_keys=False, allow_unicode=True)


def expected_points(spec: Any) -> int | None:
    """How many points the experiment evaluates, when known before it runs (the progress bar's total)."""
    import math

    settings: Any = spec.settings
    if spec.kind == "montecarlo":
        return int(settings.replications)
    if spec.kind == "sweep":
        if settings.method == "lhs":
            return int(settings.points) if settings.points else None
        counts: list[int] = []
        for p in spec.parameters:
            count = len(p.values) if p.values is not None else p.range.steps if p.range is not None else None
            if not count:
                return None
            counts.append(count)
        return math.prod(counts)
    return None  # the iterative kinds decide as they go


@contextmanager
def cancel_on_interrupt() -> Iterator[threading.Event]:
    """An event Ctrl-C sets (the experiment stops between batches); a second Ctrl-C interrupts at once."""
    cancel = threading.Event()
    if threading.current_thread() is not threading.main_thread():
        yield cancel
        return

    def handler(signum: int, frame: Any) -> None:
        if cancel.is_set():
            raise KeyboardInterrupt
        cancel.set()
        sys.stderr.write("\ncancelling after the batches running now (Ctrl-C again to interrupt)\n")

    previous = signal.signal(signal.SIGINT, handler)
    try:
        yield cancel
    finally:
        signal.signal(signal.SIGINT, previous)


def _backend_name(dask: str | None, backend: str | None) -> str | None:
    if dask is not None and backend is not None:
        raise typer.BadParameter("give --dask or --backend, not both", param_hint="--dask")
    if backend is not None and not (backend == "inprocess" or backend.startswith("processes")):
        raise typer.BadParameter(f"{backend!r}: use inprocess or processes[:N] (Dask: --dask)",
                                 param_hint="--backend")
    if dask is not None and not (dask == "local" or "://" in dask):
        raise typer.BadParameter(f"{dask!r}: use tcp://host:port or local", param_hint="--dask")
    return dask if dask is not None else backend


def run_kind(kind: str, spec_file: str, model: str | None, set_: list[str] | None, output: Path | None,
             as_json: bool, dask: str | None, backend: str | None, plot: Path | None,
             progress: bool | None, template: str | None = None) -> None:
    """Everything one experiment command does, whatever its kind."""
    import flowtime
    from flowtime.cli.experiment_output import check_output, print_result, write_output
    from flowtime.experiments.runner import run_experiment
    from flowtime.experiments.spec import parse_spec
    from flowtime.model.load import load_model
    from flowtime.series_files import beside, inline_files
    from flowtime.sources import read_model_text

    name = _backend_name(dask, backend)
    if output is not None:
        check_output(output)
    if plot is not None and kind not in PLOTTED:
        raise typer.BadParameter(f"no plot for {kind}; --plot draws {', '.join(PLOTTED)}", param_hint="--plot")
    data, base = read_spec(spec_file, kind)
    templated = template_of(data, template, model, set_, base)
    renderer = None
    if templated is not None:
        text, model_name, renderer = templated
    else:
        source = model_source(data, model, base)
        text, model_name = read_model_text(source)
        text = inline_files(text, model_name, beside(source))  # workers get the values, never the client's paths
        text = with_sets(text, model_name, set_)
    data = flowtime._read_observed(data, text, base)  # a fit's observed CSV, read here: the core opens no file
    spec = parse_spec(data)
    if plot is not None:
        from flowtime.cli.plots import check_plot

        check_plot(spec)
    show = progress if progress is not None else sys.stderr.isatty()
    with cancel_on_interrupt() as cancel, _progress(show, kind, expected_points(spec)) as on_progress:
        result = run_experiment(spec, text, name, cancel=cancel, on_progress=on_progress, renderer=renderer)
    for w in result.warnings:
        typer.echo(f"warning: {w}", err=True)
    if output is not None:
        write_output(result, output)
    if plot is not None:
        from flowtime.cli.plots import plot_result

        plot_result(result, load_model(text, model_name).model.grid, plot)
    if as_json:
        import json

        typer.echo(json.dumps(result.to_json(), allow_nan=False))
        return
    print_result(result, model_name, name or "inprocess")
    for path in (output, plot):
        if path is not None:
            typer.echo(f"wrote {path}")


@contextmanager
def _progress(show: bool, kind: str, total: int | None) -> Iterator[Callable[[int], None] | None]:
    """
    Points done on stderr: on a terminal a rich bar (rate and ETA; no ETA when the total is not
    known), else (``--progress`` into a log) a plain line at every tenth of the total, or per batch.
    """
    if not show:
        yield None
        return
    if not sys.stderr.isatty():
        shown = [0]

        def line(done: int) -> None:
            if total is None or done >= total or done * 10 // total > shown[0] * 10 // total:
                shown[0] = done
                of = f"/{total}" if total else ""
                sys.stderr.write(f"{kind}: {done}{of} points\n")
                sys.stderr.flush()

        yield line
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    columns: list[Any] = [TextColumn(kind), BarColumn(), MofNCompleteColumn() if total else
                          TextColumn("{task.completed:.0f} points"),
                          TextColumn("{task.fields[rate]}"), TimeRemainingColumn()]
    with Progress(*columns, console=Console(stderr=True)) as bar:
        task = bar.add_task(kind, total=total, rate="")

        def advance(done: int) -> None:
            speed = bar.tasks[0].speed
            bar.update(task, completed=done, rate=f"{speed:,.0f} points/s" if speed else "")

        yield advance


def _command(kind: str) -> Callable[..., None]:
    def command(spec: SpecArg, model: ModelOpt = None, set_: SetOpt = None, output: OutOpt = None,
                as_json: JsonOpt = False, dask: DaskOpt = None, backend: BackendOpt = None, plot: PlotOpt = None,
                progress: ProgressOpt = None, template: TemplateOpt = None) -> None:
        run_kind(kind, spec, model, set_, output, as_json, dask, backend, plot, progress, template)

    command.__doc__ = HELP[kind]
    command.__name__ = kind
    return command


def register(app: typer.Typer) -> None:
    for kind in KINDS:
        app.command(kind, help=HELP[kind])(_command(kind))
