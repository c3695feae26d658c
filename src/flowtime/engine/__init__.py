"""The engine: compile a model into a graph and evaluate it into series."""

from flowtime.engine.evaluate import Results, evaluate
from flowtime.engine.graph import Graph, compile_model

__all__ = ["Graph", "Results", "compile_model", "evaluate"]
