"""Retry echo synthesis (``model/retry.py``): the kernel policy, the node added, and its located problems."""

from __future__ import annotations

import math

import numpy as np
import pytest

import flowtime
from flowtime.errors import ModelValidationError
from flowtime.model.load import load_model
from flowtime.model.retry import DEFAULT_RETRY_KERNEL, retry_kernel

HEAD = "schemaVersion: 1\ngrid: {bins: 4, binSize: 1, binUnit: hours}\n"
INPUTS = ("nodes:\n  - {id: arrivals, values: [10, 10, 10, 10]}\n  - {id: served, values: [6, 6, 6, 6]}\n"
          "  - {id: errors, values: [4, 0, 2, 0]}\n")


def _service(semantics: str, more_nodes: str = "", node_id: str = "Api") -> str:
    return (HEAD + INPUTS + more_nodes + "topology:\n  nodes:\n"
            f"    - id: {node_id}\n      kind: service\n      semantics: {{arrivals: arrivals, served: served, "
            f"{semantics}}}\n")


@pytest.mark.parametrize("given", [None, ()])
def test_a_missing_or_empty_kernel_is_the_default(given: tuple[float, ...] | None) -> None:
    assert retry_kernel(given).values == DEFAULT_RETRY_KERNEL == (0.0, 0.6, 0.3, 0.1)
    assert retry_kernel(given).changes == ()


def test_a_kernel_longer_than_32_is_trimmed_then_scaled() -> None:
    """40 x 0.05: 32 kept, summing to 1.6000000000000003 (left to right) > 1, so each is 0.05 / 1.6..."""
    kernel = retry_kernel([0.05] * 40)
    assert len(kernel.values) == 32
    total = 0.0
    for _ in range(32):
        total += 0.05
    assert kernel.values == (0.05 * (1.0 / total),) * 32
    assert kernel.changes == ("trimmed to 32 coefficients (from 40)",
                              f"scaled to sum 1 (the coefficients summed to {total:g})")


def test_negative_and_non_finite_coefficients_become_zero_and_a_small_sum_stays() -> None:
    kernel = retry_kernel([0.2, -0.5, math.inf, math.nan, -0.0, 0.3])
    assert kernel.values == (0.2, 0.0, 0.0, 0.0, 0.0, 0.3)
    assert all(math.copysign(1.0, v) == 1.0 for v in kernel.values)  # -0 is read as 0
    assert kernel.changes == ("negative or non-finite coefficients set to 0",)


def test_a_sum_of_exactly_one_is_not_scaled() -> None:
    assert retry_kernel([0.5, 0.5]).values == (0.5, 0.5)
    assert retry_kernel([0.5, 0.5]).changes == ()


def test_a_missing_retry_echo_is_computed_from_errors_with_the_default_kernel() -> None:
    """errors [4, 0, 2, 0] -> echo t0 0; t1 0.6*4 = 2.4; t2 0.6*0 + 0.3*4 = 1.2; t3 0.6*2 + 0.3*0 + 0.1*4."""
    loaded = load_model(_service("errors: errors, retryEcho: api_retry_echo"))
    assert loaded.warnings == []
    results = flowtime.evaluate(loaded.model)
    assert "api_retry_echo" in results.output_ids
    expected = [0.0, 0.6 * 4, (0.0 + 0.6 * 0) + 0.3 * 4, ((0.0 + 0.6 * 2) + 0.3 * 0) + 0.1 * 4]
    assert results.series["api_retry_echo"].tolist() == expected


def test_failures_win_over_errors_and_self_names_the_topology_node() -> None:
    more = "  - {id: fails, values: [1, 1, 1, 1]}\n"
    loaded = load_model(_service("errors: errors, failures: fails, retryEcho: self, retryKernel: [1]", more))
    assert flowtime.evaluate(loaded.model).series["Api"].tolist() == [1.0, 1.0, 1.0, 1.0]


def test_an_existing_retry_echo_node_is_used_as_it_is() -> None:
    more = "  - {id: echo, values: [7, 7, 7, 7]}\n"
    results = flowtime.evaluate(load_model(_service("errors: errors, retryEcho: echo", more)).model)
    assert np.array_equal(results.series["echo"], [7, 7, 7, 7])


def test_the_kernel_policy_warns_at_the_kernel() -> None:
    loaded = load_model(_service("errors: errors, retryEcho: echo, retryKernel: [1, 1]"), "m.yaml")
    assert [(w.path, w.message) for w in loaded.warnings] == [
        ("topology.nodes.Api.semantics.retryKernel", "topology node 'Api': retryKernel scaled to sum 1 (the "
         "coefficients summed to 2), as the reference's retry kernel policy does")]
    assert flowtime.evaluate(loaded.model).series["echo"].tolist() == [2.0, 2.0, 1.0, 1.0]


def test_a_retry_echo_without_failures_or_errors_is_a_located_error() -> None:
    with pytest.raises(ModelValidationError) as info:
        load_model(_service("retryEcho: echo"), "m.yaml")
    text = str(info.value)
    assert "m.yaml, line 11" in text
    assert "topology.nodes.Api.semantics.retryEcho" in text
    assert "retryEcho names 'echo', which is not a node, and there are no semantics.failures or errors" in text


def test_an_unknown_source_is_reported_once() -> None:
    with pytest.raises(ModelValidationError) as info:
        load_model(_service("errors: errs, retryEcho: echo"), "m.yaml")
    assert str(info.value).startswith("1 error in m.yaml:")
    assert "errors names unknown node 'errs' (did you mean `errors`?)" in str(info.value)


def test_two_nodes_naming_the_same_missing_echo_is_an_error() -> None:
    text = _service("errors: errors, retryEcho: echo") + (
        "    - id: Web\n      kind: service\n      semantics: {arrivals: arrivals, served: served, errors: errors, "
        "retryEcho: echo}\n")
    with pytest.raises(ModelValidationError, match="retryEcho 'echo' is already the retry echo FlowTime adds for "
                       "topology node 'Api'"):
        load_model(text)
