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
    "load_model",
    "plan",
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
