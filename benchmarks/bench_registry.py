"""
Registry benchmarks over a data directory of many run folders.

    python benchmarks/bench_registry.py [--runs 100000] [--repeats 50] [--data-dir DIR]

Builds ``--runs`` real run folders (one written by ``write_run``, the rest
cloned from it with their own id, creation time, title, tags and provenance;
unchanged files are hard links), indexes them, and times what the API and CLI
ask: the first, middle and last page of every filter and sort, through the
registry and through ``GET /v1/runs`` on a live server. The baseline, measured
in the same run, is reading one page of 50 rows by id - the least any page can
cost. Target: every gated page <= 50 ms (median).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

from flowtime.artifacts import layout
from flowtime.artifacts.query import query_sql
from flowtime.artifacts.registry import INDEX_FILE, ArtifactQuery, Registry
from flowtime.artifacts.writer import write_run
from flowtime.engine import evaluate
from flowtime.model.load import load_model
from flowtime.model.provenance import Provenance

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from tests.servers import serve  # the same loopback server the tests use

TARGET_MS = 50.0
PAGE = 50
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
    """``n`` run folders under ``root``: template ``tpl-<i % 100>``, model ``model-<i>``, tag ``group-<i % 10>``."""
    loaded = load_model(MODEL)
    seed_id = write_run(loaded, evaluate(loaded.model), root,
                        provenance=Provenance.model_validate({"modelId": "model-0", "templateId": "tpl-0",
                                                              "parameters": {"agents": 0}})).run_id
    src = root / seed_id
    run = json.loads((src / layout.RUN_JSON).read_text())
    manifest = json.loads((src / layout.MANIFEST).read_text())
    prov = json.loads((src / layout.PROVENANCE).read_text())
    rewritten = (layout.RUN_JSON, layout.MANIFEST, layout.PROVENANCE)
    for i in range(n - 1, -1, -1):
        now = T0 + timedelta(seconds=i * 7)
        run_id = f"run_{now.strftime(layout.STAMP)}_{i:08x}"
        dest = root / run_id
        shutil.copytree(src, dest, copy_function=_link_or_copy, ignore=lambda _d, names: [
            x for x in names if x in rewritten])
        created = layout.utc_iso(now)
        meta = {"hasProvenance": True, "modelId": f"model-{i}", "templateId": f"tpl-{i % 100}"}
        run.update(runId=run_id, createdUtc=created, title=f"Scenario {i}",
                   tags=["bench", f"group-{i % 10}"])
        manifest.update(runId=run_id, createdUtc=created, provenance=meta)
        prov.update(modelId=meta["modelId"], templateId=meta["templateId"],
                    parameters={"agents": i % 13, "shift": f"s{i % 3}"})
        (dest / layout.RUN_JSON).write_text(json.dumps(run, indent=2))
        (dest / layout.MANIFEST).write_text(json.dumps(manifest, indent=2))
        (dest / layout.PROVENANCE).write_text(json.dumps(prov, indent=2))
    shutil.rmtree(src)


def _link_or_copy(src: str, dst: str) -> None:
    try:
        os.link(src, dst)
    except OSError:  # past the file system's links per file (65,000 on ext4)
        shutil.copy2(src, dst)


def timed(fn: Callable[[], Any], repeats: int) -> tuple[float, float]:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1000)
    times.sort()
    return statistics.median(times), times[int(0.95 * (len(times) - 1))]


def pages(name: str, q: ArtifactQuery, total: int) -> list[tuple[str, ArtifactQuery]]:
    """The first, middle and last page of ``q`` (``total`` rows match it)."""
    spots = {"first": 0, "middle": max(0, total // 2), "last": max(0, total - PAGE)}
    return [(f"{name}, {where} page", ArtifactQuery(**{**q.__dict__, "skip": skip}))
            for where, skip in spots.items()]


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=100_000)
    parser.add_argument("--repeats", type=int, default=50)
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
        for suffix in ("", "-journal", "-wal", "-shm"):
            (root / f"{INDEX_FILE}{suffix}").unlink(missing_ok=True)
        reg = Registry(root)
        t0 = time.perf_counter()
        indexed = reg.rebuild()
        rebuild_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        reg.check()
        check_ms = (time.perf_counter() - t0) * 1000
        t0 = time.perf_counter()
        reg.sync()
        sync_ms = (time.perf_counter() - t0) * 1000
        run_q = ArtifactQuery(type="run")
        filters = {
            "newest first": run_q,
            "oldest first": ArtifactQuery(type="run", sort_order="asc"),
            "by title": ArtifactQuery(type="run", sort_by="title", sort_order="asc"),
            "by size": ArtifactQuery(type="run", sort_by="size"),
            "by id": ArtifactQuery(type="run", sort_by="id"),
            "templateId": ArtifactQuery(type="run", template_id="tpl-42"),
            "modelId": ArtifactQuery(type="run", model_id="model-4242"),
            "tag group-3": ArtifactQuery(type="run", tags=("group-3",)),
            "tags group-3 or -4": ArtifactQuery(type="run", tags=("group-3", "group-4")),
            "created window": ArtifactQuery(type="run", created_after=T0 + timedelta(days=1),
                                            created_before=T0 + timedelta(days=3)),
            "search 'scenario 9'": ArtifactQuery(type="run", search="scenario 9"),
            "any type (/v1/artifacts)": ArtifactQuery(),
        }
        cases: list[tuple[str, Callable[[], Any]]] = []
        for name, q in filters.items():
            total = reg.query(ArtifactQuery(**{**q.__dict__, "limit": 0})).total
            for label, page_q in pages(name, q, total):
                cases.append((label, lambda page_q=page_q: reg.query(page_q)))
        newest = [a.id for a in reg.query(run_q).artifacts]

        def baseline() -> None:
            """50 rows read by id: what any page costs at least."""
            with sqlite3.connect(root / INDEX_FILE) as conn:
                conn.execute(f"SELECT * FROM artifacts WHERE id IN ({', '.join('?' * PAGE)})",
                             newest).fetchall()
            conn.close()

        from flowtime.api.engine import create_engine_app
        from flowtime.settings import EngineSettings

        with serve(create_engine_app(EngineSettings(data_dir=root)), "engine") as url, \
                httpx.Client(base_url=url) as client:
            for skip, where in ((0, "first"), (indexed // 2, "middle"), (indexed - PAGE, "last")):
                cases.append((f"GET /v1/runs, {where} page",
                              lambda skip=skip: client.get("/v1/runs", params={"skip": skip}).json()))
            cases.append(("GET /v1/runs?templateId, last",
                          lambda: client.get("/v1/runs", params={"templateId": "tpl-42", "skip": 950}).json()))
            base_ms, _ = timed(baseline, args.repeats)
            print(f"\nregistry over {indexed} runs: rebuild {rebuild_s:.1f} s, start-up check (quick_check) "
                  f"{check_ms:.0f} ms, sync with nothing new {sync_ms:.0f} ms; {args.repeats} repeats each")
            print(f"baseline: 50 rows read by id {base_ms:.2f} ms (median)\n")
            print(f"{'page':<42} {'median ms':>10} {'p95 ms':>8} {'x base':>7}  target")
            print("-" * 82)
            failed = False
            for name, fn in cases:
                med, p95 = timed(fn, args.repeats)
                ok = med <= TARGET_MS
                failed |= not ok
                print(f"{name:<42} {med:>10.2f} {p95:>8.2f} {med / base_ms:>7.1f}  "
                      f"<= {TARGET_MS:.0f} ms {'ok' if ok else 'MISSED'}")
        with sqlite3.connect(root / INDEX_FILE) as conn:
            print("\nplans (EXPLAIN QUERY PLAN of the page's ids):")
            for name, q in filters.items():
                print(f"  {name:<26} {' / '.join(query_sql(q).plan(conn))}")
        conn.close()
        if failed:
            raise SystemExit(1)
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
