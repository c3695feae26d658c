"""Every example in examples/ runs through the CLI and gives the numbers its comment promises."""

from __future__ import annotations

import csv
import math
from pathlib import Path

import pytest
from typer.testing import CliRunner

from flowtime.cli import app
from flowtime.engine import compile_model
from flowtime.engine.schedule import levels
from flowtime.model.load import load_model

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def run_example(name: str, tmp_path: Path, *extra: str) -> dict[str, list[float]]:
    result = CliRunner().invoke(app, ["run", str(EXAMPLES / name), "--data-dir", str(tmp_path), "--quiet", *extra])
    assert result.exit_code == 0, result.output
    run_dir = tmp_path / "engine" / result.stdout.strip()
    out = {}
    for f in (run_dir / "series").glob("*@DEFAULT.csv"):  # totals; per-class files end @<Class>.csv
        with f.open() as fh:
            # an empty cell is an undefined bin of a derived metric (latency where nothing is served)
            out[f.name.split("@")[0]] = [float(r["value"]) if r["value"] else math.nan for r in csv.DictReader(fh)]
    return out


@pytest.mark.parametrize("name", sorted(p.name for p in EXAMPLES.glob("*.yaml")))
def test_every_example_runs(name: str, tmp_path: Path) -> None:
    assert run_example(name, tmp_path)


def test_hello_serves_eighty_percent(tmp_path: Path) -> None:
    assert run_example("hello.yaml", tmp_path)["served"] == [8.0] * 8


def test_backlog_queue_carries_work_over(tmp_path: Path) -> None:
    s = run_example("backlog-queue.yaml", tmp_path)
    # backlog: 0, 3, 13, 18, 11, 0, 0, 0 ; served: 12, 15, 15, 15, 15, 15, 2, 0
    assert s["backlog"] == [0, 3, 13, 18, 11, 0, 0, 0]
    assert s["served"] == [12, 15, 15, 15, 15, 15, 2, 0]


def test_service_queue_releases_in_waves_and_overflows_at_its_wip_limit(tmp_path: Path) -> None:
    s = run_example("service-queue.yaml", tmp_path)
    # waves in hours 1, 3, 5 release 25: depth 0+20, 20+20-25, 15+20 -> 35 capped at 30 (5 over), 30+5-25,
    # 10, 10-25 -> 0
    assert s["packing_gated_outflow"] == [0, 25, 0, 25, 0, 25]
    assert s["packing_queue"] == [20, 15, 30, 10, 10, 0]
    assert s["packing_overflow"] == [0, 0, 5, 0, 0, 0]


def test_classes_router_sends_each_class_to_its_line_and_writes_class_files(tmp_path: Path) -> None:
    s = run_example("classes-router.yaml", tmp_path)  # totals (the @DEFAULT files)
    # the hub serves 32 of 40 each hour, 8 wait more each hour; Airport is 10 of every 40 riders
    assert s["hub_out"] == [32] * 4 and s["hub_queue"] == [8, 16, 24, 32]
    assert s["airport_line"] == [8] * 4 and s["downtown_line"] == [24] * 4
    [run] = (tmp_path / "engine").glob("run_*")
    def part(name: str) -> list[float]:
        with (run / "series" / f"{name}.csv").open() as fh:
            return [float(r["value"]) for r in csv.DictReader(fh)]
    assert part("hub_queue@HUB_QUEUE@Airport") == [2, 4, 6, 8]
    assert part("hub_queue@HUB_QUEUE@Downtown") == [6, 12, 18, 24]
    assert part("airport_line@AIRPORT_LINE@Airport") == [8] * 4
    assert not (run / "series" / "airport_line@AIRPORT_LINE@Downtown.csv").exists()


def test_staged_pipeline_hands_work_on_an_hour_later(tmp_path: Path) -> None:
    s = run_example("staged-pipeline.yaml", tmp_path)
    # stage 1 is the backlog example; stage 2 gets served1 one hour later, stage 3 gets served2
    assert s["served1"] == [12, 15, 15, 15, 15, 15, 2, 0]
    assert s["served2"] == [0, 12, 12, 12, 12, 12, 12, 12]
    assert s["backlog2"] == [0, 0, 3, 6, 9, 12, 15, 5]
    assert s["served3"] == [0, 0, 10, 10, 10, 10, 10, 10]
    assert s["backlog3"] == [0, 0, 2, 4, 6, 8, 10, 12]
    assert s["work_in_progress"] == [0, 3, 18, 28, 26, 20, 25, 17]
    # the three stages read one another only in the past: one level, stepped together
    graph = compile_model(load_model((EXAMPLES / "staged-pipeline.yaml").read_text()).model)
    assert [[len(w) for w in lv.waves] for lv in levels(graph)] == [[], [3], []]


def test_it_system_success_rate(tmp_path: Path) -> None:
    assert run_example("it-system.yaml", tmp_path)["success_rate"] == [1, 1, 0.9, 1, 1, 1]


def test_pmf_monte_carlo_is_reproducible_with_a_seed(tmp_path: Path) -> None:
    a = run_example("pmf-monte-carlo.yaml", tmp_path / "a", "--seed", "7")
    b = run_example("pmf-monte-carlo.yaml", tmp_path / "b", "--seed", "7")
    assert a["served"] == b["served"]
    assert set(a["served"]) <= {1000.0, 900.0, 500.0}
    assert a["expected_served"] == [1000 * (0.85 + 0.09 + 0.025)] * 24
