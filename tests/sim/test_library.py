"""
Every template - ours and the reference's - generates a model that validates and
runs; the numbers are computed by hand from the defaults (or the overrides shown).
Sim never runs models: the tests do, in-process, through the engine.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from flowtime.engine import evaluate
from flowtime.model.load import load_model
from flowtime.sim.catalog import Catalog, builtin_templates
from flowtime.sim.render import render_template

REFERENCE_DIR = Path(__file__).parent / "reference_templates"
REFERENCE_IDS = tuple(sorted(p.stem for p in REFERENCE_DIR.glob("*.yaml")))


def run(catalog: Catalog, template_id: str, params: dict[str, Any] | None = None) -> dict[str, list[float]]:
    generated = render_template(catalog.get(template_id), params)
    # Through text, as `flowtime sim generate | flowtime run -` would.
    results = evaluate(load_model(generated.model_text).model)
    return {k: [round(x, 6) for x in v.tolist()] for k, v in results.series.items()}


@pytest.mark.parametrize("template_id", [t.id for t in builtin_templates()] + list(REFERENCE_IDS))
def test_every_template_generates_a_model_that_validates_and_runs(catalog: Catalog, template_id: str) -> None:
    generated = render_template(catalog.get(template_id))
    loaded = load_model(generated.model_text, template_id)
    assert not loaded.warnings
    series = evaluate(loaded.model).series
    assert set(series) == set(loaded.model.node_ids)


def test_commuter_rail(catalog: Catalog) -> None:
    s = run(catalog, "commuter-rail")  # 2 trains x 150 seats = 300 per period
    assert s["seat_capacity"] == [300] * 6
    assert s["boarded"] == [120, 300, 300, 260, 150, 90]
    assert s["left_behind"] == [0, 0, 150, 0, 0, 0]
    assert s["load_factor"] == [0.4, 1, 1, round(260 / 300, 6), 0.5, 0.3]
    assert run(catalog, "commuter-rail", {"trains_per_period": 3})["left_behind"] == [0] * 6


def test_assembly_line(catalog: Catalog) -> None:
    s = run(catalog, "assembly-line")
    # raw [50, 50, 60, 40, 50, 55, 45, 50], machining 48, assembly 45
    assert s["machined"] == [48, 48, 48, 40, 48, 48, 45, 48]
    assert s["assembled"] == [45, 45, 45, 40, 45, 45, 45, 45]
    # 4% fail; half of those come back a shift later: 45*0.96 + 45*0.02 = 43.2 + 0.9
    assert s["finished_goods"] == [43.2, 44.1, 44.1, 39.3, 44.0, 44.1, 44.1, 44.1]
    assert s["scrap"] == [0.9, 0.9, 0.9, 0.8, 0.9, 0.9, 0.9, 0.9]


def test_microservice_chain(catalog: Catalog) -> None:
    s = run(catalog, "microservice-chain")
    # 2600 -> gateway 2400 -> auth 2200 -> 60% cache (1320) + db min(880, 700) = 2020
    assert s["authenticated"] == [800, 1200, 2000, 2200, 1500, 900]
    assert s["served"] == [800, 1200, 1900, 2020, 1500, 900]
    assert s["failed"] == [0, 0, 100, 580, 0, 0]
    assert s["availability"][2:4] == [0.95, round(2020 / 2600, 6)]


def test_supply_chain_three_tier(catalog: Catalog) -> None:
    s = run(catalog, "supply-chain-three-tier")
    # orders = demand * 1.1 capped at 130; arrivals two days later; store sells min(arrivals, 125, demand, 135)
    assert s["produced"] == [88, 99, 110, 130, 130, 130, 121, 110, 99, 88]
    assert s["warehouse_arrivals"] == [0, 0, 88, 99, 110, 130, 130, 130, 121, 110]
    assert s["store_sales"] == [0, 0, 88, 99, 110, 125, 110, 100, 90, 80]
    assert s["lost_sales"] == [80, 90, 12, 21, 30, 5, 0, 0, 0, 0]
    assert run(catalog, "supply-chain-three-tier", {"transit_days": 0})["lost_sales"][:2] == [0, 0]


def test_network_link_failures_uses_pmf_expected_values(catalog: Catalog) -> None:
    s = run(catalog, "network-link-failures")
    # E[link] = 0.95 + 0.04*0.5 = 0.97; E[router] = 0.9 + 0.1*0.8 = 0.98
    assert s["link_availability"] == [0.97] * 24 and s["router_health"] == [0.98] * 24
    assert s["delivered"] == [784] * 24  # min(800, 970, 784)
    assert s["dropped"] == [16] * 24 and s["delivery_ratio"] == [0.98] * 24
    degraded = run(catalog, "network-link-failures", {"degraded_share": 0.25, "bins": 2})
    assert degraded["link_availability"] == [0.96] * 2


def test_network_link_failures_samples_with_the_templates_seed(catalog: Catalog) -> None:
    model = render_template(catalog.get("network-link-failures"), {"seed": 99}).loaded.model
    assert model.rng is not None and model.rng.seed == 99
    a = evaluate(model, sample_pmf=True).series["link_availability"]
    assert set(a.tolist()) <= {1.0, 0.5, 0.0}
    assert evaluate(model, sample_pmf=True).series["link_availability"].tolist() == a.tolist()


def test_emergency_department_waiting_room(catalog: Catalog) -> None:
    s = run(catalog, "emergency-department")
    # capacity 4 doctors x 5 = 20; arrivals [12, 20, 28, 24, 16, 8]
    assert s["treated"] == [12, 20, 20, 20, 20, 16]
    assert s["waiting"] == [0, 0, 8, 12, 8, 0]
    assert s["admitted"] == [3, 5, 5, 5, 5, 4]
    assert s["utilisation"] == [0.6, 1, 1, 1, 1, 0.8]


def test_ecommerce_checkout_peak_factor_and_base_capacity(catalog: Catalog) -> None:
    s = run(catalog, "ecommerce-checkout")
    # visitors x 1.5 x 8% = [120, 144, 180, 216, 168, 108]; payment capacity 150
    assert s["checkouts"] == [120, 144, 180, 216, 168, 108]
    assert s["processed"] == [120, 144, 150, 150, 150, 108]
    assert s["abandoned"] == [0, 0, 30, 66, 18, 0]
    assert s["orders"] == [116.4, 139.68, 145.5, 145.5, 145.5, 104.76]
    calm = run(catalog, "ecommerce-checkout", {"peak_factor": 1, "base_capacity": 200})
    assert calm["abandoned"] == [0] * 6 and calm["checkouts"] == [80, 96, 120, 144, 112, 72]


def test_support_backlog_feedback_loop(catalog: Catalog) -> None:
    s = run(catalog, "support-backlog")
    # capacity 5 x 10 = 50; backlog = MAX(0, SHIFT(backlog, 1) + arrivals - served)
    assert s["served"] == [40, 50, 50, 50, 50, 40, 45, 50]
    assert s["backlog"] == [0, 5, 25, 40, 20, 0, 0, 0]
    assert s["days_to_clear"] == [0, 0.1, 0.5, 0.8, 0.4, 0, 0, 0]
    assert run(catalog, "support-backlog", {"agents": 7})["backlog"] == [0] * 8


def test_reference_transportation_basic(catalog: Catalog) -> None:
    s = run(catalog, "transportation-basic")
    assert s["passengers_served"] == [10, 15, 20, 25, 18, 12]
    assert s["unmet_demand"] == [0] * 6
    assert s["utilization"][0] == round(10 / 15, 6)


def test_reference_manufacturing_line(catalog: Catalog) -> None:
    s = run(catalog, "manufacturing-line")
    assert s["assembly"] == [90, 90, 80, 90, 90, 90]
    assert s["quality_control"] == [85.5, 85.5, 76, 85.5, 85.5, 85.5]
    assert s["packaging"] == [10.8] * 6  # MIN(quality_control, 12 * 0.9)
    assert s["defects"] == [4.5, 4.5, 4, 4.5, 4.5, 4.5]


def test_reference_network_reliability(catalog: Catalog) -> None:
    s = run(catalog, "network-reliability")
    # E[network] = 0.959, E[server] = 1.0, E[db] = 0.973
    assert s["network_requests"][0] == 95.9
    assert s["server_capacity"] == [150] * 12
    assert s["successful_requests"][4] == round(min(200 * 0.959, 150) * 0.973, 6)


def test_reference_supply_chain_and_it_system(catalog: Catalog) -> None:
    s = run(catalog, "supply-chain-multi-tier")
    assert s["retail_sales"] == [96, 120, 120, 120, 120, 72]
    assert s["unmet_demand"] == [0, 0, 40, 20, 0, 0]
    it = run(catalog, "it-system-microservices")
    assert it["processed_requests"] == [100, 150, 180, 180, 120, 80]
    assert it["failed_requests"] == [0, 0, 20, 0, 0, 0]
