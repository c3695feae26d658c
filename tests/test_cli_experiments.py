"""
``flowtime sweep|montecarlo|sensitivity|goalseek|optimize|fit``: the commands on the shipped example specs.

Hand computations used below:

* examples/service-queue.yaml (orders 20, 20, 20, 5, 0, 0; 25 packed in hours 1, 3, 5; the buffer holds L):
  L = 10: hour 0 keeps 10 of 20 (10 lost), hour 1 10 + 20 - 25 = 5, hour 2 5 + 20 = 25 keeps 10 (15 lost)
  -> 25 lost, peak queue 10; L = 20: hour 2 15 + 20 = 35 keeps 20 -> 15 lost, peak 20; L = 30: hour 2
  15 + 20 = 35 keeps 30 -> 5 lost, peak 30.
* examples/backlog-queue.yaml (arrivals 12, 18, 25, 20, 8, 4, 2, 0; capacity c): for 12 <= c <= 18 the
  backlog is 0, 18 - c, 43 - 2c, 63 - 3c, 71 - 4c, ... and peaks in hour 3 at 63 - 3c: c = 14 gives 21,
  the goal "peak 10" gives c = 53/3 = 17.666667.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from flowtime.cli import app

ROOT = Path(__file__).resolve().parents[1]
SPECS = ROOT / "examples" / "experiments"
SWEEP = str(SPECS / "wip-sweep.yaml")
ENV = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
ENV.pop("FLOWTIME_DASK_ADDRESS", None)


def invoke(*args: str, input: str | None = None) -> object:
    return CliRunner().invoke(app, list(args), input=input, env={"FLOWTIME_DASK_ADDRESS": ""})


def cli(*args: str, input: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "flowtime", *args], input=input, capture_output=True, text=True,
                          env=ENV, cwd=ROOT, timeout=120)


def mc_spec(replications: int = 40) -> str:
    return json.dumps({"kind": "montecarlo", "seed": 3, "model": str(ROOT / "examples" / "backlog-queue.yaml"),
                       "parameters": [{"target": "capacity", "distribution": {"kind": "uniform", "low": 12,
                                                                               "high": 18}}],
                       "metrics": [{"name": "peak", "series": "backlog", "aggregate": "max"}],
                       "capture": ["backlog"], "settings": {"replications": replications}})


def test_sweep_prints_the_hand_computed_overflow_for_each_wip_limit() -> None:
    r = invoke("sweep", SWEEP)
    assert r.exit_code == 0, r.stderr  # type: ignore[attr-defined]
    lines = r.stdout.splitlines()  # type: ignore[attr-defined]
    assert lines[0].startswith(f"sweep of {ROOT / 'examples' / 'service-queue.yaml'}: 3 points")
    assert lines[1].split() == ["point", "wipLimit", "overflow", "peakQueue"]
    assert [line.split() for line in lines[2:5]] == [["0", "10", "25", "10"], ["1", "20", "15", "20"],
                                                      ["2", "30", "5", "30"]]


def test_json_is_the_only_thing_on_stdout_and_holds_the_table() -> None:
    r = invoke("sweep", SWEEP, "--json")
    data = json.loads(r.stdout)  # type: ignore[attr-defined]
    assert data["kind"] == "sweep" and data["points"] == 3
    assert data["table"] == {"columns": ["wipLimit", "overflow", "peakQueue"],
                             "rows": [[10.0, 25.0, 10.0], [20.0, 15.0, 20.0], [30.0, 5.0, 30.0]]}


@pytest.mark.parametrize("suffix", [".csv", ".parquet", ".json"])
def test_output_files_read_back(tmp_path: Path, suffix: str) -> None:
    import pandas as pd

    out = tmp_path / "sub" / f"result{suffix}"
    r = invoke("sweep", SWEEP, "-o", str(out))
    assert r.exit_code == 0, r.stderr  # type: ignore[attr-defined]
    assert f"wrote {out}" in r.stdout  # type: ignore[attr-defined]
    if suffix == ".json":
        assert json.loads(out.read_text())["table"]["rows"][0] == [10.0, 25.0, 10.0]
        return
    frame = pd.read_csv(out) if suffix == ".csv" else pd.read_parquet(out)
    assert list(frame.columns) == ["point", "wipLimit", "overflow", "peakQueue"]
    assert frame["overflow"].tolist() == [25.0, 15.0, 5.0]


def test_an_unknown_output_suffix_is_a_usage_error(tmp_path: Path) -> None:
    r = invoke("sweep", SWEEP, "-o", str(tmp_path / "out.xlsx"))
    assert r.exit_code == 2 and not (tmp_path / "out.xlsx").exists()  # type: ignore[attr-defined]


def _png_colours(path: Path) -> int:
    import matplotlib.image as mpimg
    import numpy as np

    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    pixels = mpimg.imread(path)
    return len(np.unique(pixels.reshape(-1, pixels.shape[-1]), axis=0))


def test_plots_of_a_sweep_and_of_monte_carlo_bands_are_real_pictures(tmp_path: Path) -> None:
    sweep_png, bands_png = tmp_path / "sweep.png", tmp_path / "deep" / "bands.png"
    assert invoke("sweep", SWEEP, "--plot", str(sweep_png)).exit_code == 0  # type: ignore[attr-defined]
    r = invoke("montecarlo", "-", "--plot", str(bands_png), input=mc_spec())
    assert r.exit_code == 0, r.stderr  # type: ignore[attr-defined]
    assert _png_colours(sweep_png) > 2 and _png_colours(bands_png) > 2  # axes, text, lines, shaded bands


def test_a_tornado_is_drawn_for_local_sensitivity(tmp_path: Path) -> None:
    png = tmp_path / "tornado.png"
    r = invoke("sensitivity", str(SPECS / "backlog-sensitivity.yaml"), "--plot", str(png))
    assert r.exit_code == 0, r.stderr  # type: ignore[attr-defined]
    assert _png_colours(png) > 2
    # demand x0.9 / x1.1: peak 63 * 0.9 - 45 = 11.7, 63 * 1.1 - 45 = 24.3 around 18 -> -6.3 / +6.3
    assert ["demand", "-6.3", "6.3"] in [line.split() for line in r.stdout.splitlines()]  # type: ignore[attr-defined]


def test_bands_need_a_captured_series_before_anything_runs(tmp_path: Path) -> None:
    spec = json.loads(mc_spec())
    del spec["capture"]
    proc = cli("montecarlo", "-", "--plot", str(tmp_path / "b.png"), input=json.dumps(spec))
    assert proc.returncode == 1 and proc.stderr.startswith("error: capture: --plot draws the bands")


def test_the_spec_can_come_from_stdin_with_the_model_given_by_option() -> None:
    spec = {"parameters": [{"target": "topology.Packing.wipLimit", "values": [20]}],
            "metric": {"series": "packing_overflow", "aggregate": "sum"}}  # no kind: the command gives it
    r = invoke("sweep", "-", "--model", str(ROOT / "examples" / "service-queue.yaml"), "--json",
               input=json.dumps(spec))
    assert json.loads(r.stdout)["table"]["rows"] == [[20.0, 15.0]]  # type: ignore[attr-defined]


def test_set_edits_a_const_node_before_the_experiment() -> None:
    spec = {"model": "examples/backlog-queue.yaml", "parameters": [{"target": "arrivals", "mode": "scale",
                                                                    "values": [1]}],
            "metric": {"series": "backlog", "aggregate": "max"}}
    proc = cli("sweep", "-", "--set", "capacity=14", "--json", input=json.dumps(spec))
    assert json.loads(proc.stdout)["table"]["rows"] == [[1.0, 21.0]]  # 63 - 3 * 14
    bad = cli("sweep", "-", "--set", "backlog=3", input=json.dumps(spec))
    assert bad.returncode == 1 and "set.backlog" in bad.stderr


def test_a_bad_spec_exits_1_with_one_line_per_spec_path() -> None:
    spec = json.loads(mc_spec())
    spec["kind"] = "sweep"
    del spec["settings"]
    spec["parameters"] = [{"target": "capacity", "range": {"low": 5, "high": 1, "steps": 3}}]
    spec["metrics"] = [{"series": "nope"}]
    proc = cli("sweep", "-", input=json.dumps(spec))
    assert proc.returncode == 1 and proc.stdout == ""
    lines = proc.stderr.splitlines()
    assert lines == [line for line in lines if line.startswith("error: ")]
    assert any(line.startswith("error: parameters[0].range.high: ") for line in lines), proc.stderr


def test_a_spec_of_another_kind_is_refused_naming_the_right_command() -> None:
    proc = cli("sweep", "-", input=mc_spec())
    assert proc.returncode == 1
    assert proc.stderr.strip() == ("error: kind: the spec's kind is 'montecarlo' but this is `flowtime sweep`; "
                                   "run it with `flowtime montecarlo`")


def test_goal_seek_and_fit_print_their_answers() -> None:
    seek = invoke("goalseek", str(SPECS / "backlog-goalseek.yaml"))
    assert "x: 17.666667" in seek.stdout.splitlines()  # type: ignore[attr-defined]  # 53/3
    fit = invoke("fit", str(SPECS / "backlog-fit.yaml"), "--json")  # observed CSV beside the spec
    assert json.loads(fit.stdout)["answer"]["parameters"]["staffing"] == pytest.approx(14.0, abs=1e-6)  # type: ignore[attr-defined]


def test_progress_lines_go_to_stderr_when_asked() -> None:
    r = invoke("sweep", SWEEP, "--progress", "--json")
    assert r.stderr.splitlines()[-1] == "sweep: 3/3 points"  # type: ignore[attr-defined]
    json.loads(r.stdout)  # type: ignore[attr-defined]


def test_dask_local_gives_the_same_json_as_in_process() -> None:
    here = cli("montecarlo", "-", "--json", input=mc_spec(60))
    dask = cli("montecarlo", "-", "--json", "--dask", "local", input=mc_spec(60))
    assert here.returncode == 0 and dask.returncode == 0, dask.stderr
    assert json.loads(dask.stdout) == json.loads(here.stdout)


def test_ctrl_c_cancels_the_experiment_and_exits_130(tmp_path: Path) -> None:
    model = tmp_path / "long.yaml"  # 10,000 bins: ~70 points a batch, so 100,000 points are ~1,400 batches
    model.write_text("schemaVersion: 1\ngrid: {bins: 10000, binSize: 1, binUnit: minutes}\n"
                     "nodes: [{id: a, values: 1}, {id: b, kind: expr, expr: 'a * 2 + 1'}]\n")
    spec = {"kind": "montecarlo", "seed": 1, "parameters": [{"target": "a", "range": {"low": 0, "high": 1}}],
            "metric": {"series": "b"}, "settings": {"replications": 100000}}
    proc = subprocess.Popen([sys.executable, "-m", "flowtime", "montecarlo", "-", "--model", str(model),
                             "--progress"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=ENV)
    assert proc.stdin is not None and proc.stderr is not None and proc.stdout is not None
    try:
        proc.stdin.write(json.dumps(spec))
        proc.stdin.close()
        first = proc.stderr.readline()  # the first tenth is done: the handler is installed
        assert first.startswith("montecarlo: ")
        proc.send_signal(signal.SIGINT)
        err, out = proc.stderr.read(), proc.stdout.read()
        assert proc.wait(timeout=60) == 130, err
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        proc.stderr.close()
        proc.stdout.close()
    assert "cancelled: experiment cancelled after" in err and out == ""


def test_run_starts_without_loading_the_experiment_commands() -> None:
    code = ("import sys\nfrom flowtime.cli import app\nfrom typer.testing import CliRunner\n"
            "CliRunner().invoke(app, ['run', '--help'])\n"
            "print(sorted(m for m in sys.modules if m.startswith(('flowtime.cli.experiments', "
            "'flowtime.experiments', 'pandas', 'matplotlib', 'rich.progress', 'scipy'))))\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=ENV)
    assert proc.stdout.strip() == "[]", proc.stderr


def test_global_sensitivity_is_drawn_as_index_bars(tmp_path: Path) -> None:
    png = tmp_path / "morris.png"
    spec = {"model": str(ROOT / "examples" / "backlog-queue.yaml"), "seed": 5,
            "parameters": [{"target": "arrivals", "mode": "scale", "range": {"low": 0.8, "high": 1.2}},
                           {"target": "capacity", "range": {"low": 12, "high": 18}}],
            "metric": {"name": "peak", "series": "backlog", "aggregate": "max"},
            "settings": {"method": "morris", "trajectories": 4}}
    r = invoke("sensitivity", "-", "--plot", str(png), input=json.dumps(spec))
    assert r.exit_code == 0, r.stderr  # type: ignore[attr-defined]
    assert "12 points evaluated" in r.stdout  # type: ignore[attr-defined]  # 4 trajectories x (2 + 1) points
    assert _png_colours(png) > 2
