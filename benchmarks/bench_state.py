"""
The state API over a stored run (issue 13): a 50-node x 8,760-bin run (a year
of hours), written once, then asked for one bin and for its whole window.

    python benchmarks/bench_state.py [--quick]

Rows, each against a baseline measured in the same run - reading and parsing
that run's series CSVs (the tightest reader found: the bytes split once and
converted by NumPy, a little faster than ``np.loadtxt``'s C parser), which is
what answering without an opened run would cost:

* ``/state?bin=N`` - server time (snapshot + orjson, as the route does) and
  the HTTP round trip to a loopback uvicorn, p50 over bins spread across the run;
  target <= 5 ms.
* full-run ``/state_window`` (min/max downsampled to the documented caps) -
  server time and HTTP; target <= 100 ms server time.
* opening the run (reading every CSV, reloading the model, deriving the
  metrics, analysing): the one-off cost the cache saves (info).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import orjson

from flowtime.api.engine import create_engine_app
from flowtime.artifacts.registry import Registry
from flowtime.artifacts.snapshot import snapshot
from flowtime.artifacts.state import open_state
from flowtime.artifacts.window import state_window
from flowtime.artifacts.writer import write_run
from flowtime.engine import evaluate
from flowtime.model.load import load_model
from flowtime.settings import EngineSettings
from table import Row, Target, print_table
from timing import median_time

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from tests.servers import serve  # the same loopback server the tests use

_JSON = orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS


def chain_model(n: int, bins: int) -> str:
    """``n`` services with buffers in a line, each fed by its own hourly demand, with capacity and edges."""
    rng = np.random.default_rng(13)
    lines = ["schemaVersion: 1", "metadata: {title: State benchmark}",
             f"grid: {{bins: {bins}, binSize: 1, binUnit: hours, start: '2025-01-01T00:00:00Z'}}", "nodes:"]
    for i in range(n):
        demand = np.round(rng.uniform(2, 12, bins), 1)
        lines.append(f"  - {{id: demand_{i}, kind: const, values: [{', '.join(map(str, demand.tolist()))}]}}")
        lines.append(f"  - {{id: cap_{i}, kind: const, values: {round(float(rng.uniform(6, 9)), 2)}}}")
        lines.append(f"  - {{id: served_{i}, kind: expr, expr: \"MIN(demand_{i}, cap_{i})\"}}")
    lines += ["topology:", "  nodes:"]
    for i in range(n):
        lines += [f"    - id: Stage{i}", "      kind: serviceWithBuffer",
                  f"      semantics: {{arrivals: demand_{i}, served: served_{i}, capacity: cap_{i}, slaMin: 90}}",
                  "      initialCondition: {queueDepth: 0}"]
    lines.append("  edges:")
    for i in range(n - 1):
        lines.append(f"    - {{from: Stage{i}, to: Stage{i + 1}}}")
    lines += ["outputs:", "  - series: '*'"]
    return "\n".join(lines) + "\n"


def read_csvs(folder: Path) -> dict[str, np.ndarray]:
    """
    The baseline: every series CSV of the run - the model's and the derived metrics the
    writer stores, all a state answer draws on - read and parsed (bytes split once, NumPy converts).
    """
    out = {}
    for path in sorted((folder / "series").glob("*.csv")):
        # "t,value\n0,v0\n1,v1\n..." -> [t, value, 0, v0, 1, v1, ...]: every second cell from the fourth
        cells = np.array(path.read_bytes().replace(b"\n", b",").split(b",")[3::2])
        values = np.full(cells.size, np.nan)  # a derived series' undefined bin is an empty cell
        given = cells != b""
        values[given] = cells[given].astype(np.float64)
        out[path.name] = values
    return out


def p50(fn: Callable[[], Any], repeats: int) -> float:
    fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[1])
    ap.add_argument("--quick", action="store_true", help="fewer repeats")
    args = ap.parse_args()
    n, bins = 50, 8_760
    repeats = 7 if args.quick else 25
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="flowtime-bench-state-") as tmp:
        root = Path(tmp)
        loaded = load_model(chain_model(n, bins), "bench-state.yaml")
        run_id = write_run(loaded, evaluate(loaded.model), root).run_id
        registry = Registry(root)
        folder = registry.run_path(run_id)
        files = len(list((folder / "series").glob("*.csv")))
        baseline = median_time(lambda: read_csvs(folder), max(3, repeats // 3))
        open_s = median_time(lambda: open_state(registry, run_id), 3)
        state = open_state(registry, run_id)
        spots = iter(np.linspace(0, bins - 1, 97).astype(int).tolist() * 1000)
        bin_server = p50(lambda: orjson.dumps(snapshot(state, next(spots)), option=_JSON), repeats * 8)
        window_server = p50(lambda: orjson.dumps(state_window(state), option=_JSON), repeats)
        window = state_window(state)
        size = len(orjson.dumps(window, option=_JSON))
        down = window["downsampled"]
        with serve(create_engine_app(EngineSettings(data_dir=root)), "engine") as url, \
                httpx.Client(base_url=url, timeout=60) as client:
            client.get(f"/v1/runs/{run_id}/state", params={"bin": 0}).raise_for_status()  # opens the run
            bin_http = p50(lambda: client.get(f"/v1/runs/{run_id}/state",
                                              params={"bin": next(spots)}).raise_for_status(), repeats * 8)
            window_http = p50(lambda: client.get(f"/v1/runs/{run_id}/state_window").raise_for_status(), repeats)
        series = len(state.ids)
        note = f"baseline: read + parse the run's {files} CSVs ({series} model series + derived, {bins} bins)"
        rows = [
            Row(f"/state?bin=N, {n} nodes, server time p50", bin_server, baseline, Target.within(5e-3), note),
            Row(f"/state?bin=N, {n} nodes, HTTP loopback p50", bin_http, baseline, Target.info(faster=True)),
            Row(f"/state_window whole run ({n} x {bins}), server", window_server, baseline, Target.within(0.1),
                f"downsampled: {down['bucketBins'] if down else 1} bins/bucket, {down['points'] if down else bins} "
                f"points per series, {size / 1e6:.1f} MB JSON"),
            Row(f"/state_window whole run ({n} x {bins}), HTTP", window_http, baseline, Target.info(faster=True)),
            Row("open the run (read, reload, derive, analyse)", open_s, baseline, Target.info(),
                "once per run: kept in the LRU cache"),
        ]
        print_table(rows)
    print(f"(NumPy {np.__version__}, Python {sys.version.split()[0]}; {time.perf_counter() - t0:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
