"""Experiments: sweeps, Monte Carlo, sensitivity, goal seek, optimisation and fitting over batched evaluation."""
