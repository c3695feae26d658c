"""
Sim benchmarks: generating the largest built-in template, in-process and over HTTP.

    python benchmarks/bench_sim.py [--quick]

"Largest" = the built-in template with the most nodes in its generated model.
Rows, each the median (p50) and p95 of many calls:

    render          template + parameters -> validated model + provenance (no files)
    generate+store  the service's work: render, quality report, preview.svg,
                    atomic write into the temporary store
    HTTP generate   POST /api/v1/templates/{id}/generate on a real uvicorn server
                    (loopback, keep-alive client), store included

Targets: in-process generate p50 <= 10 ms, HTTP p50 <= 20 ms.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import uvicorn

from flowtime.api.sim import create_sim_app
from flowtime.settings import SimSettings
from flowtime.sim.catalog import Catalog, builtin_templates
from flowtime.sim.render import render_template
from flowtime.sim.workspace import Workspace

TARGETS_MS = {"generate+store": 10.0, "HTTP generate": 20.0}


def timings(fn: Callable[[int], Any], repeats: int) -> list[float]:
    fn(-1)  # warm-up (imports, caches, first file-system touch)
    out = []
    for i in range(repeats):
        t0 = time.perf_counter()
        fn(i)
        out.append((time.perf_counter() - t0) * 1000)
    return out


def largest_template() -> tuple[str, int]:
    sizes = [(len(render_template(t).loaded.model.nodes), t.id) for t in builtin_templates()]
    nodes, template_id = max(sizes)
    return template_id, nodes


def serve(settings: SimSettings) -> tuple[uvicorn.Server, threading.Thread, str]:
    server = uvicorn.Server(uvicorn.Config(create_sim_app(settings), host="127.0.0.1", port=0,
                                           log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    return server, thread, f"http://127.0.0.1:{port}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    parser.add_argument("--quick", action="store_true", help="fewer repeats")
    args = parser.parse_args()
    repeats = 60 if args.quick else 400
    template_id, nodes = largest_template()
    catalog = Catalog.load()
    template = catalog.get(template_id)
    # Vary a parameter so every call makes a new model (no idempotent shortcut), cycling
    # through a fixed set so the store does not grow without bound.
    def params(i: int) -> dict[str, Any]:
        return {"safety_factor": 1.0 + (i % 50) / 100} if template_id == "supply-chain-three-tier" else {}

    rows: list[tuple[str, list[float]]] = []
    rows.append(("render", timings(lambda i: render_template(template, params(i)), repeats)))
    with tempfile.TemporaryDirectory() as tmp:
        ws = Workspace(catalog, Path(tmp) / "ws")
        rows.append(("generate+store", timings(lambda i: ws.generate(template_id, params(i)), repeats)))
        server, thread, url = serve(SimSettings(data_dir=Path(tmp) / "http"))
        try:
            with httpx.Client(base_url=url) as client:
                def post(i: int) -> None:
                    r = client.post(f"/api/v1/templates/{template_id}/generate",
                                    json={"parameters": params(i)})
                    r.raise_for_status()
                rows.append(("HTTP generate", timings(post, repeats)))
        finally:
            server.should_exit = True
            thread.join(timeout=10)

    print(f"template: {template_id} ({nodes} nodes), {repeats} calls per row")
    print(f"{'operation':<16}{'p50 ms':>9}{'p95 ms':>9}{'target':>9}  ok")
    ok = True
    for name, times in rows:
        p50 = statistics.median(times)
        p95 = statistics.quantiles(times, n=20)[18]
        target = TARGETS_MS.get(name)
        passed = target is None or p50 <= target
        ok &= passed
        shown = f"{target:.0f}" if target is not None else "-"
        print(f"{name:<16}{p50:>9.2f}{p95:>9.2f}{shown:>9}  {'yes' if passed else 'NO'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
