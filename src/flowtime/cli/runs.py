"""
``flowtime runs``: the registry on the local data directory, no server needed.

    flowtime runs list [--template ID] [--model ID] [--search TEXT] [--tag T] [--limit N]
    flowtime runs show RUN
    flowtime runs compare A B
    flowtime runs rebuild-index
    flowtime runs delete RUN

Every command takes ``--data-dir`` (env ``FLOWTIME_DATA_DIR``, default ``./data``)
and most take ``--json`` for machine-readable output.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from flowtime.artifacts.canonical import format_number
from flowtime.artifacts.registry import MAX_LIMIT, Artifact, ArtifactQuery, Registry
from flowtime.errors import ArtifactError

runs_app = typer.Typer(name="runs", help="List, inspect, compare and delete stored runs.",
                       no_args_is_help=True)

DataDir = Annotated[Path, typer.Option(
    "--data-dir", envvar="FLOWTIME_DATA_DIR", show_default=True,
    help="Data directory holding the run folders [env FLOWTIME_DATA_DIR].")]
AsJson = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]


def _registry(data_dir: Path) -> Registry:
    if not data_dir.is_dir():
        raise ArtifactError(f"data directory '{data_dir}' does not exist "
                            "(pass --data-dir or set FLOWTIME_DATA_DIR)")
    return Registry(data_dir)


def _cell(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 3] + "..."


def _created(a: Artifact) -> str:
    return a.created[:19].replace("T", " ")


def _num(v: float) -> str:
    """Table cells: up to 8 significant digits (exact values are in the run's CSVs)."""
    f = float(v)
    return format_number(f) if f != f or f in (float("inf"), float("-inf")) else f"{f:.8g}"


@runs_app.command("list")
def list_runs(
    data_dir: DataDir = Path("data"),
    template: Annotated[str | None, typer.Option("--template", help="Exact template id.")] = None,
    model: Annotated[str | None, typer.Option("--model", help="Exact model id.")] = None,
    search: Annotated[str | None, typer.Option(
        "--search", help="Case-insensitive text in id, title, tags or template.")] = None,
    tag: Annotated[list[str] | None, typer.Option("--tag", help="Runs with any of these tags.")]
    = None,
    limit: Annotated[int, typer.Option(min=1, max=MAX_LIMIT, help="At most this many.")] = 20,
    skip: Annotated[int, typer.Option(min=0, help="Skip this many (newest first).")] = 0,
    as_json: AsJson = False,
) -> None:
    """List stored runs, newest first."""
    registry = _registry(data_dir)
    registry.sync()
    page = registry.query(ArtifactQuery(type="run", search=search, tags=tuple(tag or ()),
                                        template_id=template, model_id=model, limit=limit,
                                        skip=skip))
    if as_json:
        typer.echo(json.dumps({"runs": [a.to_json() for a in page.artifacts],
                               "total": page.total, "count": page.count}, indent=2))
        return
    if not page.artifacts:
        typer.echo("No runs found.")
        return
    typer.echo(f"{'ID':<31} {'CREATED':<19}  {'TITLE':<28} {'TEMPLATE':<20} {'SERIES':>6}")
    for a in page.artifacts:
        typer.echo(f"{a.id:<31} {_created(a):<19}  {_cell(a.title, 28):<28} "
                   f"{_cell(a.template_id or '-', 20):<20} {a.series_count:>6}")
    typer.echo(f"Total: {page.total} runs (showing {page.count})")


@runs_app.command("show")
def show(
    run_id: Annotated[str, typer.Argument(metavar="RUN", help="Run id.")],
    data_dir: DataDir = Path("data"),
    as_json: AsJson = False,
) -> None:
    """Show one run: grid, hashes, provenance, series, and whether its hashes verify."""
    registry = _registry(data_dir)
    details = registry.details(run_id)
    problems = registry.verify(run_id)
    if as_json:
        typer.echo(json.dumps({**details, "verify": {"ok": not problems, "problems": problems}},
                              indent=2))
        return
    run, manifest, prov = details["run"], details["manifest"], details["provenance"]
    grid = run.get("grid") or {}
    files = registry.files(run_id)
    rows: list[tuple[str, str]] = [
        ("title", str(run.get("title", "-"))),
        ("created", str(run.get("createdUtc", "-"))),
        ("grid", f"{grid.get('bins')} bins of {grid.get('binSize')} {grid.get('binUnit')}"),
        ("seed", "-" if run.get("seed") is None else str(run.get("seed"))),
        ("model hash", str(manifest.get("modelHash"))),
        ("scenario hash", str(manifest.get("scenarioHash"))),
        ("provenance", ", ".join(f"{k}={v}" for k, v in prov.items()
                                 if k in ("modelId", "templateId", "templateVersion"))
         if prov else "-"),
        ("series", ", ".join(s.get("nodeId", s["id"]) for s in run.get("series", []))),
        ("files", f"{len(files)} ({sum(f['size'] for f in files)} bytes)"),
        ("hashes", "ok" if not problems else f"{len(problems)} mismatch(es)"),
    ]
    typer.echo(run_id)
    for key, value in rows:
        typer.echo(f"  {key + ':':<15}{value}")
    for p in problems:
        typer.echo(f"  mismatch: {p}")
    if problems:
        raise typer.Exit(1)


@runs_app.command("compare")
def compare(
    a: Annotated[str, typer.Argument(metavar="A", help="Run A.")],
    b: Annotated[str, typer.Argument(metavar="B", help="Run B (deltas are A - B).")],
    data_dir: DataDir = Path("data"),
    as_json: AsJson = False,
) -> None:
    """Compare two runs on the same grid: per series, the change from B to A, most changed first."""
    from flowtime.artifacts.compare import compare_runs

    result = compare_runs(_registry(data_dir), a, b)
    if as_json:
        typer.echo(json.dumps(result.to_json(), indent=2))
        return
    g = result.grid
    typer.echo(f"A: {a}  {result.a.get('title') or ''}".rstrip())
    typer.echo(f"B: {b}  {result.b.get('title') or ''}".rstrip())
    typer.echo(f"grid: {g.get('bins')} bins of {g.get('binSize')} {g.get('binUnit')}")
    ranking = result.comparison.ranking
    if ranking:
        width = max(6, *(len(d.id) for d in ranking))
        typer.echo(f"{'SERIES':<{width}}  {'MAX_ABS_DELTA':>14} {'SUM_DELTA':>14} "
                   f"{'MEAN_DELTA':>14}")
        for d in ranking:
            typer.echo(f"{d.id:<{width}}  {_num(d.max_abs_delta):>14} {_num(d.sum_delta):>14} "
                       f"{_num(d.mean_delta):>14}")
    else:
        typer.echo("no series in common")
    if result.comparison.only_in_a:
        typer.echo("only in A: " + ", ".join(result.comparison.only_in_a))
    if result.comparison.only_in_b:
        typer.echo("only in B: " + ", ".join(result.comparison.only_in_b))


@runs_app.command("rebuild-index")
def rebuild_index(data_dir: DataDir = Path("data")) -> None:
    """Rescan every run folder and rebuild the index (index.sqlite) from scratch."""
    registry = _registry(data_dir)
    n = registry.rebuild()
    typer.echo(f"indexed {n} run{'s' if n != 1 else ''} in {data_dir}")


@runs_app.command("delete")
def delete(
    run_id: Annotated[str, typer.Argument(metavar="RUN", help="Run id.")],
    data_dir: DataDir = Path("data"),
) -> None:
    """Delete a run folder and its index entry for good."""
    _registry(data_dir).delete(run_id)
    typer.echo(f"deleted {run_id}")


def register(app: typer.Typer) -> None:
    app.add_typer(runs_app, name="runs")
