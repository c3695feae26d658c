"""The engine: plan a model once, evaluate it into series (once, or many scenarios at a time)."""

from flowtime.engine.evaluate import ManyResults, Results, evaluate
from flowtime.engine.plan import Plan, plan

# The names of earlier releases: a compiled graph is now a plan.
Graph = Plan
compile_model = plan

__all__ = ["Graph", "ManyResults", "Plan", "Results", "compile_model", "evaluate", "plan"]
