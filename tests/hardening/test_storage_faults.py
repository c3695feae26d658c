"""
A full disk never leaves the registry inconsistent: reads keep working, writes
fail with a 507 problem and store nothing, and a delete frees the space even
when the index cannot be written.

The faults are real where the machine allows: a small tmpfs mounted by the test
(when it runs as root with mount permission) filled to the last byte, and
SQLite's own "database or disk is full" through ``PRAGMA max_page_count``.
Without mount permission, ENOSPC is injected at the writer's OS calls instead,
and the tests that are about what SQLite does on a really full disk skip.
"""

from __future__ import annotations

import errno
import os
import shutil
import sqlite3
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from tests.hardening.servers import HELLO, PROBLEM, engine

from flowtime.artifacts import layout, writer
from flowtime.artifacts.index import RunIndex
from flowtime.artifacts.registry import INDEX_FILE, ArtifactQuery, Registry
from flowtime.artifacts.writer import write_run
from flowtime.engine import evaluate
from flowtime.errors import StorageFull
from flowtime.model.load import load_model

BIG = """schemaVersion: 1
metadata: {title: Too big for the disk}
grid: {bins: 20000, binSize: 1, binUnit: minutes}
nodes:
  - {id: demand, kind: expr, expr: "10 + 0.5"}
  - {id: served, kind: expr, expr: "MIN(demand, 7)"}
"""


class Disk:
    """A data folder on its own small file system, which a test fills and frees."""

    def __init__(self, root: Path, *, real: bool, monkeypatch: pytest.MonkeyPatch) -> None:
        self.root = root
        self.real = real
        self._monkeypatch = monkeypatch
        self._filler = root.parent / f"filler-{uuid.uuid4().hex}"

    def fill(self) -> None:
        if not self.real:
            self._inject()
            return
        fd = os.open(self._filler, os.O_WRONLY | os.O_CREAT | os.O_APPEND)
        try:
            for size in (1 << 16, 1 << 12, 1):  # to the last byte
                try:
                    while True:
                        os.write(fd, b"\0" * size)
                except OSError as exc:
                    assert exc.errno == errno.ENOSPC
        finally:
            os.close(fd)

    def free(self) -> None:
        if self.real:
            self._filler.unlink()
        else:
            self._monkeypatch.undo()

    def free_bytes(self) -> int:
        return shutil.disk_usage(self.root).free

    def _inject(self) -> None:
        def no_space(*_: object, **__: object) -> None:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

        self._monkeypatch.setattr(writer, "_write_new", no_space)
        self._monkeypatch.setattr(writer, "_dump", no_space)


def _mount_tmpfs(where: Path) -> bool:
    if getattr(os, "geteuid", lambda: -1)() != 0 or shutil.which("mount") is None:
        return False
    where.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(where)],
                          capture_output=True)
    return done.returncode == 0


@pytest.fixture
def disk(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Disk]:
    mount = tmp_path / "fs"
    real = _mount_tmpfs(mount)
    if not real:
        mount.mkdir(exist_ok=True)
    try:
        yield Disk(mount / "data", real=real, monkeypatch=monkeypatch)
    finally:
        if real:
            subprocess.run(["umount", "-l", str(mount)], check=False)


@pytest.fixture
def real_disk(disk: Disk) -> Disk:
    if not disk.real:
        pytest.skip("needs a real full file system (a tmpfs mounted by the test: run as root with "
                    "mount permission); what SQLite does there cannot be injected faithfully")
    return disk


def post(c: httpx.Client, text: str = HELLO) -> httpx.Response:
    return c.post("/v1/run", content=text, headers={"Content-Type": "text/yaml"})


def run_folders(root: Path) -> list[str]:
    return sorted(p.name for p in root.iterdir() if layout.is_run_id(p.name) or
                  p.name.startswith(layout.TMP_PREFIX))


def assert_507(resp: httpx.Response) -> None:
    assert resp.status_code == 507, resp.text
    assert resp.headers["content-type"] == PROBLEM
    body = resp.json()
    assert body["title"] == "Insufficient storage"
    assert "is full" in body["detail"] and " stored" in body["detail"]


# -- file writes: ENOSPC ----------------------------------------------------------------------


def test_a_run_that_does_not_fit_is_a_507_and_leaves_nothing_behind(disk: Disk) -> None:
    with engine(disk.root) as url, httpx.Client(base_url=url, timeout=60) as c:
        first = post(c).json()["runId"]
        disk.fill()
        assert_507(post(c, BIG))
        assert run_folders(disk.root) == [first]  # no half run, no temp folder
        assert [r["id"] for r in c.get("/v1/runs").json()["runs"]] == [first]
        disk.free()
        again = post(c, BIG)
        assert again.status_code == 200
        assert c.get("/v1/runs").json()["total"] == 2


# -- reads and deletes on a really full disk -------------------------------------------------


def test_reads_keep_working_while_the_disk_is_full(real_disk: Disk) -> None:
    with engine(real_disk.root) as url, httpx.Client(base_url=url, timeout=60) as c:
        made = [post(c).json()["runId"] for _ in range(3)]
        real_disk.fill()
        listed = c.get("/v1/runs")
        assert listed.status_code == 200 and listed.json()["total"] == 3
        assert c.get("/v1/healthz").json()["runCount"] == 3
        for run_id in made:
            for path in (f"/v1/runs/{run_id}", f"/v1/runs/{run_id}/series/served",
                         f"/v1/runs/{run_id}/export", f"/v1/artifacts/{run_id}",
                         f"/v1/artifacts/{run_id}/files/spec.yaml", "/v1/artifacts?search=hardening",
                         f"/v1/runs/compare?a={made[0]}&b={run_id}"):
                assert c.get(path).status_code == 200, path
    # A fresh start on the full disk: start-up checks and syncs the index without writing.
    with engine(real_disk.root) as url:
        assert httpx.get(f"{url}/v1/healthz").json()["runCount"] == 3
        assert httpx.get(f"{url}/v1/runs").json()["total"] == 3


def test_an_index_left_in_wal_mode_is_still_read_on_a_full_disk(real_disk: Disk) -> None:
    """Indexes of earlier releases are in WAL mode, whose readers must write a -shm file."""
    with engine(real_disk.root) as url:
        made = httpx.post(f"{url}/v1/run", content=HELLO, headers={"Content-Type": "text/yaml"}
                          ).json()["runId"]
    conn = sqlite3.connect(real_disk.root / INDEX_FILE)
    assert conn.execute("PRAGMA journal_mode = WAL").fetchone() == ("wal",)
    conn.close()
    real_disk.fill()
    assert [a.id for a in Registry(real_disk.root).query().artifacts] == [made]
    with engine(real_disk.root) as url:
        assert [r["id"] for r in httpx.get(f"{url}/v1/runs").json()["runs"]] == [made]


def test_delete_frees_the_space_on_a_full_disk(real_disk: Disk) -> None:
    with engine(real_disk.root) as url, httpx.Client(base_url=url, timeout=60) as c:
        keep = post(c).json()["runId"]
        doomed = post(c, BIG.replace("bins: 20000", "bins: 5000")).json()["runId"]
        size = sum(p.stat().st_size for p in (real_disk.root / doomed).rglob("*") if p.is_file())
        real_disk.fill()
        before = real_disk.free_bytes()
        assert c.delete(f"/v1/runs/{doomed}").status_code == 204
        assert real_disk.free_bytes() >= before + size // 2
        assert run_folders(real_disk.root) == [keep]
        assert [r["id"] for r in c.get("/v1/runs").json()["runs"]] == [keep]
        assert c.get(f"/v1/runs/{doomed}").status_code == 404


# -- the index: SQLite's own "database or disk is full" ---------------------------------------


def cap_index(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every index connection may not grow the file: SQLite answers SQLITE_FULL."""
    connect = RunIndex._connect

    def capped(self: RunIndex, uri: str | None = None) -> sqlite3.Connection:
        conn = connect(self, uri)
        pages = conn.execute("PRAGMA page_count").fetchone()[0]
        conn.execute(f"PRAGMA max_page_count = {max(pages, 1)}")
        return conn

    monkeypatch.setattr(RunIndex, "_connect", capped)


@pytest.fixture
def capped_index(monkeypatch: pytest.MonkeyPatch) -> None:
    cap_index(monkeypatch)


def _long_title_run(root: Path) -> writer.RunRecord:
    # A row several pages long: it cannot fit in the free space of existing pages.
    loaded = load_model(f"schemaVersion: 1\nmetadata: {{title: '{'x' * 20000}'}}\n"
                        "grid: {bins: 2, binSize: 1, binUnit: hours}\n"
                        "nodes:\n  - {id: a, values: [1, 2]}\n")
    return write_run(loaded, evaluate(loaded.model), root)


def test_a_run_the_index_cannot_take_is_removed_again(tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """Never on disk but unlisted (a client retrying would make duplicates)."""
    registry = Registry(tmp_path)
    first = _long_title_run(tmp_path)
    assert registry.register(first) is not None
    cap_index(monkeypatch)
    second = _long_title_run(tmp_path)
    with pytest.raises(StorageFull, match=r"run index .* is full; nothing was stored"):
        registry.register(second)
    assert run_folders(tmp_path) == [first.run_id]
    page = registry.query()
    assert (page.total, [a.id for a in page.artifacts]) == (1, [first.run_id])
    assert registry.get(first.run_id).id == first.run_id  # reads go on under the cap
    monkeypatch.undo()
    third = _long_title_run(tmp_path)
    assert registry.register(third) is not None
    assert registry.count() == 2


def test_a_posted_run_whose_index_row_does_not_fit_is_a_507_and_leaves_nothing(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    long_title = HELLO.replace("Hardening hello", "x" * 20000)
    with engine(tmp_path) as url, httpx.Client(base_url=url, timeout=60) as c:
        first = post(c).json()["runId"]
        cap_index(monkeypatch)
        assert_507(post(c, long_title))
        assert run_folders(tmp_path) == [first]
        assert [r["id"] for r in c.get("/v1/runs").json()["runs"]] == [first]
        monkeypatch.undo()
        assert post(c, long_title).status_code == 200
        assert c.get("/v1/runs").json()["total"] == 2


@pytest.mark.usefixtures("capped_index")
def test_a_reused_deterministic_run_is_kept_when_the_index_is_full(tmp_path: Path) -> None:
    loaded = load_model(HELLO)
    made = write_run(loaded, evaluate(loaded.model), tmp_path, deterministic_id=True)
    (tmp_path / INDEX_FILE).unlink(missing_ok=True)
    again = write_run(loaded, evaluate(loaded.model), tmp_path, deterministic_id=True)
    assert again.reused and again.run_id == made.run_id
    with pytest.raises(StorageFull):
        Registry(tmp_path).register(again)
    assert (tmp_path / made.run_id / layout.MANIFEST).is_file()  # it existed before: kept


@pytest.mark.usefixtures("capped_index")
def test_reads_answer_under_a_full_index(tmp_path: Path) -> None:
    made = [write_run(load_model(HELLO), evaluate(load_model(HELLO).model), tmp_path).run_id
            for _ in range(2)]
    with engine(tmp_path) as url, httpx.Client(base_url=url) as c:
        assert c.get("/v1/healthz").status_code == 200
        assert sorted(r["id"] for r in c.get("/v1/runs").json()["runs"]) == sorted(made)
        assert c.get(f"/v1/runs/{made[0]}").status_code == 200


# -- ghost rows: a row whose folder is gone -------------------------------------------------------


def _read_only_index(monkeypatch: pytest.MonkeyPatch) -> None:
    connect = RunIndex._connect

    def read_only(self: RunIndex, uri: str | None = None) -> sqlite3.Connection:
        conn = connect(self, uri)
        conn.execute("PRAGMA query_only = 1")
        return conn

    monkeypatch.setattr(RunIndex, "_connect", read_only)


def test_a_delete_whose_row_cannot_be_dropped_frees_the_space_and_leaves_no_listed_ghost(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with engine(tmp_path) as url, httpx.Client(base_url=url) as c:
        keep, doomed = post(c).json()["runId"], post(c).json()["runId"]
        _read_only_index(monkeypatch)
        assert c.delete(f"/v1/runs/{doomed}").status_code == 204
        assert run_folders(tmp_path) == [keep]  # the files are gone...
        with sqlite3.connect(tmp_path / INDEX_FILE) as conn:  # ...the row could not go
            assert conn.execute("SELECT COUNT(*) FROM artifacts WHERE id = ?", (doomed,)
                                ).fetchone() == (1,)
        conn.close()
        listed = c.get("/v1/runs").json()
        assert ([r["id"] for r in listed["runs"]], listed["total"]) == ([keep], 1)
        assert c.get(f"/v1/runs/{doomed}").status_code == 404
        assert c.get("/v1/artifacts", params={"search": doomed}).json()["total"] == 0
        monkeypatch.undo()
        assert c.delete(f"/v1/runs/{doomed}").status_code == 204  # the ghost row itself
        assert c.delete(f"/v1/runs/{doomed}").status_code == 404
        assert Registry(tmp_path).index.ids() == {keep}


def test_ghost_rows_are_dropped_when_a_listing_meets_them(tmp_path: Path) -> None:
    loaded = load_model(HELLO)
    made = [write_run(loaded, evaluate(loaded.model), tmp_path).run_id for _ in range(3)]
    registry = Registry(tmp_path)
    assert registry.rebuild() == 3
    shutil.rmtree(tmp_path / made[1])  # behind the registry's back
    page = registry.query(ArtifactQuery(limit=10))
    assert sorted(a.id for a in page.artifacts) == sorted([made[0], made[2]]) and page.total == 2
    assert registry.index.ids() == {made[0], made[2]}
