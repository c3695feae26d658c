"""
UI page times with a big registry: every page should render in <= 300 ms of server time.

    python benchmarks/bench_ui.py [--runs 10000] [--repeats 20] [--data-dir DIR]

Fills an Engine data directory with ``--runs`` real run folders (the registry
benchmark's builder), starts Engine, Sim and UI as three processes the way
``flowtime up`` does, makes two real runs through the UI (generate -> run), then
requests each page ``--repeats`` times and reports the UI's ``Server-Timing``
(which includes the time spent waiting on Engine and Sim). Pass ``--data-dir``
to keep the folders between invocations (building 10,000 runs takes a while).
"""

from __future__ import annotations

import argparse
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).parent))

from bench_registry import build

TARGET_MS = 300.0
TEMPLATE = "commuter-rail"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def services(data_dir: Path) -> Iterator[str]:
    """Engine, Sim and UI as child processes; yields the UI's URL."""
    engine_port, sim_port, ui_port = free_port(), free_port(), free_port()
    base = [sys.executable, "-m", "flowtime", "serve"]
    log = ["--host", "127.0.0.1", "--log-level", "warning"]
    engine_url, sim_url = f"http://127.0.0.1:{engine_port}", f"http://127.0.0.1:{sim_port}"
    procs = [
        subprocess.Popen([*base, "engine", *log, "--port", str(engine_port), "--data-dir",
                          str(data_dir / "engine")]),
        subprocess.Popen([*base, "sim", *log, "--port", str(sim_port), "--data-dir", str(data_dir / "sim")]),
        subprocess.Popen([*base, "ui", *log, "--port", str(ui_port), "--engine-url", engine_url,
                          "--sim-url", sim_url]),
    ]
    try:
        for url in (f"{engine_url}/v1/healthz", f"{sim_url}/api/v1/healthz", f"http://127.0.0.1:{ui_port}/healthz"):
            deadline = time.monotonic() + 60
            while True:
                try:
                    if httpx.get(url, timeout=2).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                dead = [p.args[4] for p in procs if p.poll() is not None]
                if dead or time.monotonic() > deadline:
                    raise RuntimeError(f"{url} did not come up" + (f" ({dead} exited)" if dead else ""))
                time.sleep(0.1)
        yield f"http://127.0.0.1:{ui_port}"
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            p.wait(timeout=15)


def make_run(ui: httpx.Client, seats: int) -> str:
    """Generate a model through the UI and run it; returns the run id."""
    form = ui.get(f"/templates/{TEMPLATE}").text
    fields = dict(re.findall(r'name="([^"]+)" value="([^"]*)"', form))
    fields["seats_per_train"] = str(seats)
    page = ui.post(f"/templates/{TEMPLATE}/generate", data=fields)
    page.raise_for_status()
    model_hash = re.search(r'name="hash" value="([^"]+)"', page.text)
    assert model_hash, "no model hash on the generated-model page"
    token = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert token, "no CSRF token on the generated-model page"
    resp = ui.post("/runs/new", data={"templateId": TEMPLATE, "hash": model_hash.group(1),
                                      "csrf_token": token.group(1)})
    assert resp.status_code == 303, resp.text[:500]
    return str(resp.headers["location"]).rsplit("/", 1)[-1]


def server_ms(resp: httpx.Response) -> float:
    m = re.search(r"app;dur=([\d.]+)", resp.headers.get("server-timing", ""))
    return float(m.group(1)) if m else float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--runs", type=int, default=10_000)
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--data-dir", type=Path, default=None,
                        help="keep the data here (reused when it already holds enough runs)")
    args = parser.parse_args()

    temp = args.data_dir is None
    data_dir = Path(tempfile.mkdtemp(prefix="flowtime-bench-ui-")) if temp else args.data_dir
    engine_dir = data_dir / "engine"
    existing = len(list(engine_dir.glob("run_*"))) if engine_dir.exists() else 0
    if existing < args.runs:
        print(f"building {args.runs} runs in {engine_dir} ...", flush=True)
        t0 = time.perf_counter()
        shutil.rmtree(engine_dir, ignore_errors=True)
        engine_dir.mkdir(parents=True)
        build(engine_dir, args.runs)
        print(f"  done in {time.perf_counter() - t0:.1f} s", flush=True)
    try:
        with services(data_dir) as url, httpx.Client(base_url=url, timeout=120) as ui:
            t0 = time.perf_counter()
            ui.get("/runs").raise_for_status()  # first query may (re)build the index
            print(f"first /runs (index warm-up): {(time.perf_counter() - t0) * 1000:.0f} ms")
            a, b = make_run(ui, 120), make_run(ui, 100)
            pages = {
                "home": "/",
                "templates": "/templates",
                "template form": f"/templates/{TEMPLATE}",
                "runs (newest)": "/runs",
                "runs sorted by title": "/runs?sort=title&order=asc",
                "runs page 100": "/runs?page=100",
                "runs by template": "/runs?template=tpl-7",
                "runs search": "/runs?q=Scenario+42",
                "runs fragment": "/runs?page=2",
                "run detail": f"/runs/{a}",
                "compare": f"/compare?a={a}&b={b}",
                "run yaml": "/run-yaml",
            }
            print(f"\n{args.runs} runs in the registry; {args.repeats} requests per page; "
                  f"target <= {TARGET_MS:.0f} ms server time (p95)\n")
            print(f"{'page':<24}{'median ms':>11}{'p95 ms':>10}{'max ms':>10}  ok")
            worst = 0.0
            for name, path in pages.items():
                headers = {"X-Fragment": "1"} if name == "runs fragment" else {}
                ui.get(path, headers=headers)  # warm-up
                times = []
                for _ in range(args.repeats):
                    resp = ui.get(path, headers=headers)
                    resp.raise_for_status()
                    times.append(server_ms(resp))
                times.sort()
                p95 = times[int(0.95 * (len(times) - 1))]
                worst = max(worst, p95)
                ok = "yes" if p95 <= TARGET_MS else "NO"
                print(f"{name:<24}{statistics.median(times):>11.1f}{p95:>10.1f}{times[-1]:>10.1f}  {ok}")
            print(f"\nworst p95: {worst:.1f} ms ({'within' if worst <= TARGET_MS else 'OVER'} the target)")
    finally:
        if temp:
            shutil.rmtree(data_dir, ignore_errors=True)


if __name__ == "__main__":
    main()
