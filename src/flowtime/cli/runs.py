"""
``flowtime runs``: the registry on the local data directory, no server needed.

    flowtime runs list [--template ID] [--model ID] [--search TEXT] [--tag T] [--limit N]
    flowtime runs show RUN [--series NAME ...] [--csv] [--bin N]
    flowtime runs export RUN --format csv|parquet|ndjson -o FILE
    flowtime runs compare A B
    flowtime runs rebuild-index
    flowtime runs delete RUN

Every command takes ``--data-dir D`` (env ``FLOWTIME_DATA_DIR``, default
``./data``; the runs are in ``D/engine``, the folder ``flowtime up --data-dir D``
serves) and most take ``--json`` for machine-readable output.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from flowtime.artifacts.canonical import format_number
from flowtime.artifacts.layout import entry_name
from flowtime.artifacts.registry import MAX_LIMIT, Artifact, ArtifactQuery, Registry
from flowtime.errors import ArtifactError

runs_app = typer.Typer(name="runs", help="List, inspect, export, compare and delete stored runs.",
                       no_args_is_help=True)

DataDir = Annotated[Path | None, typer.Option(
    "--data-dir", metavar="DIR",
    help="Data folder; runs are in DIR/engine (env FLOWTIME_DATA_DIR, default ./data).")]
AsJson = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]


def _registry(data_dir: Path | None) -> Registry:
    from flowtime import datadir
    from flowtime.cli.run import engine_dir

    data = datadir.resolve(data_dir)
    if not data.root.is_dir():
        raise ArtifactError(f"data folder '{data.root}' does not exist "
                            "(pass --data-dir or set FLOWTIME_DATA_DIR)")
    return Registry(engine_dir(data.root))


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
    data_dir: DataDir = None,
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
    data_dir: DataDir = None,
    series: Annotated[list[str] | None, typer.Option(
        "--series", metavar="NAME", help="Print this series' values, bin by bin (repeat for several).")] = None,
    as_csv: Annotated[bool, typer.Option(
        "--csv", help="Values as CSV: one series' stored file byte for byte, or several side by side.")] = False,
    at_bin: Annotated[int | None, typer.Option(
        "--bin", metavar="N", help="The state at bin N: each topology node's series, metrics, colour, warnings.")]
    = None,
    as_json: AsJson = False,
) -> None:
    """Show one run: grid, hashes, provenance, a summary of every series; or the values of some; or one bin."""
    registry = _registry(data_dir)
    if at_bin is not None:
        _state_at(registry, run_id, at_bin, as_json)
        return
    if series or as_csv:
        _values(registry, run_id, list(series or ()), as_csv, as_json)
        return
    details = registry.details(run_id)
    problems = registry.verify(run_id)
    values = registry.all_series(run_id)
    if as_json:
        from flowtime.cli.run import _stats_json

        typer.echo(json.dumps({**details, "verify": {"ok": not problems, "problems": problems},
                               "summary": {n: _stats_json(v) for n, v in values.items()}}, indent=2))
        return
    run, manifest, prov = details["run"], details["manifest"], details["provenance"]
    grid = run.get("grid") or {}
    files = registry.files(run_id)
    overrides = run.get("overrides") or {}
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
        ("series", ", ".join(entry_name(s) for s in run.get("series", []))),
        ("files", f"{len(files)} ({sum(f['size'] for f in files)} bytes)"),
        ("hashes", "ok" if not problems else f"{len(problems)} mismatch(es)"),
    ]
    if overrides:
        rows.insert(4, ("overrides", ", ".join(f"{k}={_short(v)}" for k, v in overrides.items())))
    typer.echo(run_id)
    for key, value in rows:
        typer.echo(f"  {key + ':':<15}{value}")
    for p in problems:
        typer.echo(f"  mismatch: {p}")
    from flowtime.cli.output import print_table, summary_rows

    print_table(["series", "min", "mean", "max", "last"], summary_rows(values.items()))
    if problems:
        raise typer.Exit(1)


def _state_at(registry: Registry, run_id: str, index: int, as_json: bool) -> None:
    """The state API's ``/state?bin=N`` in the terminal (the same numbers, from the same code)."""
    import orjson

    from flowtime.artifacts.snapshot import snapshot
    from flowtime.artifacts.state import open_state
    from flowtime.cli.output import num, print_table

    body = snapshot(open_state(registry, run_id), index)
    if as_json:
        typer.echo(orjson.dumps(body, option=orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_INDENT_2).decode())
        return
    b = body["bin"]
    when = f", {b['startUtc']} to {b['endUtc']}" if b["startUtc"] else ""
    typer.echo(f"{run_id} at bin {b['index']} ({b['durationMinutes']} minutes{when})")
    def cell(v: float | None) -> str:
        return "-" if v is None or v != v else num(v)  # undefined (null in JSON)

    rows = []
    for n in body["nodes"]:
        m, d = n["metrics"], n["derived"]
        marks = [w["code"] + ("?" if w["activity"] == "unlisted" else "") for w in n["warnings"]
                 if w["severity"] != "info"]
        rows.append([n["id"], n["kind"], *(cell(m.get(k)) for k in ("arrivals", "served", "queue")),
                     cell(d.get("utilization")), cell(d.get("latencyMinutes")), n["color"], ", ".join(marks)])
    print_table(["node", "kind", "arrivals", "served", "queue", "utilization", "latency (min)", "colour",
                 "warnings"], rows, numeric_from=2)
    for w in body["warnings"]:
        if not w.get("nodeId") and w["severity"] != "info":
            typer.echo(f"{w['severity']}: {w['code']}: {w['message']}")
    infos = sorted({(w.get("nodeId") or "", w["code"]) for w in body["warnings"] if w["severity"] == "info"})
    if infos:  # notes about the model (missing series), not about this bin: one line
        typer.echo("info: " + ", ".join(f"{node} {code}".strip() for node, code in infos))
    if any(w["activity"] == "unlisted" for w in body["warnings"]):
        typer.echo("?: the warning lists its first 5 bins only; it may or may not hold at this bin")


def _short(value: object) -> str:
    if isinstance(value, list):
        head = ", ".join(_num(float(v)) for v in value[:4])
        return f"[{head}{', ...' if len(value) > 4 else ''}]"
    return _num(float(value))  # type: ignore[arg-type]


def _values(registry: Registry, run_id: str, names: list[str], as_csv: bool, as_json: bool) -> None:
    """The values of ``names`` (every series when none), bin by bin."""
    import sys

    from flowtime.artifacts.export import value_texts

    index = registry.series_index(run_id)
    entries = [registry.find_series(run_id, n) for n in names] if names else list(index.get("series", []))
    grid = index.get("grid") or {}
    minutes = int(grid.get("binMinutes") or 0)
    if as_csv and len(entries) == 1:
        sys.stdout.buffer.write(registry.series_bytes(run_id, entries[0]))  # the stored file, byte for byte
        sys.stdout.flush()
        return
    labels = [entry_name(e) for e in entries]
    columns = [registry.series_values(run_id, e) for e in entries]
    bins = max((c.size for c in columns), default=0)
    if as_json:
        from flowtime.artifacts.compare import json_values

        typer.echo(json.dumps({"runId": run_id, "binMinutes": minutes,
                               "series": {lab: json_values(c) for lab, c in zip(labels, columns, strict=True)}},
                              indent=2))
        return
    texts = [value_texts(c) for c in columns]
    if as_csv:
        lines = [",".join(["t", *labels])]
        lines += [",".join([str(t), *(tx[t] if t < len(tx) else "" for tx in texts)]) for t in range(bins)]
        typer.echo("\n".join(lines))
        return
    from flowtime.cli.output import print_table

    rows = [[str(t), str(t * minutes), *(tx[t] if t < len(tx) else "" for tx in texts)] for t in range(bins)]
    print_table(["bin", "minute", *labels], rows, numeric_from=0)


@runs_app.command("export")
def export(
    run_id: Annotated[str, typer.Argument(metavar="RUN", help="Run id.")],
    out: Annotated[Path, typer.Option("--output", "-o", metavar="FILE", help="File to write (- for stdout).")],
    fmt: Annotated[str, typer.Option("--format", "-f", help="csv, parquet or ndjson.")] = "csv",
    data_dir: DataDir = None,
) -> None:
    """Write a whole run as one file in long format (time_bin, offset_minutes, series, value)."""
    import os
    import sys
    import tempfile

    from flowtime.artifacts.export import FORMATS, export_run

    if fmt not in FORMATS:
        raise typer.BadParameter(f"{fmt!r} is not one of {', '.join(FORMATS)}", param_hint="--format")
    registry = _registry(data_dir)
    result = export_run(registry, run_id, fmt)
    if str(out) == "-":
        for chunk in result.chunks:
            sys.stdout.buffer.write(chunk)
        sys.stdout.flush()
        return
    if out.is_dir():
        raise ArtifactError(f"{out} is a folder; give a file name such as {out / result.filename}")
    out.parent.mkdir(parents=True, exist_ok=True)
    # Written beside the target and renamed into place: an interrupted export leaves no half file.
    fd, tmp = tempfile.mkstemp(prefix=f".{out.name}.", dir=out.parent)
    size = 0
    try:
        with os.fdopen(fd, "wb") as f:
            for chunk in result.chunks:
                f.write(chunk)
                size += len(chunk)
        os.replace(tmp, out)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    typer.echo(f"wrote {out} ({size} bytes, {fmt})")


@runs_app.command("compare")
def compare(
    a: Annotated[str, typer.Argument(metavar="A", help="Run A.")],
    b: Annotated[str, typer.Argument(metavar="B", help="Run B (deltas are A - B).")],
    data_dir: DataDir = None,
    as_json: AsJson = False,
) -> None:
    """Compare two runs (different grids on their common span): per series, the change from B to A, most changed."""
    from flowtime.artifacts.compare import compare_runs

    result = compare_runs(_registry(data_dir), a, b, limit=None)  # local: every series, no paging
    if as_json:
        typer.echo(json.dumps(result.to_json(), indent=2))
        return
    g = result.grid
    typer.echo(f"A: {a}  {result.a.get('title') or ''}".rstrip())
    typer.echo(f"B: {b}  {result.b.get('title') or ''}".rstrip())
    typer.echo(f"grid: {g.get('bins')} bins of {g.get('binSize')} {g.get('binUnit')}")
    if result.resampling and result.resampling.get("resampled"):
        typer.echo(f"resampled: {result.resampling['statement']}")
    _print_model_changes(result.a, result.b, [c.to_json() for c in result.model_changes or []],
                         result.model_note)
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


def _print_model_changes(a: dict[str, Any], b: dict[str, Any], changes: list[dict[str, Any]],
                         note: str | None) -> None:
    """Overrides of each run (when any), then one line per model difference from B to A."""
    for label, side in (("A", a), ("B", b)):
        overrides = side.get("overrides") or {}
        if overrides:
            typer.echo(f"overrides {label}: " + ", ".join(f"{k}={_short(v)}" for k, v in overrides.items()))
    if note:
        typer.echo(f"model: {note}")
    elif not changes:
        typer.echo("model: no differences")
    else:
        typer.echo(f"model: {len(changes)} difference{'s' if len(changes) != 1 else ''} (B -> A)")
        for c in changes:
            where = c.get("node") or c.get("part")
            typer.echo(f"  {where} ({c['change']}): {c['detail']}")


@runs_app.command("diff")
def diff(
    a: Annotated[str, typer.Argument(metavar="A", help="Run A.")],
    b: Annotated[str, typer.Argument(metavar="B", help="Run B (changes read from B to A).")],
    data_dir: DataDir = None,
    as_json: AsJson = False,
) -> None:
    """How the models of two runs differ, node by node (runs on any grids)."""
    from flowtime.artifacts.compare import model_diff

    body = model_diff(_registry(data_dir), a, b)
    if as_json:
        typer.echo(json.dumps(body, indent=2))
        return
    typer.echo(f"A: {a}")
    typer.echo(f"B: {b}")
    _print_model_changes(body["a"], body["b"], body["modelChanges"] or [], body.get("modelNote"))


@runs_app.command("rebuild-index")
def rebuild_index(data_dir: DataDir = None) -> None:
    """Rescan every run folder and rebuild the index (index.sqlite) from scratch."""
    registry = _registry(data_dir)
    n = registry.rebuild()
    typer.echo(f"indexed {n} run{'s' if n != 1 else ''} in {registry.root}")


@runs_app.command("delete")
def delete(
    run_id: Annotated[str, typer.Argument(metavar="RUN", help="Run id.")],
    data_dir: DataDir = None,
) -> None:
    """Delete a run folder and its index entry for good."""
    _registry(data_dir).delete(run_id)
    typer.echo(f"deleted {run_id}")


def register(app: typer.Typer) -> None:
    app.add_typer(runs_app, name="runs")
