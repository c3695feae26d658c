"""Outputs: our wildcards, the reference's ``*`` and ``prefix/*``, and strict names (``model.graph.output_pattern``)."""

from __future__ import annotations

import pytest

import flowtime
from flowtime.errors import ModelValidationError
from flowtime.model.load import load_model

MODEL = ("schemaVersion: 1\ngrid: {bins: 2, binSize: 1, binUnit: hours}\nnodes:\n"
         "  - {id: queue_a, values: [1, 2]}\n  - {id: queue, values: [0, 0]}\n  - {id: my_queue, values: [3, 3]}\n"
         "  - {id: served, values: [1, 1]}\n"
         "topology:\n  nodes:\n    - {id: Hub, kind: serviceWithBuffer, semantics: {arrivals: queue_a, "
         "served: served}, initialCondition: {queueDepth: 2}}\n"
         "outputs:\n")


def _outputs(*series: str) -> list[str]:
    text = MODEL + "".join(f"  - series: '{s}'\n" for s in series)
    return flowtime.evaluate(load_model(text).model).output_ids


@pytest.mark.parametrize(("series", "expected"), [
    (("queue/*",), ["queue_a", "queue"]),
    (("queue_*",), ["queue_a"]),
    (("*queue",), ["queue", "my_queue", "hub_queue"]),
    (("hub/*",), ["hub_queue"]),
    (("served", "*"), ["served", "queue_a", "queue", "my_queue", "hub_queue"]),
])
def test_wildcards_select_in_declaration_order_and_never_internal_series(series: tuple[str, ...],
                                                                          expected: list[str]) -> None:
    """Hub's queue is hub_queue; its seed (hub_queue#seed) is FlowTime's own and never matched."""
    assert _outputs(*series) == expected


def test_a_reference_wildcard_that_matches_nothing_warns() -> None:
    loaded = load_model(MODEL + "  - series: 'lane/*'\n", "m.yaml")
    assert [(w.path, w.message) for w in loaded.warnings] == [
        ("outputs[0].series", "output pattern 'lane/*' matches no node")]


@pytest.mark.parametrize("name", ["queue_b", "hub_queue#seed"])
def test_an_output_naming_no_written_series_stays_an_error(name: str) -> None:
    """The reference skips such an output silently; we refuse it, at its line."""
    with pytest.raises(ModelValidationError, match=f"output names unknown node '{name}'") as info:
        load_model(MODEL + f"  - series: '{name}'\n", "m.yaml")
    assert "m.yaml, line 12" in str(info.value)


def test_lenient_outputs_skip_an_unknown_name_with_a_located_warning_and_keep_the_rest() -> None:
    loaded = load_model(MODEL + "  - series: served\n  - series: queue_b\n", "m.yaml", lenient_outputs=True)
    assert [(w.path, w.line, w.severity) for w in loaded.warnings] == [("outputs[1].series", 13, "warning")]
    assert "unknown node 'queue_b'" in loaded.warnings[0].message
    assert flowtime.evaluate(loaded.model).output_ids == ["served"]


def test_lenient_outputs_that_resolve_to_nothing_write_every_series_as_the_reference_does() -> None:
    loaded = load_model(MODEL + "  - series: nope\n  - series: also_nope\n", "m.yaml", lenient_outputs=True)
    assert len(loaded.warnings) == 2
    assert flowtime.evaluate(loaded.model).output_ids == ["queue_a", "queue", "my_queue", "served", "hub_queue"]
