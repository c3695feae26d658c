"""``flowtime run``, ``validate`` and ``graph``: the engine on local files."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Annotated

import typer

from flowtime.errors import Problem

ModelArg = Annotated[str, typer.Argument(help="Model YAML file, or - for standard input.", metavar="MODEL")]


def default_data_dir() -> Path:
    return Path(os.environ.get("FLOWTIME_DATA_DIR", "data"))


def _warn(problems: list[Problem]) -> None:
    for p in problems:
        typer.echo(f"warning: {p}", err=True)


def run(
    model: ModelArg,
    out: Annotated[Path | None, typer.Option("--out", help="Data directory for run folders [env FLOWTIME_DATA_DIR, "
                                             "default ./data].")] = None,
    seed: Annotated[int | None, typer.Option(help="RNG seed (overrides rng.seed).")] = None,
    deterministic_run_id: Annotated[bool, typer.Option("--deterministic-run-id", help="Name the run folder from "
                                                       "the scenario hash; re-running reuses it.")] = False,
    sample_pmf: Annotated[bool, typer.Option("--sample-pmf", help="Draw PMF nodes per bin instead of using "
                                             "their expected value.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print a JSON summary.")] = False,
) -> None:
    """Evaluate MODEL and write a run folder; prints the run id and folder."""
    from flowtime.artifacts.writer import write_run
    from flowtime.engine import compile_model, evaluate
    from flowtime.model.load import load_model
    from flowtime.sources import read_model_text

    text, name = read_model_text(model)
    t0 = time.perf_counter()
    loaded = load_model(text, name)
    graph = compile_model(loaded.model)
    t1 = time.perf_counter()
    results = evaluate(graph, seed=seed, sample_pmf=sample_pmf)
    t2 = time.perf_counter()
    root = out or default_data_dir()
    record = write_run(
        loaded, results, root, provenance=loaded.provenance, deterministic_id=deterministic_run_id,
        timings={"compileMs": round((t1 - t0) * 1000, 3), "evaluateMs": round((t2 - t1) * 1000, 3)},
    )
    _index(root, record.run_id)
    _warn([*loaded.warnings, *results.warnings, *results.nonfinite_warnings()])
    if as_json:
        typer.echo(json.dumps({
            "runId": record.run_id, "path": str(record.path), "reused": record.reused,
            "modelHash": record.manifest["modelHash"], "scenarioHash": record.manifest["scenarioHash"],
            "seed": results.seed, "series": results.output_ids,
        }, indent=2))
        return
    typer.echo(record.run_id)
    typer.echo(str(record.path))


def _index(root: Path, run_id: str) -> None:
    """Add the run to the registry index when the registry module is available."""
    try:
        from flowtime.artifacts.registry import Registry
    except ImportError:  # pragma: no cover - registry lands with the engine service
        return
    Registry(root).add(run_id)


def validate(model: ModelArg) -> None:
    """Check MODEL and print every problem; exit 1 when there are errors."""
    from flowtime.engine import compile_model
    from flowtime.model.load import load_model
    from flowtime.sources import read_model_text

    text, name = read_model_text(model)
    loaded = load_model(text, name)  # raises with every problem, located
    graph = compile_model(loaded.model)
    _warn(loaded.warnings)
    g = loaded.model.grid
    loops = f", {len(graph.components)} feedback loop(s)" if graph.components else ""
    typer.echo(f"ok: {name} is valid - {len(graph.order)} nodes, {g.bins} bins of {g.bin_size} "
               f"{g.bin_unit.value}, {len(graph.output_ids)} outputs{loops}")


def graph(
    model: ModelArg,
    as_json: Annotated[bool, typer.Option("--json", help="Print nodes, edges and order as JSON.")] = False,
) -> None:
    """Print the nodes, edges and evaluation order of MODEL without running it."""
    from flowtime.engine import compile_model
    from flowtime.model.load import load_model
    from flowtime.sources import read_model_text

    text, name = read_model_text(model)
    g = compile_model(load_model(text, name).model)
    if as_json:
        typer.echo(json.dumps(g.describe(), indent=2))
        return
    typer.echo("nodes:")
    for n in g.model.nodes:
        inputs = g.inputs[n.id]
        typer.echo(f"  {n.id} ({n.kind})" + (f" <- {', '.join(inputs)}" if inputs else ""))
    typer.echo("edges:")
    for a, b in g.edges():
        lag = g.lags[b].get(a, 0)
        typer.echo(f"  {a} -> {b}" + (f" (SHIFT lag {lag})" if lag else ""))
    typer.echo("order: " + " -> ".join(g.order))
    for comp in g.components:
        typer.echo("feedback loop (evaluated bin by bin): " + ", ".join(comp))


def register(app: typer.Typer) -> None:
    app.command("run")(run)
    app.command("validate")(validate)
    app.command("graph")(graph)
