"""
``flowtime experiments``: the stored experiments on the local data directory, no server needed.

    flowtime experiments list [--kind K] [--search TEXT] [--limit N] [--skip N] [--json]
    flowtime experiments show EXP [--json]

The same index and the same filters as ``GET /v1/experiments`` (decision 0037);
only finished experiments are on disk: queued and running ones belong to a
server (ask it: ``GET /v1/experiments?status=running``).
"""

from __future__ import annotations

import json
from typing import Annotated

import typer

from flowtime.artifacts.experiment_index import ExperimentQuery
from flowtime.artifacts.experiments import ExperimentStore
from flowtime.artifacts.query import MAX_LIMIT
from flowtime.artifacts.registry import Registry
from flowtime.cli.runs import AsJson, DataDir, _cell, _registry

experiments_app = typer.Typer(name="experiments", help="List and inspect stored experiments.",
                              no_args_is_help=True)


def _store(data_dir: DataDir) -> tuple[ExperimentStore, Registry]:
    registry = _registry(data_dir)
    return ExperimentStore(registry.root), registry


@experiments_app.command("list")
def list_experiments(
    data_dir: DataDir = None,
    kind: Annotated[list[str] | None, typer.Option("--kind", help="Experiments of any of these kinds.")] = None,
    search: Annotated[str | None, typer.Option(
        "--search", help="Case-insensitive text in id, title, kind, a parameter's target or the model hash.")] = None,
    limit: Annotated[int, typer.Option(min=1, max=MAX_LIMIT, help="At most this many.")] = 20,
    skip: Annotated[int, typer.Option(min=0, help="Skip this many (newest first).")] = 0,
    as_json: AsJson = False,
) -> None:
    """List stored experiments, newest first."""
    store, _ = _store(data_dir)
    store.sync()
    page = store.query(ExperimentQuery(search=search, kinds=tuple(kind or ()), limit=limit, skip=skip))
    if as_json:
        typer.echo(json.dumps({"experiments": [e.to_json() for e in page.experiments], "total": page.total,
                               "count": page.count}, indent=2))
        return
    if not page.experiments:
        typer.echo("No experiments found.")
        return
    typer.echo(f"{'ID':<29} {'CREATED':<19}  {'KIND':<11} {'TITLE':<28} {'POINTS':>7}")
    for e in page.experiments:
        typer.echo(f"{e.id:<29} {e.created[:19].replace('T', ' '):<19}  {e.kind:<11} {_cell(e.title, 28):<28} "
                   f"{e.points:>7}")
    typer.echo(f"Total: {page.total} experiments (showing {page.count})")


@experiments_app.command("show")
def show(
    exp_id: Annotated[str, typer.Argument(metavar="EXP", help="Experiment id.")],
    data_dir: DataDir = None,
    as_json: AsJson = False,
) -> None:
    """Show one stored experiment: its summary, files, the runs made from its points, and its result table."""
    store, registry = _store(data_dir)
    summary = store.summary(exp_id)
    runs = store.runs(exp_id, registry.has)
    result = store.result(exp_id)
    if as_json:
        typer.echo(json.dumps({**summary.to_json(), "files": store.files(exp_id), "runs": runs,
                               "result": result}, indent=2))
        return
    typer.echo(exp_id)
    rows = [("title", summary.title or "-"), ("kind", summary.kind), ("points", str(summary.points)),
            ("created", summary.created), ("finished", summary.finished), ("model hash", summary.model_hash),
            ("parameters", ", ".join(summary.parameters) or "-"), ("seed", str(result.get("seed"))),
            ("runs", ", ".join(runs) or "-")]
    for key, value in rows:
        typer.echo(f"  {key + ':':<13}{value}")
    from flowtime.cli.output import print_table
    from flowtime.cli.runs import _num

    table = result.get("table") or {}
    columns, body = list(table.get("columns") or []), list(table.get("rows") or [])
    print_table(["point", *columns], [[str(k), *(_num(v) if v is not None else "" for v in row)]
                                      for k, row in enumerate(body)])


def register(app: typer.Typer) -> None:
    app.add_typer(experiments_app, name="experiments")
