"""
Registry benchmarks over a data directory of many run folders.

    python benchmarks/bench_registry.py [--runs 10000] [--repeats 200] [--data-dir DIR]

Builds ``--runs`` real run folders (one written by ``write_run``, the rest
cloned from it with their own id, creation time, title, tags and provenance),
indexes them, and times the queries the API and CLI make. Targets: listing the
newest page and a templateId query answer in <= 50 ms (median).
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from flowtime.artifacts import layout
from flowtime.artifacts.registry import INDEX_FILE, ArtifactQuery, Registry
from flowtime.artifacts.writer import write_run
from flowtime.engine import evaluate
from flowtime.model.load import load_model
from flowtime.model.provenance import Provenance

TARGET_MS = 50.0
T0 = datetime(2025, 1, 1, tzinfo=UTC)
VALUES = ", ".join(str(i) for i in range(24))
MODEL = f"""schemaVersion: 1
metadata: {{title: Benchmark, tags: [bench]}}
grid: {{bins: 24, binSize: 1, binUnit: hours}}
nodes:
  - {{id: demand, values: [{VALUES}]}}
  - {{id: served, kind: expr, expr: "MIN(demand, 12)"}}
"""


def build(root: Path, n: int) -> None:
    """``n`` run folders under ``root``: template ``tpl-<i % 100>``, model ``model-<i>``."""
    loaded = load_model(MODEL)
    seed_id = write_run(loaded, evaluate(loaded.model), root,
                        provenance=Provenance.model_validate({"modelId": "model-0",
                                                              "templateId": "tpl-0"})).run_id
    src = root / seed_id
    run = json.loads((src / layout.RUN_JSON).read_text())
    manifest = json.loads((src / layout.MANIFEST).read_text())
    for i in range(n - 1, -1, -1):
        now = T0 + timedelta(seconds=i * 7)
        run_id = f"run_{now.strftime(layout.STAMP)}_{i:08x}"
        dest = root / run_id
        shutil.copytree(src, dest)
        created = layout.utc_iso(now)
        prov = {"hasProvenance": True, "modelId": f"model-{i}", "templateId": f"tpl-{i % 100}"}
        run.update(runId=run_id, createdUtc=created, title=f"Scenario {i}",
                   tags=["bench", f"group-{i % 10}"])
        manifest.update(runId=run_id, createdUtc=created, provenance=prov)
        (dest / layout.RUN_JSON).write_text(json.dumps(run, indent=2))
        (dest / layout.MANIFEST).write_text(json.dumps(manifest, indent=2))
    shutil.rmtree(src)


def timed(fn: Callable[[], Any], repeats: int) -> tuple[float, float]:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1000)
    times.sort()
    return statistics.median(times), times[int(0.95 * (len(times) - 1))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=10_000)
    parser.add_argument("--repeats", type=int, default=200)
    parser.add_argument("--data-dir", type=Path, default=None,
                        help="Reuse (or create) this directory instead of a temporary one.")
    args = parser.parse_args()
    tmp = None
    root = args.data_dir
    if root is None:
        tmp = tempfile.mkdtemp(prefix="flowtime-bench-registry-")
        root = Path(tmp)
    try:
        root.mkdir(parents=True, exist_ok=True)
        if not any(layout.is_run_id(p.name) for p in root.iterdir()):
            t0 = time.perf_counter()
            build(root, args.runs)
            print(f"built {args.runs} run folders in {time.perf_counter() - t0:.1f} s")
        (root / INDEX_FILE).unlink(missing_ok=True)
        reg = Registry(root)
        t0 = time.perf_counter()
        indexed = reg.rebuild()
        rebuild_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        reg.sync()
        sync_ms = (time.perf_counter() - t0) * 1000
        newest = reg.query(ArtifactQuery(limit=1)).artifacts[0].id
        cases: list[tuple[str, Callable[[], Any], bool]] = [
            ("list newest 50", lambda: reg.query(ArtifactQuery()), True),
            ("templateId = tpl-42", lambda: reg.query(ArtifactQuery(template_id="tpl-42")), True),
            ("modelId = model-4242", lambda: reg.query(ArtifactQuery(model_id="model-4242")),
             False),
            ("search 'scenario 99'", lambda: reg.query(ArtifactQuery(search="scenario 99")),
             False),
            ("tags any group-3", lambda: reg.query(ArtifactQuery(tags=("group-3",))), False),
            ("sort by title asc", lambda: reg.query(ArtifactQuery(sort_by="title",
                                                                  sort_order="asc")), False),
            ("deep page skip=9000", lambda: reg.query(ArtifactQuery(skip=9000)), False),
            ("created window", lambda: reg.query(ArtifactQuery(
                created_after=T0 + timedelta(hours=1), created_before=T0 + timedelta(hours=2))),
             False),
            ("get one run", lambda: reg.get(newest), False),
            ("count", reg.count, False),
            ("sync (nothing new)", reg.sync, False),
        ]
        print(f"\nregistry over {indexed} runs (rebuild {rebuild_s:.2f} s, first sync "
              f"{sync_ms:.1f} ms), {args.repeats} repeats each\n")
        print(f"{'query':<24} {'median ms':>10} {'p95 ms':>10}  target")
        print("-" * 58)
        failed = False
        for name, fn, gated in cases:
            med, p95 = timed(fn, args.repeats)
            verdict = ""
            if gated:
                ok = med <= TARGET_MS
                failed |= not ok
                verdict = f"<= {TARGET_MS:.0f} ms {'ok' if ok else 'MISSED'}"
            print(f"{name:<24} {med:>10.2f} {p95:>10.2f}  {verdict}")
        if failed:
            raise SystemExit(1)
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
