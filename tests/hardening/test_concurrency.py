"""
Several processes writing to one data directory at the same moment: the
registry index (SQLite, WAL) loses no run, and Sim's store gives every writer
a complete folder of its own or a clean share of an identical one.
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from tests.hardening.servers import HELLO, engine

from flowtime.artifacts import layout
from flowtime.artifacts.registry import INDEX_FILE, ArtifactQuery, Registry
from flowtime.sim.store import ModelStore, NamedStore

PROCESSES = 4
RUNS_EACH = 25

# Imports first, then wait for the go file: every process starts writing at once.
WRITER = """
import sys, time
from pathlib import Path
from flowtime.artifacts.registry import Registry
from flowtime.artifacts.writer import write_run
from flowtime.engine import compile_model, evaluate
from flowtime.model.load import load_model

root, go, runs, model = Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3]), Path(sys.argv[4])
loaded = load_model(model.read_text(), "model.yaml")
graph = compile_model(loaded.model)
registry = Registry(root)
deadline = time.monotonic() + 300
while not go.exists() and time.monotonic() < deadline:
    time.sleep(0.005)
for i in range(runs):
    record = write_run(loaded, evaluate(graph, seed=i), root)
    registry.add(record.run_id)
    if i % 10 == 9:
        registry.sync()
"""

REINDEXER = """
import sys, time
from pathlib import Path
from flowtime.artifacts.registry import Registry

root, go, stop = Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3])
registry = Registry(root)
deadline = time.monotonic() + 300  # never outlive a test that failed to say stop
while not go.exists() and time.monotonic() < deadline:
    time.sleep(0.005)
while not stop.exists() and time.monotonic() < deadline:
    registry.rebuild()
    registry.sync()
    registry.count()
"""

SIM_WRITER = """
import json, sys, time
from pathlib import Path
from flowtime.sim.catalog import Catalog
from flowtime.sim.workspace import Workspace

data, go, params, name = Path(sys.argv[1]), Path(sys.argv[2]), json.loads(sys.argv[3]), sys.argv[4]
workspace = Workspace(Catalog.load(None), data)
deadline = time.monotonic() + 300
while not go.exists() and time.monotonic() < deadline:
    time.sleep(0.005)
for _ in range(5):
    generation = (workspace.export_named("support-backlog", name, params) if name
                  else workspace.generate("support-backlog", params))
print(generation.stored.path)
"""


class Processes:
    """Child Python processes, each killed at teardown if a test left it running."""

    def __init__(self) -> None:
        self.started: list[subprocess.Popen[str]] = []

    def start(self, script: str, *args: str) -> subprocess.Popen[str]:
        proc = subprocess.Popen([sys.executable, "-c", script, *args], stdin=subprocess.DEVNULL,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.started.append(proc)
        return proc

    def close(self) -> None:
        for proc in self.started:
            if proc.poll() is None:
                proc.kill()
            proc.communicate(timeout=30)


@pytest.fixture
def procs() -> Iterator[Processes]:
    p = Processes()
    try:
        yield p
    finally:
        p.close()


@pytest.fixture
def model_file(tmp_path: Path) -> str:
    path = tmp_path / "model.yaml"
    path.write_text(HELLO)
    return str(path)


def finish(proc: subprocess.Popen[str]) -> str:
    out, err = proc.communicate(timeout=240)
    assert proc.returncode == 0, err[-3000:]
    return out


def index_is_intact(root: Path) -> None:
    with sqlite3.connect(root / INDEX_FILE) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    conn.close()


def assert_registry_complete(root: Path, expected: int) -> None:
    index_is_intact(root)
    registry = Registry(root)
    folders = {p.name for p in root.iterdir() if layout.is_run_id(p.name)}
    listed = registry.query(ArtifactQuery(limit=1000))
    assert listed.total == expected == len(folders)
    assert {a.id for a in listed.artifacts} == folders
    for run_id in sorted(folders):
        assert registry.verify(run_id) == [], run_id
    assert [p.name for p in root.iterdir() if p.name.startswith(layout.TMP_PREFIX)] == []
    assert registry.rebuild() == expected
    assert registry.query(ArtifactQuery(limit=1000)).artifacts == listed.artifacts


def test_four_processes_writing_25_runs_each_lose_nothing(tmp_path: Path, procs: Processes,
                                                         model_file: str) -> None:
    root, go = tmp_path / "data", tmp_path / "go"
    writers = [procs.start(WRITER, str(root), str(go), str(RUNS_EACH), model_file)
               for _ in range(PROCESSES)]
    time.sleep(0.2)
    go.touch()
    for proc in writers:
        finish(proc)
    assert_registry_complete(root, PROCESSES * RUNS_EACH)


def test_writers_a_reindexer_and_the_http_service_together_lose_nothing(
        tmp_path: Path, procs: Processes, model_file: str) -> None:
    """Processes writing, a process rebuilding the index in a loop, and 20 runs over HTTP at once."""
    root, go, stop = tmp_path / "data", tmp_path / "go", tmp_path / "stop"
    root.mkdir()
    writers = [procs.start(WRITER, str(root), str(go), "15", model_file) for _ in range(PROCESSES)]
    reindexer = procs.start(REINDEXER, str(root), str(go), str(stop))
    with engine(root) as url:
        time.sleep(0.2)
        go.touch()

        def post(_: int) -> int:
            return httpx.post(f"{url}/v1/run", content=HELLO, timeout=120,
                              headers={"Content-Type": "text/yaml"}).status_code

        with ThreadPoolExecutor(8) as pool:
            assert set(pool.map(post, range(20))) == {200}
        for proc in writers:
            finish(proc)
        stop.touch()
        finish(reindexer)
        assert httpx.get(f"{url}/v1/runs").json()["total"] == PROCESSES * 15 + 20
    assert_registry_complete(root, PROCESSES * 15 + 20)


def test_concurrent_sim_writers_of_one_model_share_one_complete_folder(tmp_path: Path,
                                                                      procs: Processes) -> None:
    data, go = tmp_path / "sim", tmp_path / "go"
    writers = [procs.start(SIM_WRITER, str(data), str(go), json.dumps({"agents": 7}), "")
               for _ in range(PROCESSES)]
    time.sleep(0.2)
    go.touch()
    paths = {finish(p).strip() for p in writers}
    [stored] = ModelStore(data).models()
    assert paths == {str(stored.path)}
    assert stored.metadata["parameters"]["agents"] == 7
    assert sorted(p.name for p in stored.path.iterdir()) == [
        "issued.jsonl", "metadata.json", "model.yaml", "preview.svg", "provenance.json", "validation.json"]
    assert list(data.rglob(".tmp-*")) == []


def test_concurrent_named_versions_each_get_their_own_number(tmp_path: Path,
                                                             procs: Processes) -> None:
    data, go = tmp_path / "sim", tmp_path / "go"
    writers = [procs.start(SIM_WRITER, str(data), str(go), json.dumps({"agents": 10 + i}), "shared")
               for i in range(PROCESSES)]
    time.sleep(0.2)
    go.touch()
    for p in writers:
        finish(p)
    named = NamedStore(data / "named")
    versions = named.versions(named.get("shared").metadata["nameId"])
    agents = sorted(v.metadata["parameters"]["agents"] for v in versions)
    # Each writer's model is a version of its own; repeats of the latest content add none.
    assert set(agents) == {10, 11, 12, 13}
    assert [v.version for v in versions] == list(range(1, len(versions) + 1))
    assert all((v.path / "model.yaml").is_file() for v in versions)


# -- reads racing deletes -----------------------------------------------------------------------------

RACED_RUNS = 40
READERS = 8


def _read_paths(run_id: str, keep: str) -> list[str]:
    return [f"/v1/runs/{run_id}", f"/v1/runs/{run_id}/index", f"/v1/runs/{run_id}/series/served",
            f"/v1/runs/{run_id}/series/served?format=json", f"/v1/runs/{run_id}/export",
            f"/v1/runs/{run_id}/export?format=ndjson", f"/v1/artifacts/{run_id}",
            f"/v1/artifacts/{run_id}/files", f"/v1/artifacts/{run_id}/files/spec.yaml",
            f"/v1/artifacts/{run_id}/files/series/served@SERVED@DEFAULT.csv",
            f"/v1/runs/compare?a={run_id}&b={keep}"]


def test_reads_racing_deletes_answer_200_or_404_with_whole_bodies(tmp_path: Path) -> None:
    """
    Every read of a run - details, index, series, files, export, compare - answers
    200 with the whole body or 404 with a problem, whatever moment the run is
    deleted at; never a 500, never a cut-off download.
    """
    import random
    import threading

    from flowtime.artifacts.writer import write_run
    from flowtime.engine import compile_model, evaluate
    from flowtime.model.load import load_model

    root = tmp_path / "data"
    loaded = load_model(HELLO)
    graph = compile_model(loaded.model)
    keep, *runs = [write_run(loaded, evaluate(graph, seed=i), root).run_id for i in range(RACED_RUNS + 1)]
    with engine(root) as url, httpx.Client(base_url=url, timeout=60) as probe:
        # What a whole answer is, per route (the runs differ only in their ids and seeds).
        whole = {p.replace(keep, "{run}"): probe.get(p).content for p in _read_paths(keep, keep)}
        outcomes: list[tuple[str, int, str]] = []
        lock = threading.Lock()
        done = threading.Event()

        def reader(seed: int) -> None:
            rng = random.Random(seed)
            with httpx.Client(base_url=url, timeout=60) as c:
                while not done.is_set():
                    run_id = rng.choice(runs)
                    path = rng.choice(_read_paths(run_id, keep))
                    try:
                        resp = c.get(path)
                    except httpx.HTTPError as exc:
                        verdict = f"dropped: {type(exc).__name__}"
                        status = 0
                    else:
                        status = resp.status_code
                        verdict = _judge(resp, path, run_id, keep, whole)
                    with lock:
                        outcomes.append((path, status, verdict))

        def deleter() -> None:
            rng = random.Random(7)
            with httpx.Client(base_url=url, timeout=60) as c:
                for run_id in rng.sample(runs, len(runs)):
                    done.wait(rng.uniform(0.0, 0.03))
                    status = c.delete(f"/v1/runs/{run_id}").status_code
                    with lock:
                        outcomes.append((f"DELETE {run_id}", status, "ok" if status == 204 else "bad"))
            done.set()

        threads = [threading.Thread(target=reader, args=(k,)) for k in range(READERS)]
        threads.append(threading.Thread(target=deleter))
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=300)
        assert probe.get("/v1/runs").json()["total"] == 1
    reads = [o for o in outcomes if not o[0].startswith("DELETE")]
    assert len(reads) > 10 * RACED_RUNS
    assert {s for _, s, _ in reads} <= {200, 404}, sorted({(p, s) for p, s, _ in reads if s not in (200, 404)})[:5]
    assert [o for o in outcomes if o[2] != "ok"] == []


def _judge(resp: httpx.Response, path: str, run_id: str, keep: str, whole: dict[str, bytes]) -> str:
    if resp.status_code == 404:
        ok = resp.headers.get("content-type") == "application/problem+json" and resp.json()["status"] == 404
        return "ok" if ok else "404 without a problem body"
    if resp.status_code != 200:
        return f"status {resp.status_code}"
    if "content-length" in resp.headers and int(resp.headers["content-length"]) != len(resp.content):
        return "cut off"
    template = path.replace(run_id, "{run}").replace(keep, "{run}")
    expected = whole[template]
    if "/files/" in path or ("/series/served" in path and "format=json" not in path):
        return "ok" if resp.content == expected else "different bytes"
    if "/export" in path:  # same shape, other seed: the same number of whole lines
        same = resp.content.count(b"\n") == expected.count(b"\n") and resp.content.endswith(b"\n")
        return "ok" if same else "cut off"
    resp.json()  # parses whole
    return "ok"
