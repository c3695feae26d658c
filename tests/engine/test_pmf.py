"""PMF sampling for many seeds at once: every row equals the single-seed reference bit for bit."""

from __future__ import annotations

from pathlib import Path
from unittest import mock

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from flowtime.engine import pmf
from flowtime.engine.plan import Plan, plan
from flowtime.engine.pmf import (
    RunSeeds,
    node_seed,
    node_seeds,
    pcg32_doubles,
    pcg32_doubles_many,
    pcg32_uint32,
    pcg32_uint32_many,
    sample,
    sample_many,
    sample_nodes,
)
from flowtime.model.load import load_model

CASES = Path(__file__).parents[1] / "cases"
PMF_CASES = sorted(p.name for p in CASES.glob("pmf_*") if (p / "model.yaml").is_file())
EDGE_SEEDS = [0, 1, 2**63 - 1, 2**63, 2**64 - 1, -1, -(2**63), 2**64, 2**65 + 3]

# Any Python int: the functions reduce seeds mod 2**64 (negative ones and ones past 2**64 too).
seeds_st = st.one_of(st.integers(0, 2**64 - 1), st.integers(-(2**63), -1), st.sampled_from(EDGE_SEEDS))
# Small grids, grids around the work-block size (32768 elements) and past the cached jump tables.
bins_st = st.one_of(st.integers(0, 300), st.sampled_from([32767, 32768, 32769, 40000]))


@st.composite
def pmfs(draw: st.DrawFn) -> tuple[np.ndarray, np.ndarray]:
    """Values and non-negative probabilities: zeros, sums off 1, and more than 16 values (binary search)."""
    m = draw(st.integers(1, 24))
    values = draw(st.lists(st.floats(allow_nan=False, width=64), min_size=m, max_size=m))
    weights = st.one_of(st.just(0.0), st.floats(0.0, 1.0), st.sampled_from([0.5, 0.25, 1e-300, 5e-324]))
    probabilities = np.array(draw(st.lists(weights, min_size=m, max_size=m)))
    if draw(st.booleans()) and probabilities.sum() > 0:
        probabilities = probabilities / probabilities.sum()
    return np.array(values, dtype=np.float64), probabilities


def same_bits(a: np.ndarray, b: np.ndarray) -> bool:
    return a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()


def test_many_seeds_give_the_reference_outputs_of_seed_42() -> None:
    """The first outputs of seed 42 (the reference engine's), in any row."""
    got = pcg32_uint32_many([7, 42, 42], 5)
    assert got[1].tolist() == got[2].tolist() == [1971522493, 242089394, 3457789919, 3637502659, 19596830]
    assert got.dtype == np.uint32 and got.shape == (3, 5)


@given(seeds=st.lists(seeds_st, max_size=5), n=bins_st)
def test_every_row_of_the_many_seed_generator_is_the_single_seed_generator(seeds: list[int], n: int) -> None:
    ints, doubles = pcg32_uint32_many(seeds, n), pcg32_doubles_many(seeds, n)
    assert ints.shape == doubles.shape == (len(seeds), n)
    for k, seed in enumerate(seeds):
        assert same_bits(ints[k], pcg32_uint32(seed, n))
        assert same_bits(doubles[k], pcg32_doubles(seed, n))


@given(seeds=st.lists(seeds_st, max_size=6), n=bins_st, dist=pmfs())
def test_every_row_of_sample_many_is_sample_with_that_seed(seeds: list[int], n: int,
                                                          dist: tuple[np.ndarray, np.ndarray]) -> None:
    values, probabilities = dist
    got = sample_many(values, probabilities, seeds, n)
    assert got.shape == (len(seeds), n) and got.dtype == np.float64
    for k, seed in enumerate(seeds):
        assert same_bits(got[k], sample(values, probabilities, seed, n))


@pytest.mark.parametrize("block", [1, 7, 64, 1000])
@given(seeds=st.lists(seeds_st, min_size=1, max_size=40), n=st.integers(0, 150), dist=pmfs())
def test_rows_split_across_work_blocks_are_the_same(block: int, seeds: list[int], n: int,
                                                    dist: tuple[np.ndarray, np.ndarray]) -> None:
    """Tiny work blocks split the rows and the bins many ways; no split shows in the draws."""
    values, probabilities = dist
    with mock.patch.object(pmf, "_BLOCK", block):
        got = sample_many(values, probabilities, seeds, n)
        ints = pcg32_uint32_many(seeds, n)
    for k, seed in enumerate(seeds):
        assert same_bits(got[k], sample(values, probabilities, seed, n))
        assert same_bits(ints[k], pcg32_uint32(seed, n))


def test_grids_past_the_cached_jump_tables_draw_the_same() -> None:
    n = pmf._CACHED_BINS + 5
    values, probabilities = np.array([1.0, 2.0, 3.0]), np.array([0.2, 0.3, 0.5])
    got = sample_many(values, probabilities, [3, -3], n)
    assert same_bits(got[0], sample(values, probabilities, 3, n))
    assert same_bits(got[1], sample(values, probabilities, -3, n))


@pytest.mark.parametrize("m", [2, 20])  # 20 values: more thresholds than are counted, a binary search
def test_a_draw_exactly_on_a_running_probability_takes_that_value(m: int) -> None:
    """
    The first value whose running probability is >= u: with the first running
    probability equal to the first draw u, the draw is values[0]; one step below
    u, it is values[1]. Integer thresholds must agree with the float comparison.
    """
    u = int(pcg32_uint32(5, 1)[0]) / 2**32
    values = np.arange(10.0, 10.0 * (m + 1), 10.0)
    on = np.array([u, 1.0 - u] + [0.0] * (m - 2))
    below = np.array([np.nextafter(u, 0.0), 1.0 - u] + [0.0] * (m - 2))
    assert sample(values, on, 5, 1).tolist() == sample_many(values, on, [5], 1)[0].tolist() == [10.0]
    assert sample(values, below, 5, 1).tolist() == sample_many(values, below, [5], 1)[0].tolist() == [20.0]


@pytest.mark.parametrize("m", [1, 3, 20])
def test_probabilities_that_never_reach_a_draw_give_the_last_value(m: int) -> None:
    values = np.arange(1.0, m + 1.0)
    assert sample_many(values, np.zeros(m), [1, 2], 4).tolist() == [[float(m)] * 4] * 2
    assert sample(values, np.zeros(m), 1, 4).tolist() == [float(m)] * 4


def test_seed_arrays_of_any_integer_type_mean_the_same_seeds() -> None:
    """An int64 array means its values mod 2**64, like the ints themselves (-1 is 2**64 - 1)."""
    values, probabilities = np.array([1.0, 2.0]), np.array([0.5, 0.5])
    listed = [0, 5, -1, -(2**63), 2**63 - 1]
    expected = sample_many(values, probabilities, listed, 9)
    as_int64 = np.array(listed, dtype=np.int64)
    assert same_bits(sample_many(values, probabilities, as_int64, 9), expected)
    assert same_bits(sample_many(values, probabilities, as_int64.view(np.uint64), 9), expected)
    assert same_bits(sample_many(values, probabilities, np.array([2**64 - 1], dtype=np.uint64), 9), expected[2:3])


def test_sample_many_writes_into_out_when_given() -> None:
    out = np.full((2, 3), np.nan)
    got = sample_many(np.array([4.0]), np.array([1.0]), [1, 2], 3, out=out)
    assert got is out and out.tolist() == [[4.0] * 3, [4.0] * 3]


@given(seeds=st.lists(seeds_st, max_size=8),
       node_id=st.one_of(st.sampled_from(["arrivals", "a%d", "100%", "é-ü", ""]), st.text(max_size=12)))
def test_node_seeds_are_node_seed_for_each_run_seed(seeds: list[int], node_id: str) -> None:
    expected = [node_seed(s, node_id) for s in seeds]
    assert node_seeds(seeds, node_id).tolist() == expected
    assert node_seeds(RunSeeds(seeds), node_id).tolist() == expected
    assert node_seeds(iter(seeds), node_id).dtype == np.uint64


def test_run_seeds_serve_many_nodes_unchanged() -> None:
    run = RunSeeds([3, 2**64 - 1, -1])
    assert len(run) == 3
    for node_id in ("a", "b", "a"):
        assert run.node(node_id).tolist() == [node_seed(s, node_id) for s in (3, 2**64 - 1, -1)]


def test_sample_nodes_is_one_read_only_block_of_each_nodes_draws() -> None:
    nodes = [("a", np.array([1.0, 2.0]), np.array([0.5, 0.5])), ("b", np.array([7.0, 8.0, 9.0]), np.ones(3) / 3)]
    block = sample_nodes(nodes, [11, -4], 6)
    assert block.shape == (2, 2, 6) and not block.flags.writeable
    for i, (node_id, values, probabilities) in enumerate(nodes):
        for k, seed in enumerate([11, -4]):
            assert same_bits(block[i, k], sample(values, probabilities, node_seed(seed, node_id), 6))
    assert sample_nodes([], [1, 2], 6).shape == (0, 2, 6)


# -- through the plan ----------------------------------------------------------------------------

def _case_plan(name: str) -> Plan:
    return plan(load_model((CASES / name / "model.yaml").read_text(), f"{name}/model.yaml").model)


@pytest.mark.parametrize("sample_pmf", [True, False])
@pytest.mark.parametrize("case", PMF_CASES)
def test_evaluate_many_scenarios_equal_separate_evaluations_on_the_pmf_cases(case: str, sample_pmf: bool) -> None:
    p = _case_plan(case)
    seeds = [*EDGE_SEEDS, 7, 42, 12345]
    many = p.evaluate_many(seeds=seeds, sample_pmf=sample_pmf)
    for k, seed in enumerate(seeds):
        one = p.evaluate(seed=seed, sample_pmf=sample_pmf)
        got = many.scenario(k)
        assert got.sampled == one.sampled and got.seed == one.seed
        for node in one.order:
            assert same_bits(np.asarray(got[node]), np.asarray(one[node])), (case, seed, node)


def test_sampling_cases_really_sample_and_differ_by_seed() -> None:
    """The property above is not vacuous: pmf_sampled draws, and two seeds draw differently."""
    many = _case_plan("pmf_sampled").evaluate_many(seeds=[1, 2])
    assert many.sampled == ["arrivals", "size"]
    assert many["arrivals"].shape == (2, 8) and not np.array_equal(many["arrivals"][0], many["arrivals"][1])
    assert set(np.unique(many["arrivals"])) <= {100.0, 200.0}


@given(seeds=st.lists(seeds_st, min_size=1, max_size=6), sample_pmf=st.booleans())
def test_evaluate_many_equals_evaluate_for_any_seeds(seeds: list[int], sample_pmf: bool) -> None:
    p = _case_plan("pmf_sampled")
    many = p.evaluate_many(seeds=seeds, sample_pmf=sample_pmf)
    for k, seed in enumerate(seeds):
        one = p.evaluate(seed=seed, sample_pmf=sample_pmf)
        for node in ("arrivals", "size", "work"):
            assert same_bits(np.asarray(many.scenario(k)[node]), np.asarray(one[node]))
