"""``flowtime run``, ``validate`` and ``graph``: the engine on local files."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Sequence
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer

from flowtime.errors import ArtifactError, Problem

ModelArg = Annotated[str, typer.Argument(help="Model YAML file, or - for standard input.", metavar="MODEL")]
DataDirOpt = Annotated[Path | None, typer.Option(
    "--data-dir", "--out", metavar="DIR",
    help="Data folder; runs go to DIR/engine (env FLOWTIME_DATA_DIR, default ./data).")]
LenientOpt = Annotated[bool, typer.Option(
    "--lenient-outputs", help="Skip outputs naming unknown nodes, with a warning, as the reference does "
                              "(default: an error).")]
SetOpt = Annotated[list[str] | None, typer.Option(
    "--set", "-s", metavar="NODE=VALUE",
    help="Give a const node new values: --set capacity=20 (every bin), --set 'arrivals=[1,2,3]' (per bin).")]
SEED_RANGE = (-(2**63), 2**64 - 1)
_NUMBER = re.compile(r"^[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$")


def _warn(problems: Sequence[Problem]) -> None:
    for p in problems:
        typer.echo(f"warning: {p}", err=True)


def engine_dir(data_dir: Path | None) -> Path:
    """``D/engine`` of the data folder (old layouts migrated, with a message); refuses a file."""
    from flowtime import datadir

    data = datadir.resolve(data_dir)
    for path in (data.root, data.engine):
        if path.exists() and not path.is_dir():
            raise ArtifactError(f"data folder '{path}' is a file, not a folder; pass --data-dir with a folder "
                                "(it is created if missing)")
    for message in datadir.migrate(data):
        typer.echo(f"note: {message}", err=True)
    return data.engine


def parse_assignments(items: Sequence[str] | None, option: str = "--set") -> dict[str, Any]:
    """``NAME=VALUE`` items; values read as YAML/JSON (numbers, lists)."""
    import yaml

    out: dict[str, Any] = {}
    for item in items or ():
        name, sep, raw = item.partition("=")
        name = name.strip()
        if not sep or not name:
            raise typer.BadParameter(f"expected NODE=VALUE, got {item!r}", param_hint=option)
        try:
            value = yaml.safe_load(raw) if raw.strip() else None
        except yaml.YAMLError:
            raise typer.BadParameter(f"cannot read the value of {name!r} ({raw[:40]!r}); give a number or a "
                                     "list such as [1, 2, 3]", param_hint=option) from None
        if isinstance(value, str) and _NUMBER.match(value.strip()):
            value = float(value)  # YAML 1.1 reads 1e3 as text
        out[name] = value
    return out


def _check_seed(seed: int | None) -> int | None:
    if seed is not None and not SEED_RANGE[0] <= seed <= SEED_RANGE[1]:
        raise typer.BadParameter(f"{seed} does not fit in 64 bits (from {SEED_RANGE[0]} to {SEED_RANGE[1]})",
                                 param_hint="--seed")
    return seed


def run(
    model: ModelArg,
    data_dir: DataDirOpt = None,
    seed: Annotated[int | None, typer.Option(help="RNG seed (overrides rng.seed).")] = None,
    set_: SetOpt = None,
    deterministic_run_id: Annotated[bool, typer.Option("--deterministic-run-id", help="Name the run folder from "
                                                       "the scenario hash; re-running reuses it.")] = False,
    sample_pmf: Annotated[bool, typer.Option("--sample-pmf", help="Draw PMF nodes per bin instead of using "
                                             "their expected value.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print a JSON summary.")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Print only the run id.")] = False,
    lenient_outputs: LenientOpt = False,
    strict: Annotated[bool, typer.Option("--strict", help="Exit 1 and store nothing when the analyser finds a "
                                         "warning (or worse) in the run.")] = False,
) -> None:
    """Evaluate MODEL, write a run folder and print a summary of its series and topology."""
    from flowtime.artifacts.registry import Registry
    from flowtime.artifacts.writer import write_run
    from flowtime.engine import plan
    from flowtime.model.load import load_model
    from flowtime.sources import read_model_text

    seed = _check_seed(seed)
    overrides = parse_assignments(set_)
    root = engine_dir(data_dir)
    from flowtime.series_files import beside

    text, name = read_model_text(model)
    t0 = time.perf_counter()
    loaded = load_model(text, name, series_files=beside(model), lenient_outputs=lenient_outputs)
    planned = plan(loaded.model)
    t1 = time.perf_counter()
    results = planned.evaluate(seed, sample_pmf=sample_pmf, set=overrides)
    given = results.overrides
    t2 = time.perf_counter()
    metrics: dict[str, Any] = {}
    findings: list[Any] = []
    analysed = strict or as_json or not quiet
    if analysed:  # what the run means: the node table, the findings, the gate
        from flowtime.analysis.metrics import derive
        from flowtime.engine.validation import analyse_run

        model_run = results.model or loaded.model
        metrics = derive(model_run, results.series, model_run.analysis)
        findings = analyse_run(model_run, results.series, metrics)
    said = {f.code for f in findings}  # a warning leading with a finding's code is said once, by the finding
    _warn([p for p in (*loaded.warnings, *results.warnings, *results.nonfinite_warnings())
           if p.message.partition(":")[0] not in said])
    if strict:  # before anything is written: a run that fails the gate is not stored (0028)
        from flowtime.engine.validation import strict_gate

        strict_gate(findings)
    record = write_run(
        loaded, results, root, provenance=loaded.provenance, deterministic_id=deterministic_run_id,
        timings={"compileMs": round((t1 - t0) * 1000, 3), "evaluateMs": round((t2 - t1) * 1000, 3)},
        metrics=metrics if analysed else None, findings=findings if analysed else None,
    )
    Registry(root).register(record)
    if as_json:
        from flowtime.cli.summary import summary_json

        typer.echo(json.dumps({
            "runId": record.run_id, "path": str(record.path), "reused": record.reused,
            "modelHash": record.manifest["modelHash"], "scenarioHash": record.manifest["scenarioHash"],
            "seed": results.seed, "overrides": given, "series": results.output_ids,
            "summary": {n: _stats_json(results.series[n]) for n in results.output_ids},
            **summary_json(metrics, findings),
        }, indent=2))
        return
    typer.echo(record.run_id)
    if quiet:
        return
    from flowtime.cli.output import print_table, summary_rows
    from flowtime.cli.summary import print_findings, print_nodes

    g = loaded.model.grid
    facts = [f"{g.bins} bins of {g.bin_size} {g.bin_unit.value}", f"seed {results.seed}" if results.seed is not None
             else "no seed", f"{len(results.output_ids)} series"]
    if given:
        facts.append("set " + ", ".join(f"{k}={_short(v)}" for k, v in given.items()))
    typer.echo(f"  {record.path}" + (" (reused)" if record.reused else ""))
    typer.echo(f"  {'; '.join(facts)}")
    rows = summary_rows((n, results.series[n]) for n in results.output_ids)
    print_table(["series", "min", "mean", "max", "last"], rows)
    print_nodes(metrics)
    print_findings(findings)


def _short(value: Any) -> str:
    if isinstance(value, list):
        shown = ", ".join(_num(v) for v in value[:4])
        return f"[{shown}{', ...' if len(value) > 4 else ''}]"
    return _num(value)


def _num(v: Any) -> str:
    from flowtime.cli.output import num

    return num(float(v))


def _stats_json(values: Any) -> dict[str, float | None]:
    import math

    import numpy as np

    def clean(x: float) -> float | None:
        return x if math.isfinite(x) else None

    if values.size == 0:
        return {"min": None, "mean": None, "max": None, "last": None}
    with np.errstate(all="ignore"):
        return {"min": clean(float(np.min(values))), "mean": clean(float(np.mean(values))),
                "max": clean(float(np.max(values))), "last": clean(float(values[-1]))}


class Tier(StrEnum):
    SCHEMA = "schema"
    COMPILE = "compile"
    ANALYSE = "analyse"
    ANALYZE = "analyze"


TierOpt = Annotated[Tier, typer.Option(
    "--tier", case_sensitive=False,
    help="How far to check: schema (the document's shape), compile (references, expressions, the plan) or "
         "analyse (one evaluation and the analyser's findings).")]


def _readable(model: str) -> None:
    """A file that cannot be read is an input error (exit 2), not an invalid model (exit 1)."""
    path = Path(model)
    if model != "-" and (path.is_dir() or not path.exists()):  # a device or a pipe is read (up to the limit)
        why = "is a folder" if path.is_dir() else "not found"
        raise typer.BadParameter(f"{model}: {why}; give a model YAML file or - for standard input",
                                 param_hint="MODEL")


def validate(
    model: ModelArg,
    tier: TierOpt = Tier.ANALYSE,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON (the body of POST "
                                                         "/v1/validate); exit 1 still means invalid.")] = False,
    lenient_outputs: LenientOpt = False,
) -> None:
    """Check MODEL (--tier schema|compile|analyse) and print every problem; exit 1 when there are errors."""
    from flowtime.engine.validation import tier_named, validate_model
    from flowtime.errors import ModelValidationError
    from flowtime.series_files import beside
    from flowtime.sources import read_model_text

    _readable(model)
    text, name = read_model_text(model)
    chosen = tier_named(tier.value) or "analyse"
    report = validate_model(text, name, tier=chosen, series_files=beside(model), lenient_outputs=lenient_outputs)
    if as_json:
        typer.echo(json.dumps(report.to_json(), indent=2))
        if not report.valid:
            raise typer.Exit(1)
        return
    if not report.valid:  # every problem, located, as the loader reports them (exit 1)
        raise ModelValidationError(report.problems, name)
    _warn(report.warnings)
    loaded = report.loaded
    if loaded is None:
        typer.echo(f"ok: {name} has the right shape (schema tier: expressions and references not checked)")
        return
    graph = loaded.graph
    g = loaded.model.grid
    loops = f", {len(graph.components)} feedback loop(s)" if graph.components else ""
    typer.echo(f"ok: {name} is valid - {len(graph.order)} nodes, {g.bins} bins of {g.bin_size} "
               f"{g.bin_unit.value}, {len(graph.outputs)} outputs{loops}")
    if chosen == "analyse":
        from flowtime.cli.summary import print_findings

        print_findings(report.findings, none_line="no analyser findings")


def graph(
    model: ModelArg,
    as_json: Annotated[bool, typer.Option("--json", help="Print nodes, edges and order as JSON.")] = False,
    lenient_outputs: LenientOpt = False,
) -> None:
    """Print the nodes, edges and evaluation order of MODEL without running it."""
    from flowtime.model.load import load_model
    from flowtime.series_files import beside
    from flowtime.sources import read_model_text

    text, name = read_model_text(model)
    g = load_model(text, name, series_files=beside(model), lenient_outputs=lenient_outputs).graph
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
