"""What-if sessions over a frozen plan: knobs discovered through experiments.parameters, hand-computed answers."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from flowtime.engine import plan
from flowtime.errors import WhatIfError
from flowtime.experiments.whatif import WhatIf
from flowtime.model.load import load_model
from flowtime.model.yamltext import parse_yaml

HERE = Path(__file__).parent / "whatif"
EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def session(path: Path) -> WhatIf:
    text = path.read_text(encoding="utf-8")
    return WhatIf(load_model(text, path.name), data=lambda: parse_yaml(text)[0],
                  reload=lambda t: load_model(t, path.name))


def by_id(w: WhatIf) -> dict[str, Any]:
    return {k.id: k.to_json() for k in w.knobs}


def test_knobs_are_the_topology_fields_router_weights_and_remaining_consts_with_ranges_from_their_values() -> None:
    w = session(HERE / "model.yaml")
    knobs = by_id(w)
    assert list(knobs) == ["topology.Svc.capacity", "topology.Svc.parallelism", "router.split.left",
                           "router.split.right", "demand"]  # cap is named by the capacity knob, not twice
    assert knobs["topology.Svc.capacity"] | {"label": ""} == {
        "id": "topology.Svc.capacity", "kind": "capacity", "target": "topology.Svc.capacity", "mode": "value",
        "value": 15.0, "min": 0.0, "max": 45.0, "step": 0.1, "unit": "entities/bin", "label": "", "replans": False}
    assert (knobs["topology.Svc.parallelism"]["step"], knobs["topology.Svc.parallelism"]["replans"]) == (1.0, True)
    assert knobs["router.split.left"]["value"] == 3.0 and knobs["router.split.left"]["replans"] is True
    # a profile is scaled by a factor, never flattened to one number
    assert (knobs["demand"]["mode"], knobs["demand"]["value"], knobs["demand"]["max"]) == ("scale", 1.0, 3.0)


def test_defaults_answer_what_the_model_computes() -> None:
    r = session(HERE / "model.yaml").result()
    # served = MIN(demand, 30) = [10, 20, 30, 30]: mean 22.5; left 3/4 of it
    assert r["state"]["values"]["served"] == 22.5 and r["state"]["values"]["left"] == 16.875
    assert r["series"]["right"].tolist() == [2.5, 5.0, 7.5, 7.5]
    # utilization = served / (15 x 2): 1/3, 2/3, 1, 1 -> mean 0.75
    assert r["state"]["nodes"]["Svc"]["metrics"]["utilization"] == pytest.approx(0.75)
    assert r["state"]["stat"] == "mean" and r["evalMs"] >= 0


def test_each_kind_of_knob_changes_the_model_as_the_experiments_do() -> None:
    w = session(HERE / "model.yaml")
    w.change({"router.split.right": 3})  # an edit: weights 3 and 3 split evenly
    assert w.result()["series"]["left"].tolist() == [5.0, 10.0, 15.0, 15.0]
    w.change({"topology.Svc.parallelism": 3})  # an edit too: utilization = served / 45
    assert w.result()["state"]["nodes"]["Svc"]["metrics"]["utilization"] == pytest.approx(0.5)
    w.reset()
    w.change({"demand": 2, "topology.Svc.capacity": 5})  # scale the profile, set the const
    r = w.result(bin=3)
    assert r["series"]["demand"].tolist() == [20.0, 40.0, 60.0, 80.0]
    assert r["series"]["served"].tolist() == [10.0, 10.0, 10.0, 10.0]  # MIN(demand, 5 x 2)
    assert (r["state"]["bin"], r["state"]["values"]["demand"]) == (3, 80.0)


def test_an_answer_equals_evaluating_the_edited_model_directly() -> None:
    w = session(EXAMPLES / "service-queue.yaml")
    w.change({"topology.Packing.wipLimit": 10, "packers": 20})
    got = w.result()["series"]
    text = (EXAMPLES / "service-queue.yaml").read_text(encoding="utf-8").replace("wipLimit: 30", "wipLimit: 10")
    direct = plan(load_model(text).model).evaluate(set={"packers": 20})
    for node in ("packing_queue", "packing_overflow", "Packing"):
        if node in direct.series:
            assert np.array_equal(got[node], direct[node]), node


def test_the_hand_computed_wip_limit_overflow() -> None:
    """orders 20,20,20,5,0,0, waves of 25 in bins 1, 3, 5, buffer 10: 25 overflow in all (test_experiments.py)."""
    w = session(EXAMPLES / "service-queue.yaml")
    w.change({"topology.Packing.wipLimit": 10})
    assert float(w.result()["series"]["packing_overflow"].sum()) == 25.0


def test_a_bad_change_is_located_and_applies_nothing() -> None:
    w = session(HERE / "model.yaml")
    with pytest.raises(WhatIfError, match=r"set\.capp: unknown parameter 'capp'") as info:
        w.change({"capp": 1, "topology.Svc.capacity": 7})
    assert w.values["topology.Svc.capacity"] == 15.0
    with pytest.raises(WhatIfError, match=r"set\.demand: expected a finite number"):
        w.change({"demand": float("nan")})
    with pytest.raises(WhatIfError, match=r"set\.demand: expected a finite number"):
        w.change({"demand": True})
    with pytest.raises(WhatIfError, match="expected an object"):
        w.change([1, 2])
    assert [p.path for p in info.value.problems] == ["set.capp"]


def test_series_and_bin_requests_are_checked() -> None:
    w = session(HERE / "model.yaml")
    with pytest.raises(WhatIfError, match=r"series\[1\]: unknown node 'lft'"):
        w.check_request(["left", "lft"], None)
    with pytest.raises(WhatIfError, match=r"bin: expected a bin index 0\.\.3"):
        w.check_request(None, 4)
    assert w.check_request(["left"], 2) == (["left"], 2)


def test_same_point_same_answer() -> None:
    a, b = session(HERE / "model.yaml"), session(HERE / "model.yaml")
    for w in (a, b):
        w.change({"demand": 1.5, "router.split.left": 1})
    ra, rb = a.result(), b.result()
    assert all(np.array_equal(ra["series"][k], rb["series"][k]) for k in ra["series"])
    assert ra["state"] == rb["state"] and ra["warnings"] == rb["warnings"]
