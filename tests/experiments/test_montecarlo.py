"""Monte Carlo: bands converging to a PMF's quantiles, histograms, the seed streams, replicate(k)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import flowtime
from flowtime.experiments.montecarlo import draws, replication_seeds
from flowtime.experiments.spec import parse_spec

PMF = (Path(__file__).resolve().parents[2] / "examples" / "pmf-monte-carlo.yaml").read_text(encoding="utf-8")


def test_bands_of_a_pmf_node_converge_to_its_quantiles() -> None:
    # served = 1000 x healthy_fraction, drawn per bin: 500 (p 0.05), 900 (0.10), 1000 (0.85); CDF 0.05, 0.15, 1.
    # Quantiles away from the CDF's steps: q2 = 500, q10 = 900, q50 = q95 = 1000. At N = 10,000 the fraction of
    # draws below a step has sd sqrt(0.05 x 0.95 / 10^4) = 0.002, so every bin's band is exact (tolerance 0).
    r = flowtime.montecarlo(PMF, 10_000, seed=2024, capture=["served"],
                            metrics={"series": "served", "aggregate": "mean"},
                            settings={"percentiles": [2, 10, 50, 95]})
    for q, want in ((2, 500.0), (10, 900.0), (50, 1000.0), (95, 1000.0)):
        assert r.band("served", q).tolist() == [want] * 24
    # mean 1000 x (0.85 + 0.09 + 0.025) = 965; one draw's sd 110.8, a replication's mean of 24 bins averaged
    # over 10^4: se 110.8 / sqrt(240000) = 0.23; tolerance 1.0 (over 4 se)
    assert r.metrics[:, 0].mean() == pytest.approx(965.0, abs=1.0)
    h = r.histograms["mean(served)"]
    assert sum(h.counts) == 10_000 and h.nan == 0 and len(h.edges) == 21


def test_replicate_k_is_bit_identical_to_the_kth_replication() -> None:
    r = flowtime.montecarlo(PMF, 50, seed=5, capture=["served"], metrics={"series": "served"},
                            parameters=[{"target": "requests", "distribution": {"kind": "triangular", "low": 800,
                                                                                 "mode": 1000, "high": 1500}}])
    for k in (0, 17, 49):
        again = r.replicate(k)
        assert again.series["served"][0].tobytes() == r.series["served"][k].tobytes()
        assert again.metrics[0].tobytes() == r.metrics[k].tobytes()
    # and a separate run with that replication's seed and parameter value
    one = flowtime.evaluate(flowtime.load_model(PMF), r.seeds[17], sample_pmf=True,
                            set={"requests": float(r.points[17, 0])})
    assert one["served"].tobytes() == r.series["served"][17].tobytes()


def test_the_seed_streams_are_the_documented_ones() -> None:
    words = np.random.SeedSequence([9, 0]).generate_state(4, np.uint32) & 0x7FFFFFFF
    assert replication_seeds(9, 4) == words.tolist()
    assert replication_seeds(9, 100)[:4] == words.tolist()  # a replication's seed does not depend on N
    spec = parse_spec({"kind": "montecarlo", "parameters": [
        {"target": "a", "distribution": {"kind": "uniform", "low": 0, "high": 1}},
        {"target": "b", "distribution": {"kind": "discrete", "values": [1, 2], "probabilities": [0.5, 0.5]}}]})
    rng = np.random.Generator(np.random.PCG64(np.random.SeedSequence([9, 1])))
    a = rng.uniform(0, 1, 6)
    b = rng.choice(np.array([1.0, 2.0]), size=6, p=np.array([0.5, 0.5]))
    assert draws(spec.parameters, 9, 6).tolist() == np.stack([a, b], axis=1).tolist()


def test_same_spec_and_seed_give_identical_results_and_the_seed_is_recorded() -> None:
    spec = {"kind": "montecarlo", "seed": 1, "settings": {"replications": 200}, "capture": ["served"],
            "parameters": [{"target": "requests", "distribution": {"kind": "lognormal", "mu": 6.9, "sigma": 0.1}}]}
    a, b = flowtime.experiment(spec, model=PMF), flowtime.experiment(spec, model=PMF)
    assert a.series["served"].tobytes() == b.series["served"].tobytes() and a.seeds == b.seeds
    drawn = flowtime.experiment({**spec, "seed": None}, model=PMF)
    assert drawn.seed is not None and drawn.seeds == tuple(replication_seeds(drawn.seed, 200))
    assert a.to_json()["bands"]["served"]["p50"] == a.band("served", 50).tolist()
