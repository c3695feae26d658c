"""/v1/runs/compare of several runs and of runs on different grids, against a real Engine on loopback."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from tests.api.engine_server import serve_engine

from flowtime.settings import EngineSettings

PROBLEM = "application/problem+json"


def hello(values: list[float], start: str | None = None) -> str:
    at = f", start: '{start}'" if start else ""
    return (f"schemaVersion: 1\nmetadata: {{title: Hello}}\n"
            f"grid: {{bins: {len(values)}, binSize: 1, binUnit: hours{at}}}\n"
            f"nodes:\n  - {{id: demand, kind: const, values: {values}}}\n"
            f"  - {{id: served, kind: expr, expr: \"MIN(demand, 25)\"}}\n")


def service(values: list[float], cap: float, size: int, unit: str) -> str:
    """One service: served = MIN(demand, cap), so utilization (a ratio) = served / cap."""
    return (f"schemaVersion: 1\nmetadata: {{title: Svc}}\n"
            f"grid: {{bins: {len(values)}, binSize: {size}, binUnit: {unit}, start: '2025-01-01T00:00:00Z'}}\n"
            f"nodes:\n  - {{id: demand, kind: const, values: {values}}}\n"
            f"  - {{id: cap, kind: const, values: {cap}}}\n"
            f"  - {{id: served, kind: expr, expr: \"MIN(demand, cap)\"}}\n"
            f"topology:\n  nodes:\n    - id: Svc\n      kind: service\n"
            f"      semantics: {{arrivals: demand, served: served, capacity: cap}}\n")


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[httpx.Client]:
    data: Path = tmp_path_factory.mktemp("compare-many")
    with serve_engine(EngineSettings(data_dir=data)) as url, httpx.Client(base_url=url, timeout=30) as c:
        yield c


def run(client: httpx.Client, text: str) -> str:
    resp = client.post("/v1/run", content=text.encode(), headers={"Content-Type": "application/x-yaml"})
    assert resp.status_code == 200, resp.text
    rid: str = resp.json()["runId"]
    return rid


def by_id(body: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {s["id"]: s for s in body["series"]}


def test_three_runs_overlay_with_deltas_against_the_chosen_baseline(client: httpx.Client) -> None:
    r1, r2, r3 = (run(client, hello(v)) for v in ([10, 20, 30, 40], [12, 20, 20, 44], [10, 25, 30, 0]))
    body = client.get("/v1/runs/compare", params=[("run", r1), ("run", r2), ("run", r3)]).json()
    assert [r["runId"] for r in body["runs"]] == [r1, r2, r3] and body["baseline"] == r1
    assert body["resampling"]["resampled"] is False and "compared bin by bin" in body["resampling"]["statement"]
    demand, served = by_id(body)["demand"], by_id(body)["served"]
    assert demand["values"] == {r1: [10, 20, 30, 40], r2: [12, 20, 20, 44], r3: [10, 25, 30, 0]}
    assert demand["deltas"] == {r2: [2, 0, -10, 4], r3: [0, 5, 0, -40]}
    assert demand["maxAbsDelta"] == {r2: 10, r3: 40} and demand["maxAbsDeltaAny"] == 40
    # served = MIN(demand, 25): r1 [10, 20, 25, 25], r2 [12, 20, 20, 25], r3 [10, 25, 25, 0]
    assert served["deltas"] == {r2: [2, 0, -5, 0], r3: [0, 5, 0, -25]}
    assert [r["id"] for r in body["ranking"]] == ["demand", "served"]
    assert body["modelChanges"][r3]["changes"] == [
        {"node": "demand", "change": "values", "detail": "2 of 4 bins, first bin 1: 20 -> 25"}]

    # the same runs, comma-separated, against r3: deltas are now r - r3
    again = client.get("/v1/runs/compare", params={"run": f"{r1},{r2},{r3}", "baseline": r3}).json()
    assert again["baseline"] == r3
    assert by_id(again)["demand"]["deltas"] == {r1: [0, -5, 0, 40], r2: [2, -5, -10, 44]}


def test_a_bad_choice_of_runs_is_a_located_400(client: httpx.Client) -> None:
    r1, r2 = run(client, hello([1, 2])), run(client, hello([2, 3]))
    one = client.get("/v1/runs/compare", params={"run": r1})
    assert one.status_code == 400 and one.headers["content-type"].startswith(PROBLEM)
    assert "between 2 and 8 runs, got 1" in one.json()["detail"]
    stranger = client.get("/v1/runs/compare", params={"run": [r1, r2], "baseline": "run_20200101T000000Z_00000000"})
    assert stranger.status_code == 400 and "is not one of the compared runs" in stranger.json()["detail"]
    assert client.get("/v1/runs/compare", params={"run": [r1, r1]}).status_code == 400
    assert client.get("/v1/runs/compare", params={"a": r1}).status_code == 400


def test_different_grids_are_compared_on_the_common_span_in_the_coarser_bins(client: httpx.Client) -> None:
    # A: 15-minute bins for 2 h; utilization = demand / 10. B: hourly for 3 h; utilization = demand / 20.
    a = run(client, service([1, 2, 3, 4, 10, 10, 0, 0], 10, 15, "minutes"))
    b = run(client, service([7, 8, 9], 20, 1, "hours"))
    resp = client.get("/v1/runs/compare", params={"a": a, "b": b})
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["grid"] == {"bins": 2, "binSize": 1, "binUnit": "hours", "binMinutes": 60,
                            "startTimeUtc": "2025-01-01T00:00:00Z"}
    series = by_id(body)
    assert series["demand"]["a"] == [10, 20] and series["demand"]["b"] == [7, 8]   # flows summed: 1+2+3+4, 10+10+0+0
    assert series["demand"]["delta"] == [3, 12]
    util = series["svc_utilization"]
    assert util["a"] == pytest.approx([0.25, 0.5]) and util["b"] == pytest.approx([0.35, 0.4])  # ratios averaged
    res = body["resampling"]
    assert res["resampled"] is True and res["binMinutes"] == 60 and "svc_utilization" in res["averaged"]
    assert [(r["runId"], r["binsPerBin"], r["firstBin"]) for r in res["runs"]] == [(a, 4, 0), (b, 1, 0)]
    assert "2025-01-01 00:00 – 2025-01-01 02:00 UTC" in res["statement"]
    assert "flows (entities per bin) are summed" in res["statement"]

    # the same through the several-runs form, B as the baseline
    many = client.get("/v1/runs/compare", params={"run": [a, b], "baseline": b}).json()
    assert by_id(many)["demand"]["deltas"] == {a: [3, 12]} and many["grid"]["bins"] == 2


def test_runs_that_share_no_time_span_are_a_409_problem(client: httpx.Client) -> None:
    a = run(client, hello([1, 2, 3, 4], "2025-01-01T00:00:00Z"))
    b = run(client, hello([1, 2, 3, 4], "2025-01-02T00:00:00Z"))
    resp = client.get("/v1/runs/compare", params={"a": a, "b": b})
    assert resp.status_code == 409 and resp.headers["content-type"].startswith(PROBLEM)
    assert "share no time span" in resp.json()["detail"] and a in resp.json()["detail"]


def test_the_run_detail_answers_the_grid_with_its_start(client: httpx.Client) -> None:
    rid = run(client, hello([1, 2], "2025-03-04T05:00:00Z"))
    assert client.get(f"/v1/runs/{rid}").json()["grid"]["startTimeUtc"] == "2025-03-04T05:00:00Z"
    plain = run(client, hello([1, 2]))
    assert client.get(f"/v1/runs/{plain}").json()["grid"]["startTimeUtc"] is None
