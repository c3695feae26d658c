"""
``flowtime sim ...``: templates, generation, named models, validation, clean-up.

Every sub-command takes ``--templates-dir`` (added to the built-in library;
a template there wins over a built-in one with the same id) and
``--data-dir`` (the temporary store). ``generate`` without ``--out`` writes
the model YAML - and nothing else - to standard output, so it pipes into
``flowtime run -``.
"""

from __future__ import annotations

import json
import math
import re
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any

import typer
import yaml

from flowtime.model.parameters import fmt_value
from flowtime.settings import SimSettings
from flowtime.sim.catalog import Catalog
from flowtime.sim.quality import ValidationReport
from flowtime.sim.store import StoredModel, json_text
from flowtime.sim.template import Template
from flowtime.sim.workspace import Generation, Resolved, Workspace

TemplatesDir = Annotated[
    Path | None,
    typer.Option("--templates-dir", envvar="FLOWTIME_SIM_TEMPLATES_DIR", exists=True, file_okay=False,
                 help="Extra templates (*.yaml); same id as a built-in -> this one wins."),
]
DataDir = Annotated[
    Path | None,
    typer.Option("--data-dir", metavar="DIR",
                 help="Data folder; Sim's temporary store is DIR/sim (env FLOWTIME_DATA_DIR, default ./data)."),
]
ParamOpt = Annotated[
    list[str] | None,
    typer.Option("--param", "-p", metavar="NAME=VALUE",
                 help="Parameter override, value as YAML: bins=12, peak_factor=1.5, demand=[1,2,3]."),
]
ParamsFile = Annotated[
    Path | None,
    typer.Option("--params", exists=True, dir_okay=False, metavar="FILE",
                 help="JSON or YAML file of parameter overrides ({name: value, ...})."),
]
AsJson = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]
_NUMBER = re.compile(r"^[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$")


def register(app: typer.Typer) -> None:
    sim = typer.Typer(name="sim", no_args_is_help=True,
                      help="Sim: templates -> engine-ready models with provenance (never runs them).")
    sim.command("templates")(templates)
    sim.command("show")(show)
    sim.command("generate")(generate)
    sim.command("new")(new)
    sim.command("derive")(derive)
    sim.command("models")(models)
    sim.command("validate")(validate)
    sim.command("gc")(gc)
    app.add_typer(sim, name="sim")


# -- building blocks ----------------------------------------------------------------------------


def _settings() -> SimSettings:
    return SimSettings()


def _catalog(templates_dir: Path | None) -> Catalog:
    settings = _settings()
    return Catalog.load(templates_dir or settings.templates_dir,
                        max_array_length=settings.max_array_length)


def _store_dir(data_dir: Path | None) -> Path:
    """``D/sim`` of the data folder, the folder ``flowtime up --data-dir D`` serves."""
    from flowtime import datadir

    return datadir.resolve(data_dir).sim


def _workspace(templates_dir: Path | None, data_dir: Path | None) -> Workspace:
    settings = _settings()
    return Workspace(_catalog(templates_dir), _store_dir(data_dir),
                     max_array_length=settings.max_array_length, ttl_days=settings.ttl_days)


def _table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h)
              for i, h in enumerate(headers)]

    def line(cells: Sequence[str]) -> str:
        padded = [c.ljust(w) for c, w in zip(cells[:-1], widths[:-1], strict=True)]
        return "  ".join([*padded, cells[-1]]).rstrip()

    return [line(headers), *(line(r) for r in rows)]


def _value(raw: str, declared_type: str | None, option: str) -> Any:
    """A --param/--set value: YAML for typed parameters, the raw text for string ones."""
    if declared_type == "string":
        return raw
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError as exc:
        raise typer.BadParameter(f"cannot read {raw!r} as a value: {exc}", param_hint=option) from None
    if isinstance(value, str) and _NUMBER.match(value.strip()):
        value = float(value)  # YAML 1.1 reads 1e3 as text
    return value


def _assignments(items: Sequence[str] | None, template: Template | None, option: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    types = {p.name: p.type for p in template.parameters} if template else {}
    for item in items or ():
        name, sep, raw = item.partition("=")
        name = name.strip()
        if not sep or not name:
            raise typer.BadParameter(f"expected NAME=VALUE, got {item!r}", param_hint=option)
        out[name] = _value(raw, types.get(name), option)
    return out


def _params_file(path: Path | None) -> dict[str, Any]:
    if path is None:
        return {}
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8-sig"))
    except (OSError, yaml.YAMLError) as exc:
        raise typer.BadParameter(f"cannot read {path}: {exc}", param_hint="--params") from None
    if isinstance(data, dict) and set(data) == {"parameters"} and isinstance(data["parameters"], dict):
        data = data["parameters"]
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise typer.BadParameter(f"{path} must hold a mapping of parameter names to values",
                                 param_hint="--params")
    return {str(k): v for k, v in data.items()}


def _overrides(template: Template, params_file: Path | None, params: Sequence[str] | None) -> dict[str, Any]:
    return {**_params_file(params_file), **_assignments(params, template, "--param")}


def _warn_model(generation: Generation) -> None:
    for w in generation.report.warnings:
        typer.echo(f"warning: {w}", err=True)
    for f in generation.report.findings:  # the analyser's model checks (series-level ones need an engine run)
        typer.echo(f"{'note' if f.severity == 'info' else f.severity}: {f}", err=True)


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")


# -- commands -------------------------------------------------------------------------------------


def templates(
    templates_dir: TemplatesDir = None,
    data_dir: DataDir = None,
    search: Annotated[str | None, typer.Option(help="Only templates whose text contains this.")] = None,
    tag: Annotated[str | None, typer.Option(help="Only templates with this tag.")] = None,
    as_json: AsJson = False,
) -> None:
    """List the available templates."""
    del data_dir
    catalog = _catalog(templates_dir)
    chosen = catalog.select(search=search, tag=tag)
    for key, error in sorted(catalog.broken.items()):
        typer.echo(f"warning: template {key} is not usable: {str(error).splitlines()[0]}", err=True)
    if as_json:
        typer.echo(json.dumps([t.summary() for t in chosen], indent=2))
        return
    if not chosen:
        typer.echo("no templates match")
        return
    rows = [[t.id, t.version, str(len(t.parameters)), t.title, ", ".join(t.tags)] for t in chosen]
    for line in _table(["ID", "VERSION", "PARAMS", "TITLE", "TAGS"], rows):
        typer.echo(line)


def show(
    template_id: Annotated[str, typer.Argument(metavar="ID", help="Template id.")],
    templates_dir: TemplatesDir = None,
    data_dir: DataDir = None,
    as_json: AsJson = False,
) -> None:
    """Show a template: description and parameters with defaults and ranges."""
    del data_dir
    t = _catalog(templates_dir).get(template_id)
    if as_json:
        typer.echo(json.dumps(t.describe(), indent=2))
        return
    typer.echo(f"{t.id} {t.version} - {t.title}")
    if t.description:
        typer.echo(t.description)
    if t.tags:
        typer.echo(f"tags: {', '.join(t.tags)}")
    typer.echo(f"source: {t.origin}")
    if not t.parameters:
        typer.echo("no parameters")
        return
    typer.echo("")
    rows = []
    for p in t.parameters:
        ptype = f"array of {p.items}" if p.type == "array" and p.items else p.type
        default = "(required)" if p.required else fmt_value(p.default, 40)
        allowed = p.range_text() + (f" one of {', '.join(map(fmt_value, p.enum))}" if p.enum else "")
        about = p.title + (f": {p.description}" if p.description and p.description != p.title else "")
        rows.append([p.name, ptype, default, allowed.strip() or "-", about])
    for line in _table(["PARAMETER", "TYPE", "DEFAULT", "ALLOWED", "DESCRIPTION"], rows):
        typer.echo(line)


def generate(
    template_id: Annotated[str, typer.Argument(metavar="ID", help="Template id.")],
    param: ParamOpt = None,
    params: ParamsFile = None,
    out: Annotated[Path | None, typer.Option(
        "--out", "-o", help="Write the model here (a file, or a directory for DIR/model.yaml) "
        "instead of standard output.")] = None,
    provenance: Annotated[Path | None, typer.Option(
        "--provenance", help="Also write the provenance JSON to this file.")] = None,
    embed_provenance: Annotated[bool, typer.Option(
        "--embed-provenance", help="Put a provenance: block into the model YAML.")] = False,
    store: Annotated[bool, typer.Option(
        "--store/--no-store", help="Keep a copy in the temporary store (for models/derive).")] = True,
    mode: Annotated[str | None, typer.Option(
        "--mode", metavar="MODE", help="simulation or telemetry; overrides the template's (recorded in the "
        "provenance).")] = None,
    templates_dir: TemplatesDir = None,
    data_dir: DataDir = None,
) -> None:
    """Generate a model from a template; the YAML goes to standard output unless --out."""
    ws = _workspace(templates_dir, data_dir)
    overrides = _overrides(ws.catalog.get(template_id), params, param)
    generation = ws.generate(template_id, overrides, persist=store, mode=mode)
    text = generation.text(embed_provenance)
    if provenance is not None:
        _write(provenance, json_text(generation.generated.provenance.to_json()))
    _warn_model(generation)
    if out is None:
        sys.stdout.write(text)
        sys.stdout.flush()
        return
    target = out / "model.yaml" if out.is_dir() or str(out).endswith(("/", "\\")) else out
    _write(target, text)
    typer.echo(f"wrote {target} ({generation.generated.model_id})", err=True)


def new(
    template: Annotated[str, typer.Option("--template", "-t", help="Template id.")],
    name: Annotated[str, typer.Option("--name", "-n", help="Model name, e.g. checkout-baseline.")],
    param: ParamOpt = None,
    params: ParamsFile = None,
    title: Annotated[str | None, typer.Option(help="Title (default: the template's).")] = None,
    description: Annotated[str | None, typer.Option(help="Description.")] = None,
    tag: Annotated[list[str] | None, typer.Option("--tag", help="Extra tag (repeatable).")] = None,
    out: Annotated[Path | None, typer.Option(
        "--out", help="Directory holding named models: DIR/NAME_<hex>/v<n>/ "
        "(default DATA_DIR/named).")] = None,
    templates_dir: TemplatesDir = None,
    data_dir: DataDir = None,
) -> None:
    """Create a named model: NAME_<4 hex>/v1, then v2, ... when its content changes."""
    ws = _workspace(templates_dir, data_dir)
    overrides = _overrides(ws.catalog.get(template), params, param)
    generation = ws.export_named(template, name, overrides, title=title, description=description,
                                 tags=tag or (), root=out)
    _warn_model(generation)
    _print_named(generation)


def _print_named(generation: Generation) -> None:
    stored = generation.stored
    assert stored is not None
    note = "" if generation.created else " (unchanged: same model as the latest version)"
    typer.echo(f"{stored.metadata['nameId']} v{stored.version}{note}")
    typer.echo(str(stored.path))


def derive(
    source: Annotated[str, typer.Option(
        "--from", help="Parent: a model id, a named model (name_ab12 or name_ab12/v2), TEMPLATE/HASH, or a "
        "model file with provenance.")],
    assignments: Annotated[list[str] | None, typer.Option(
        "--set", metavar="NAME=VALUE", help="Changed parameter (repeatable).")] = None,
    name: Annotated[str | None, typer.Option(
        "--name", help="Store as a named model (default: the parent's name, if it has one).")] = None,
    out: Annotated[Path | None, typer.Option("--out", "-o", help="Also write the model YAML here.")] = None,
    templates_dir: TemplatesDir = None,
    data_dir: DataDir = None,
) -> None:
    """Re-generate a model from its recorded template with changed parameters."""
    ws = _workspace(templates_dir, data_dir)
    parent = ws.resolve(source)
    template_id = (parent.provenance or {}).get("templateId")
    template = ws.catalog.templates.get(template_id) if isinstance(template_id, str) else None
    changes = _assignments(assignments, template, "--set")
    generation = ws.derive(parent, changes, name=name)
    _warn_model(generation)
    if template is not None and parent.provenance and \
            parent.provenance.get("templateVersion") not in (None, template.version):
        typer.echo(f"warning: the parent used {template.id} {parent.provenance['templateVersion']}; "
                   f"derived with {template.version}", err=True)
    if out is not None:
        target = out / "model.yaml" if out.is_dir() else out
        _write(target, generation.text())
    if generation.stored is not None and "nameId" in generation.stored.metadata:
        _print_named(generation)
    else:
        typer.echo(generation.generated.model_id)
        if generation.stored is not None:
            typer.echo(str(generation.stored.path))
    typer.echo(f"derived from {generation.generated.provenance.derived_from or parent.source}", err=True)


def models(
    template: Annotated[str | None, typer.Option("--template", "-t", help="Only this template.")] = None,
    templates_dir: TemplatesDir = None,
    data_dir: DataDir = None,
    as_json: AsJson = False,
) -> None:
    """List the models in the temporary store and the named models."""
    del templates_dir
    ws = Workspace(Catalog(), _store_dir(data_dir))
    stored = ws.store.models(template)
    named = [m for m in ws.named.models() if template is None or m.template_id == template]
    if as_json:
        typer.echo(json.dumps({"models": [m.summary() for m in stored],
                               "named": [m.summary() for m in named]}, indent=2))
        return
    if not stored and not named:
        typer.echo(f"no models in {ws.data_dir}" + (f" for template {template}" if template else ""))
        return
    if stored:
        rows = [[m.template_id, m.hash, m.model_id, _when(m), str(m.metadata.get("title", ""))]
                for m in stored]
        for line in _table(["TEMPLATE", "HASH", "MODEL ID", "GENERATED", "TITLE"], rows):
            typer.echo(line)
    if named:
        if stored:
            typer.echo("")
        rows = [[str(m.metadata.get("nameId")), f"v{m.version}", m.template_id, _when(m),
                 str(m.metadata.get("title", ""))] for m in named]
        for line in _table(["NAMED MODEL", "LATEST", "TEMPLATE", "CREATED", "TITLE"], rows):
            typer.echo(line)


def _when(m: StoredModel) -> str:
    return m.updated.strftime("%Y-%m-%d %H:%M:%S")


def validate(
    model: Annotated[str, typer.Argument(
        metavar="MODEL|ID", help="Model file, - for standard input, or a stored model / named model id.")],
    templates_dir: TemplatesDir = None,
    data_dir: DataDir = None,
    as_json: AsJson = False,
) -> None:
    """Validate a model's structure and print its quality report (never runs it)."""
    ws = _workspace(templates_dir, data_dir)
    resolved = Resolved(sys.stdin.read(), None, "<stdin>") if model == "-" else ws.resolve(model)
    report = ws.validate(resolved.text, resolved.source, resolved.provenance)
    if as_json:
        typer.echo(json.dumps(report.to_json(), indent=2))
    else:
        _print_report(resolved.source, report)
    if not report.valid:
        raise typer.Exit(1)


def _print_report(source: str, report: ValidationReport) -> None:
    if report.valid:
        typer.echo(f"valid: {source}")
    else:
        typer.echo(f"invalid: {source} ({len(report.problems)} problem(s))")
    for p in report.problems:
        typer.echo(f"  error: {p}")
    for w in report.warnings:
        typer.echo(f"  warning: {w}")
    for f in report.findings:
        typer.echo(f"  analyser: {f}")
    passed = sum(1 for c in report.quality.checks if c.passed)
    typer.echo(f"quality: {report.quality.score:g} ({passed} of {len(report.quality.checks)} checks pass)")
    for c in report.quality.checks:
        typer.echo(f"  {'ok  ' if c.passed else 'FAIL'} {c.name}: {c.message}")


def gc(
    ttl_days: Annotated[float | None, typer.Option(
        "--ttl-days", min=0, help="Remove models older than this (default FLOWTIME_SIM_TTL_DAYS or 7).")] = None,
    templates_dir: TemplatesDir = None,
    data_dir: DataDir = None,
) -> None:
    """Remove expired models (and leftovers of interrupted writes) from the store."""
    del templates_dir
    settings = _settings()
    ttl = settings.ttl_days if ttl_days is None else ttl_days
    if not math.isfinite(ttl):
        raise typer.BadParameter("must be a finite number of days", param_hint="--ttl-days")
    ws = Workspace(Catalog(), _store_dir(data_dir), ttl_days=ttl)
    removed = ws.gc()
    typer.echo(f"removed {len(removed)} expired model folder(s) from {ws.data_dir} "
               f"(time-to-live {ttl:g} days)")
