"""
FlowTime: deterministic flow models over a time grid.

>>> import flowtime
>>> m = flowtime.load_model("schemaVersion: 1\\ngrid: {bins: 2, binSize: 1, binUnit: hours}\\n"
...                         "nodes: [{id: a, values: [1, 2]}, {id: b, kind: expr, expr: a * 2}]")
>>> flowtime.evaluate(m)["b"].tolist()
[2.0, 4.0]
"""

from __future__ import annotations

import importlib
import os
from typing import TYPE_CHECKING, Any

from flowtime._version import __version__
from flowtime.errors import (
    ArtifactError,
    EvaluationError,
    ExpressionError,
    FlowTimeError,
    InvalidRunId,
    LimitExceeded,
    ModelError,
    ModelSyntaxError,
    ModelValidationError,
    ParameterError,
    Problem,
    RunNotFound,
    StorageFull,
    TemplateError,
    TemplateNotFound,
)

if TYPE_CHECKING:
    from flowtime.artifacts.registry import Registry
    from flowtime.engine import Graph, compile_model
    from flowtime.engine.evaluate import ManyResults, Results, evaluate
    from flowtime.engine.plan import Plan, plan
    from flowtime.experiments.results import ExperimentResult
    from flowtime.model.graph import ModelGraph
    from flowtime.model.schema import Model

# Imported on first use, so that `import flowtime.sim` (which must never run
# models) does not load the engine, and the CLI starts fast.
_LAZY = {
    "Registry": "flowtime.artifacts.registry",
    "Results": "flowtime.engine.evaluate",
    "ManyResults": "flowtime.engine.evaluate",
    "evaluate": "flowtime.engine.evaluate",
    "Plan": "flowtime.engine.plan",
    "plan": "flowtime.engine.plan",
    "Graph": "flowtime.engine",
    "compile_model": "flowtime.engine",
    "ModelGraph": "flowtime.model.graph",
    "Model": "flowtime.model.schema",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'flowtime' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value

__all__ = [
    "ArtifactError",
    "EvaluationError",
    "ExpressionError",
    "FlowTimeError",
    "Graph",
    "InvalidRunId",
    "LimitExceeded",
    "ManyResults",
    "Model",
    "ModelError",
    "ModelGraph",
    "ModelSyntaxError",
    "ModelValidationError",
    "ParameterError",
    "Plan",
    "Problem",
    "Registry",
    "Results",
    "RunNotFound",
    "StorageFull",
    "TemplateError",
    "TemplateNotFound",
    "__version__",
    "compile_model",
    "evaluate",
    "experiment",
    "load_model",
    "montecarlo",
    "plan",
    "sweep",
]


def load_model(source: str | os.PathLike[str]) -> Model:
    """
    A validated model from YAML text or from a file path.

    A ``pathlib.Path`` (or a one-line string naming an existing file) is read;
    any other string is the model text itself.
    """
    from flowtime.model.load import load_model as _load
    from flowtime.series_files import beside
    from flowtime.sources import names_a_file, read_model_text

    if isinstance(source, os.PathLike) or names_a_file(source):
        text, name = read_model_text(source)
        return _load(text, name, series_files=beside(source)).model
    return _load(str(source)).model


def _text(source: str | os.PathLike[str], *, inline: bool = False) -> str:
    """
    The YAML ``source`` names (a path) or is. ``inline``: a model file's ``file:`` series read beside it and
    written in as const nodes, so an experiment's workers need no file (``series_files.inline_files``).
    """
    from flowtime.sources import names_a_file, read_model_text

    if isinstance(source, os.PathLike) or names_a_file(source):
        text, name = read_model_text(source)
        if inline:
            from flowtime.series_files import beside, inline_files

            text = inline_files(text, name, beside(source))
        return text
    return str(source)


def experiment(spec: Any, model: str | os.PathLike[str] | None = None, *, backend: Any = None,
               **fields: Any) -> ExperimentResult:
    """
    Run an experiment over a model: ``spec`` is a mapping (the spec's JSON/YAML data), an
    ``experiments.spec`` object, or YAML/JSON text or a path to it; ``model`` the model's YAML
    text or a path (a spec with ``template: {id, parameters}`` needs none: the template is rendered
    here through the Sim library, once per distinct value of its ``template.<name>`` parameters);
    ``fields`` are added to a mapping spec (``seed=7``). ``backend`` is a backend object or its
    name: "inprocess", "processes[:N]", "local" (a local Dask cluster) or
    "tcp://host:port" (None: in-process, or FLOWTIME_DASK_ADDRESS if set). Returns an
    ``ExperimentResult``: ``.table`` (a DataFrame), ``.series``, ``.bands``, ``.to_json()``.

    >>> r = experiment({"kind": "sweep", "parameters": [{"target": "a", "values": [1, 2]}],
    ...                 "metric": {"series": "b", "aggregate": "sum"}},
    ...                model="schemaVersion: 1\\ngrid: {bins: 2, binSize: 1, binUnit: hours}\\n"
    ...                      "nodes: [{id: a, values: 0}, {id: b, kind: expr, expr: a * 2}]")
    >>> r.table["sum(b)"].tolist()
    [4.0, 8.0]
    """
    from collections.abc import Mapping
    from pathlib import Path

    from flowtime.experiments.runner import run_experiment
    from flowtime.model.yamltext import parse_yaml

    base = None
    if isinstance(spec, os.PathLike | str):
        from flowtime.sources import names_a_file

        if isinstance(spec, os.PathLike) or names_a_file(spec):
            base = Path(spec).parent
        spec = parse_yaml(_text(spec))[0]
    if fields:
        spec = {**dict(spec), **fields}
    if isinstance(spec, Mapping) and spec.get("template") is not None:
        if model is not None:
            raise TypeError("experiment() takes a model= or a spec with template:, not both")
        from flowtime.template_sources import template_source

        renderer = template_source(spec, base)  # rendered here, through the Sim library; evaluated by the engine
        text = renderer.base_text
        return run_experiment(_read_observed(spec, text, base), text, backend, renderer=renderer)
    if model is None:
        raise TypeError("experiment() needs model= (the model's YAML text or a path), or a spec with template:")
    text = _text(model, inline=True)
    return run_experiment(_read_observed(spec, text, base), text, backend)


def _read_observed(spec: Any, model_text: str, base: os.PathLike[str] | None) -> Any:
    """
    A fit's ``settings.observed.file`` read into ``values`` (the core never opens files): a CSV in
    the series-file format (``bin_index,value``, a row per bin; an empty value or NaN is a missing
    observation; ``experiments.observed``), relative to the spec file's folder, else the working directory.
    """
    from collections.abc import Mapping
    from pathlib import Path

    from flowtime.errors import ExperimentError, Problem

    if not isinstance(spec, Mapping) or spec.get("kind") != "fit":
        return spec
    settings = spec.get("settings")
    observed = settings.get("observed") if isinstance(settings, Mapping) else None
    ref = observed.get("file") if isinstance(observed, Mapping) else None
    if not isinstance(ref, str) or "values" in observed:  # type: ignore[operator]
        return spec  # nothing to read (or both given: the spec check says so)
    from flowtime.experiments.observed import parse_observed_csv
    from flowtime.model.load import load_model as _load

    path = Path(ref) if base is None else Path(base) / ref
    bins = _load(model_text).model.grid.bins
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise ExperimentError([Problem("settings.observed.file", f"{ref}: cannot read it ({exc})")]) from exc
    values = parse_observed_csv(text, ref, bins, "settings.observed.file")  # located: file, line, column
    read = {**observed, "values": values}  # type: ignore[dict-item]
    del read["file"]
    return {**spec, "settings": {**settings, "observed": read}}  # type: ignore[dict-item]


def sweep(model: str | os.PathLike[str], parameters: list[dict[str, Any]], metrics: Any, **fields: Any
          ) -> ExperimentResult:
    """``experiment`` of kind sweep: ``metrics`` one metric mapping or a list of them."""
    listed = metrics if isinstance(metrics, list) else [metrics]
    return experiment({"kind": "sweep", "parameters": parameters, "metrics": listed, **fields}, model)


def montecarlo(model: str | os.PathLike[str], replications: int = 1000, *,
               parameters: list[dict[str, Any]] | None = None, metrics: Any = None,
               capture: list[str] | None = None, **fields: Any) -> ExperimentResult:
    """``experiment`` of kind montecarlo with ``replications`` (PMF sampling on)."""
    listed = [] if metrics is None else metrics if isinstance(metrics, list) else [metrics]
    settings = {"replications": replications, **fields.pop("settings", {})}
    return experiment({"kind": "montecarlo", "parameters": parameters or [], "metrics": listed,
                       "capture": capture or [], "settings": settings, **fields}, model)
