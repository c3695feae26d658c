"""Experiments: many evaluations of one model answering one question (sweeps, Monte Carlo, sensitivity, ...)."""
