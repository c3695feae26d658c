"""``set=`` takes a NumPy profile as it takes a list (what an experiment passes for each point)."""

from __future__ import annotations

import numpy as np
import pytest

from flowtime.errors import ModelValidationError
from flowtime.model.load import load_model
from flowtime.model.overrides import normalise

MODEL = load_model("schemaVersion: 1\ngrid: {bins: 3, binSize: 1, binUnit: hours}\n"
                   "nodes: [{id: a, values: 1}, {id: b, kind: expr, expr: a * 2}]").model


def test_an_array_profile_is_the_list_it_holds() -> None:
    assert normalise({"a": np.array([1.0, 2.5, 3.0])}, 3, MODEL) == normalise({"a": [1, 2.5, 3]}, 3, MODEL)
    assert normalise({"a": np.array([1, 2, 3])}, 3, MODEL) == {"a": [1.0, 2.0, 3.0]}


@pytest.mark.parametrize(("value", "message"), [
    (np.array([1.0, 2.0]), "gives 2 values"),
    (np.array([1.0, np.nan, 3.0]), "item 1 is nan"),
])
def test_a_wrong_array_is_located(value: object, message: str) -> None:
    with pytest.raises(ModelValidationError) as got:
        normalise({"a": value}, 3, MODEL)
    assert got.value.problems[0].path == "set.a" and message in got.value.problems[0].message
