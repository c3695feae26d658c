"""
Crash safety: a process killed with SIGKILL in the middle of writing a run (or
a Sim model) leaves nothing half-written in any listing and nothing corrupt in
the registry index; the next start removes the temporary folder.

The writers stop at a test hook right before their atomic rename
(FLOWTIME_TEST_PAUSE_AT=before-rename writes FLOWTIME_TEST_PAUSE_MARKER and
sleeps), so the kill lands at the worst moment deterministically.
"""

from __future__ import annotations

import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
from tests.hardening.servers import HELLO, engine, sim

from flowtime.api.engine import TEMP_FOLDER_GRACE_SECONDS
from flowtime.artifacts import layout
from flowtime.artifacts.registry import INDEX_FILE, ArtifactQuery, Registry
from flowtime.sim.store import STALE_TEMP_SECONDS, ModelStore, NamedStore

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL is POSIX")

FLOWTIME = [sys.executable, "-m", "flowtime"]


@contextmanager
def paused(args: list[str], tmp_path: Path, point: str = "before-rename") -> Iterator[subprocess.Popen[bytes]]:
    """Start ``flowtime args`` with the pause hook armed; yields once it is paused mid-write."""
    marker = tmp_path / f"paused-{random.getrandbits(32):08x}"
    env = {**os.environ, "FLOWTIME_TEST_PAUSE_AT": point, "FLOWTIME_TEST_PAUSE_MARKER": str(marker)}
    proc = subprocess.Popen([*FLOWTIME, *args], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 60
        while not marker.exists():
            if proc.poll() is not None:
                raise AssertionError(f"writer ended before pausing: {proc.stderr.read()!r}")  # type: ignore[union-attr]
            assert time.monotonic() < deadline, "writer never reached the pause point"
            time.sleep(0.02)
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=30)
        if proc.stderr is not None:
            proc.stderr.close()


def kill9(proc: subprocess.Popen[bytes]) -> None:
    os.kill(proc.pid, signal.SIGKILL)
    assert proc.wait(timeout=30) == -signal.SIGKILL


def backdate(path: Path, seconds: float) -> None:
    when = time.time() - seconds
    os.utime(path, (when, when))


def index_is_intact(root: Path) -> None:
    with sqlite3.connect(root / INDEX_FILE) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    conn.close()


def temp_folders(root: Path) -> list[Path]:
    return sorted(p for p in root.iterdir() if p.name.startswith(layout.TMP_PREFIX))


# -- Engine runs ---------------------------------------------------------------------------------------


def test_a_run_killed_before_its_rename_is_never_listed(tmp_path: Path) -> None:
    root = tmp_path / "data" / "engine"  # the CLI writes runs to D/engine
    model = tmp_path / "model.yaml"
    model.write_text(HELLO)
    done = subprocess.run([*FLOWTIME, "run", str(model), "--data-dir", str(root.parent)], capture_output=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    with paused(["run", str(model), "--data-dir", str(root.parent)], tmp_path) as proc:
        [tmp] = temp_folders(root)
        assert (tmp / layout.MANIFEST).is_file()  # complete on disk, but not renamed into place
        kill9(proc)
    killed_id = tmp.name.removeprefix(layout.TMP_PREFIX).rsplit("-", 1)[0]
    assert layout.is_run_id(killed_id)

    registry = Registry(root)
    registry.sync()
    index_is_intact(root)
    [listed] = registry.query().artifacts
    assert listed.id != killed_id and registry.verify(listed.id) == []
    assert registry.rebuild() == 1
    with engine(root) as url, httpx.Client(base_url=url) as c:
        assert c.get("/v1/runs").json()["total"] == 1
        assert c.get(f"/v1/runs/{killed_id}").status_code == 404
        assert c.get(f"/v1/artifacts/{tmp.name}").status_code == 400  # not even a run id
        assert c.get("/v1/artifacts", params={"search": killed_id}).json()["total"] == 0


def test_the_next_start_removes_the_temporary_folder_of_a_killed_write(tmp_path: Path) -> None:
    root = tmp_path / "data" / "engine"  # the CLI writes runs to D/engine
    model = tmp_path / "model.yaml"
    model.write_text(HELLO)
    with paused(["run", str(model), "--data-dir", str(root.parent)], tmp_path) as proc:
        kill9(proc)
    [tmp] = temp_folders(root)
    # A young temp folder may belong to a write in progress in another process: spared.
    with engine(root) as url:
        assert httpx.get(f"{url}/v1/runs").json()["total"] == 0
    assert tmp.exists()
    backdate(tmp, TEMP_FOLDER_GRACE_SECONDS + 60)
    with engine(root) as url:
        assert httpx.get(f"{url}/v1/runs").json()["total"] == 0
    assert temp_folders(root) == []
    index_is_intact(root)


CHURN = """
import random, sys, time
from pathlib import Path
from flowtime.artifacts.registry import Registry
from flowtime.artifacts.writer import write_run
from flowtime.engine import compile_model, evaluate
from flowtime.model.load import load_model

root = Path(sys.argv[1])
loaded = load_model(Path(sys.argv[3]).read_text(), "model.yaml")
graph = compile_model(loaded.model)
registry = Registry(root)
rng = random.Random(int(sys.argv[2]))
deadline = time.monotonic() + 120  # the test kills it long before; never outlive a failed test
while time.monotonic() < deadline:
    record = write_run(loaded, evaluate(graph), root)
    registry.add(record.run_id)
    if rng.random() < 0.3:
        registry.delete(record.run_id)
    elif rng.random() < 0.1:
        registry.rebuild()
"""


def test_random_kills_of_busy_writers_never_corrupt_the_index(tmp_path: Path) -> None:
    """
    Writers that add, delete and re-index runs in a loop are killed at random
    moments, several times over: the index stays intact and, once synced, lists
    exactly the complete run folders, every one of which verifies.
    """
    root = tmp_path / "data"
    model = tmp_path / "model.yaml"
    model.write_text(HELLO)
    rng = random.Random(20261124)
    for cycle in range(4):
        procs = [subprocess.Popen([sys.executable, "-c", CHURN, str(root), str(cycle * 10 + i),
                                   str(model)], stdin=subprocess.DEVNULL, stderr=subprocess.PIPE)
                 for i in range(2)]
        try:
            deadline = time.monotonic() + 60
            while len(list(root.glob("run_*"))) < 3 * (cycle + 1):
                assert all(p.poll() is None for p in procs), procs[0].communicate()[1][-2000:]
                assert time.monotonic() < deadline, "writers made no progress"
                time.sleep(0.05)
            time.sleep(rng.uniform(0.0, 0.3))
            for p in procs:
                kill9(p)
        finally:
            for p in procs:
                if p.poll() is None:
                    p.kill()
                p.communicate(timeout=30)

        index_is_intact(root)
        registry = Registry(root)
        registry.sync()
        complete = {p.name for p in root.iterdir()
                    if layout.is_run_id(p.name) and (p / layout.MANIFEST).is_file()}
        listed = {a.id for a in registry.query(ArtifactQuery(limit=1000)).artifacts}
        assert listed == complete
        for run_id in listed:
            assert registry.verify(run_id) == [], run_id
    with engine(root) as url:
        assert httpx.get(f"{url}/v1/runs").json()["total"] == len(complete)


# -- Sim models ------------------------------------------------------------------------------------


def test_a_sim_model_killed_before_its_rename_is_never_listed(tmp_path: Path) -> None:
    data = tmp_path / "sim"
    with paused(["sim", "generate", "support-backlog", "--data-dir", str(data.parent), "-o",
                 str(tmp_path / "out.yaml")], tmp_path) as proc:
        parent = data / "models" / "support-backlog"
        [tmp] = [p for p in parent.iterdir() if p.name.startswith(".tmp-")]
        kill9(proc)
    hash_prefix = tmp.name.removeprefix(".tmp-").rsplit("-", 1)[0]
    assert ModelStore(data).models() == []
    with sim(data) as url, httpx.Client(base_url=url) as c:
        assert c.get("/api/v1/models").json() == {"models": []}
        assert c.get(f"/api/v1/models/support-backlog/{hash_prefix}").status_code == 404
        assert c.get("/api/v1/models/support-backlog").status_code == 404
        assert c.get("/api/v1/healthz").json()["modelCount"] == 0
        # A fresh generation of the same model takes its place cleanly.
        gen = c.post("/api/v1/templates/support-backlog/generate", json={})
        assert gen.status_code == 200 and gen.json()["hash"] == hash_prefix
        assert [m["hash"] for m in c.get("/api/v1/models").json()["models"]] == [hash_prefix]


def test_a_named_sim_model_killed_before_its_rename_is_never_listed(tmp_path: Path) -> None:
    data = tmp_path / "sim"
    with paused(["sim", "new", "--template", "support-backlog", "--name", "crashy",
                 "--data-dir", str(data.parent)], tmp_path) as proc:
        kill9(proc)
    named = NamedStore(data / "named")
    assert named.models() == []
    with sim(data) as url:
        assert httpx.get(f"{url}/sim/models/crashy").status_code == 404


def test_the_next_sim_start_removes_temporary_folders_of_killed_writes(tmp_path: Path) -> None:
    data = tmp_path / "sim"
    with paused(["sim", "generate", "support-backlog", "--data-dir", str(data.parent), "-o",
                 str(tmp_path / "out.yaml")], tmp_path) as proc:
        kill9(proc)
    with paused(["sim", "new", "--template", "support-backlog", "--name", "crashy",
                 "--data-dir", str(data.parent)], tmp_path) as proc:
        kill9(proc)
    temps = [p for p in data.rglob(".tmp-*")]
    assert len(temps) == 2
    with sim(data):  # young: may belong to a live writer, spared
        pass
    assert all(p.exists() for p in temps)
    for p in temps:
        backdate(p, STALE_TEMP_SECONDS + 60)
    with sim(data) as url:
        assert httpx.get(f"{url}/api/v1/models").json() == {"models": []}
    assert list(data.rglob(".tmp-*")) == []
