"""Run artifacts: canonical bytes, the run folder layout, the writer and the registry."""
