"""
``run_experiment(spec, model_text)``: the one entry every surface calls (Python, CLI, HTTP).

The spec is parsed (``experiments.spec``), checked against the model by the
``Evaluator``, and run by its kind's function from one table; the result
keeps its evaluator so that ``result.replicate(k)`` can run point k again.
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Callable
from typing import Any

from flowtime.errors import ExperimentError, Problem
from flowtime.experiments.backends import Backend, InProcess, backend_for
from flowtime.experiments.evaluator import Evaluator
from flowtime.experiments.montecarlo import run_montecarlo
from flowtime.experiments.results import ExperimentResult
from flowtime.experiments.searches import run_fit_experiment, run_optimize_experiment
from flowtime.experiments.sources import TemplateRenderer
from flowtime.experiments.spec import parse_spec
from flowtime.experiments.studies import run_goalseek_experiment, run_sensitivity_experiment
from flowtime.experiments.sweep import run_sweep

# kind -> its run function
RUNS: dict[str, Callable[[Evaluator], ExperimentResult]] = {
    "sweep": run_sweep,
    "montecarlo": run_montecarlo,
    "sensitivity": run_sensitivity_experiment,
    "goalseek": run_goalseek_experiment,
    "optimize": run_optimize_experiment,
    "fit": run_fit_experiment,
}


def run_experiment(spec: Any, model_text: str, backend: Backend | str | None = None, *,
                   cancel: threading.Event | None = None,
                   on_progress: Callable[[int], None] | None = None,
                   renderer: TemplateRenderer | None = None) -> ExperimentResult:
    """
    Run ``spec`` (a spec, or its JSON/YAML data) over the model ``model_text``.
    ``backend`` is a backend, or a name for ``backends.backend_for`` ("processes:4",
    "local", "tcp://host:port"; None: in-process unless FLOWTIME_DASK_ADDRESS is set);
    a backend made from a name is closed when the run ends. A spec with a ``template``
    needs its ``renderer`` (the edge's: ``flowtime.template_sources``), and
    ``model_text`` is then the template rendered with the base parameters.
    """
    parsed = parse_spec(spec)
    run = RUNS.get(parsed.kind)
    if run is None:
        raise ExperimentError([Problem("kind", f"kind {parsed.kind} is not available in this build")])
    owned = backend_for(backend) if backend is None or isinstance(backend, str) else None
    chosen: Backend = owned if owned is not None else backend  # type: ignore[assignment]
    try:
        ev = Evaluator(model_text, parsed, chosen, cancel=cancel, on_progress=on_progress, renderer=renderer)
        result = run(ev)
    finally:
        if owned is not None:
            owned.close()
    if owned is not None:
        ev.backend = InProcess()  # replicate(k) runs here: every backend gives the same bytes
    if renderer is not None:
        result = dataclasses.replace(result, source={"template": renderer.provenance()})
    result.bind(ev)
    return result
