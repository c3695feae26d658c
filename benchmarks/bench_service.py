"""
Engine service throughput: ``POST /v1/run`` against ``flowtime serve engine``
with one worker and with two, under one client and under eight.

    python benchmarks/bench_service.py [--quick]

Both servers are real ``flowtime serve engine`` processes (``--workers 1`` and
``--workers 2``) on loopback, each over its own fresh data folder, running at
the same time; the clients are threads of this process, each with its own
keep-alive connection. A trial is a fixed number of runs shared among the
clients; the configurations take turns, trial by trial, and the table shows
the median throughput of each with ratios against the baseline row (one
worker, one client) measured in the same run.

The clients share the machine with the servers: on a 2-core machine, two
workers and eight client threads compete for the same two cores, so the
two-worker gain is bounded well below 2x there. Each kept-alive client stays
on the worker the kernel gave its connection to (SO_REUSEPORT hashing), so
eight clients are rarely split four and four, and the busier worker sets the
pace of a trial.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

# A model with enough work per run that the server, not the client, dominates:
# a pipeline of stages over a day of minutes, written as a run folder each time.
STAGES = 12
BINS = 1440


def model_text() -> str:
    lines = ["schemaVersion: 1", "metadata: {title: service benchmark}",
             f"grid: {{bins: {BINS}, binSize: 1, binUnit: minutes}}", "nodes:",
             f"  - {{id: arrivals, kind: const, values: [{', '.join(str(10 + i % 7) for i in range(BINS))}]}}"]
    previous = "arrivals"
    for k in range(STAGES):
        lines.append(f"  - {{id: stage_{k}, kind: expr, expr: \"MIN({previous}, {12 - k % 3}) + 0.5 * {previous}\"}}")
        previous = f"stage_{k}"
    return "\n".join(lines) + "\n"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Engine:
    """``flowtime serve engine --workers N`` in a child process over a temporary data folder."""

    def __init__(self, workers: int, root: Path) -> None:
        self.workers = workers
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.data = root / f"workers-{workers}"
        self.process = subprocess.Popen(
            [sys.executable, "-m", "flowtime", "serve", "engine", "--port", str(self.port), "--data-dir",
             str(self.data), "--workers", str(workers), "--log-level", "warning"], start_new_session=True)

    def wait_healthy(self) -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise SystemExit(f"serve engine --workers {self.workers} exited with {self.process.returncode}")
            try:
                if httpx.get(f"{self.url}/v1/healthz").status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise SystemExit(f"serve engine --workers {self.workers} was not healthy within 60 s")

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        with contextlib.suppress(ProcessLookupError):  # workers left behind by a supervisor that was killed
            os.killpg(self.process.pid, signal.SIGKILL)


def trial(url: str, clients: int, runs: int, body: str) -> float:
    """Runs per second for ``runs`` POST /v1/run shared among ``clients`` threads."""
    per_client = [runs // clients + (1 if i < runs % clients else 0) for i in range(clients)]
    start = threading.Barrier(clients + 1)
    failures: list[str] = []

    def client(n: int) -> None:
        with httpx.Client(base_url=url, timeout=120,
                          headers={"content-type": "application/yaml"}) as c:
            c.get("/v1/healthz")  # connect before the clock starts
            start.wait()
            for _ in range(n):
                r = c.post("/v1/run", params={"series": "false"}, content=body)
                if r.status_code != 200:
                    failures.append(f"{r.status_code} {r.text[:200]}")

    threads = [threading.Thread(target=client, args=(n,)) for n in per_client]
    for t in threads:
        t.start()
    start.wait()
    t0 = time.perf_counter()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - t0
    if failures:
        raise SystemExit(f"{len(failures)} runs failed, first: {failures[0]}")
    return runs / elapsed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    parser.add_argument("--quick", action="store_true", help="fewer and shorter trials")
    args = parser.parse_args()
    trials, runs = (3, 48) if args.quick else (7, 160)
    body = model_text()
    root = Path(tempfile.mkdtemp(prefix="flowtime-bench-service-"))
    engines = {1: Engine(1, root), 2: Engine(2, root)}
    try:
        for engine in engines.values():
            engine.wait_healthy()
        configs = [("1 worker, 1 client", engines[1], 1), ("1 worker, 8 clients", engines[1], 8),
                   ("2 workers, 8 clients", engines[2], 8)]
        for _, engine, clients in configs:  # warm-up: imports, caches, every worker touched
            trial(engine.url, clients, 2 * clients, body)
        results: dict[str, list[float]] = {name: [] for name, _, _ in configs}
        for _ in range(trials):
            for name, engine, clients in configs:
                results[name].append(trial(engine.url, clients, runs, body))
    finally:
        for engine in engines.values():
            engine.stop()
        shutil.rmtree(root, ignore_errors=True)

    medians = {name: statistics.median(v) for name, v in results.items()}
    base = medians["1 worker, 1 client"]
    print(f"POST /v1/run ({STAGES + 1} nodes x {BINS} bins, run folder written, series=false); "
          f"{runs} runs per trial, median of {trials} trials; {os.cpu_count()} CPU cores")
    print(f"{'configuration':<22}{'runs/s':>9}{'min':>9}{'max':>9}{'vs baseline':>13}")
    for name, values in results.items():
        print(f"{name:<22}{medians[name]:>9.1f}{min(values):>9.1f}{max(values):>9.1f}"
              f"{medians[name] / base:>12.2f}x")
    print(f"2 workers vs 1 worker, 8 clients: {medians['2 workers, 8 clients'] / medians['1 worker, 8 clients']:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
