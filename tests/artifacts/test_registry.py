"""The registry: run folders are the truth, the SQLite index follows them."""

from __future__ import annotations

import json
import shutil
import sqlite3
import subprocess
import sys
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from flowtime.artifacts import registry as registry_module
from flowtime.artifacts.registry import (
    INDEX_FILE,
    ArtifactQuery,
    Registry,
    parse_series_csv,
    read_artifact,
)
from flowtime.artifacts.writer import write_run
from flowtime.engine import evaluate
from flowtime.errors import ArtifactError, RunNotFound
from flowtime.model.load import load_model
from flowtime.model.provenance import Provenance

T0 = datetime(2025, 1, 1, 12, 0, tzinfo=UTC)


def make_run(root: Path, values: tuple[float, ...] = (1, 2), *, title: str = "Run",
             tags: str = "[]", template: str | None = None, model_id: str = "m",
             minutes: int = 0, seed: int | None = None, deterministic: bool = False,
             parameters: dict[str, object] | None = None) -> str:
    text = (f"schemaVersion: 1\nmetadata: {{title: '{title}', tags: {tags}}}\n"
            f"grid: {{bins: {len(values)}, binSize: 1, binUnit: hours}}\n"
            f"nodes:\n  - {{id: a, values: {list(values)}}}\n"
            "  - {id: b, kind: expr, expr: a * 2}\n")
    loaded = load_model(text)
    prov = Provenance.model_validate({"modelId": model_id, "templateId": template,
                                      "parameters": parameters}) if template else None
    record = write_run(loaded, evaluate(loaded.model, seed=seed), root, provenance=prov,
                       deterministic_id=deterministic, now=T0 + timedelta(minutes=minutes))
    return record.run_id


def ids(reg: Registry, **query: object) -> list[str]:
    return [a.id for a in reg.query(ArtifactQuery(**query)).artifacts]  # type: ignore[arg-type]


def test_an_added_run_is_listed_with_every_column(tmp_path: Path) -> None:
    run_id = make_run(tmp_path, (1, 2, 3), title="Hello", tags="[x, y]", template="t1",
                      model_id="m1", seed=2**64 - 1,
                      parameters={"agents": 7, "name": "x", "curve": list(range(400))})
    reg = Registry(tmp_path)
    art = reg.add(run_id)
    assert art is not None
    page = reg.query()
    assert page.total == 1 and page.count == 1
    assert page.artifacts[0] == art
    assert art.to_json() == {
        "id": run_id, "type": "run", "created": "2025-01-01T12:00:00.000000Z", "title": "Hello",
        "tags": ["x", "y"], "templateId": "t1", "modelId": "m1",
        "scenarioHash": json.loads((tmp_path / run_id / "manifest.json").read_text())[
            "scenarioHash"],
        "seed": 2**64 - 1, "bins": 3, "binSize": 1, "binUnit": "hours", "seriesCount": 2,
        "totalSize": sum(p.stat().st_size for p in (tmp_path / run_id).rglob("*") if p.is_file()),
        # A parameter longer than 1 KiB as JSON stays in provenance.json only.
        "parameters": {"agents": 7, "name": "x"},
    }
    assert reg.get(run_id) == art
    assert reg.count() == 1


def test_only_complete_run_folders_are_ever_listed(tmp_path: Path) -> None:
    good = make_run(tmp_path)
    (tmp_path / "run_20250101T000000Z_00000001").mkdir()  # no manifest
    tmp = tmp_path / ".tmp-run_20250101T000000Z_00000002-abcd"
    tmp.mkdir()
    (tmp / "manifest.json").write_text("{}")
    (tmp_path / "not_a_run").mkdir()
    (tmp_path / "run_20250101T000000Z_00000003").write_text("a file")
    bad_json = tmp_path / "run_20250101T000000Z_00000004"
    bad_json.mkdir()
    (bad_json / "manifest.json").write_text("{half")
    (tmp_path / "run_20250101T000000Z_00000005").symlink_to(tmp_path / good)
    reg = Registry(tmp_path)
    assert reg.rebuild() == 1
    assert ids(reg) == [good]
    assert reg.sync().added == []
    assert reg.add("run_20250101T000000Z_00000001") is None
    assert reg.add("run_20250101T000000Z_00000005") is None
    assert ids(reg) == [good]
    with pytest.raises(RunNotFound):
        reg.run_path("run_20250101T000000Z_00000005")


def test_a_missing_index_is_rebuilt_with_the_same_listing(tmp_path: Path) -> None:
    made = [make_run(tmp_path, minutes=i, template="t") for i in range(5)]
    reg = Registry(tmp_path)
    before = reg.query()
    assert [a.id for a in before.artifacts] == made[::-1]
    (tmp_path / INDEX_FILE).unlink()
    assert Registry(tmp_path).query() == before
    (tmp_path / INDEX_FILE).unlink()
    assert reg.query() == before  # the same instance notices too


def test_an_index_of_an_older_schema_is_replaced(tmp_path: Path) -> None:
    run_id = make_run(tmp_path)
    Registry(tmp_path).count()
    with sqlite3.connect(tmp_path / INDEX_FILE) as conn:
        conn.execute("UPDATE meta SET value = '0' WHERE key = 'schema'")
        conn.execute("DELETE FROM artifacts")
    assert ids(Registry(tmp_path)) == [run_id]


def test_sync_reads_only_new_folders_and_drops_vanished_ones(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    a, b = make_run(tmp_path, minutes=1), make_run(tmp_path, minutes=2)
    reg = Registry(tmp_path)
    reg.rebuild()
    c = make_run(tmp_path, minutes=3)
    shutil.rmtree(tmp_path / a)
    read: list[str] = []

    def counting(folder: Path) -> object:
        read.append(folder.name)
        return read_artifact(folder)

    monkeypatch.setattr(registry_module, "read_artifact", counting)
    report = reg.sync()
    assert (report.added, report.removed) == ([c], [a])
    assert read == [c]
    assert ids(reg) == [c, b]


def test_get_indexes_a_folder_newer_than_the_index(tmp_path: Path) -> None:
    reg = Registry(tmp_path)
    reg.count()
    run_id = make_run(tmp_path)
    assert reg.get(run_id).id == run_id
    assert ids(reg) == [run_id]
    with pytest.raises(RunNotFound, match="not found"):
        reg.get("run_20200101T000000Z_00000000")


def test_deterministic_runs_are_indexed(tmp_path: Path) -> None:
    run_id = make_run(tmp_path, deterministic=True)
    assert run_id.startswith("run_deterministic_")
    assert ids(Registry(tmp_path)) == [run_id]


@pytest.fixture
def populated(tmp_path: Path) -> tuple[Registry, list[str]]:
    made = [
        make_run(tmp_path, (1,), title="Alpha", tags="[red]", template="tpl-a", model_id="m0",
                 minutes=0),
        make_run(tmp_path, (1, 2), title="beta", tags="[blue, red]", template="tpl-a",
                 model_id="m1", minutes=10),
        make_run(tmp_path, (1, 2, 3), title="Gamma", tags="[green]", template="tpl-b",
                 model_id="m2", minutes=20),
        make_run(tmp_path, (1, 2, 3, 4), title="delta", minutes=30),
    ]
    return Registry(tmp_path), made


def test_query_filters(populated: tuple[Registry, list[str]]) -> None:
    reg, (r0, r1, r2, r3) = populated
    assert ids(reg) == [r3, r2, r1, r0]
    assert ids(reg, type="run") == [r3, r2, r1, r0]
    assert ids(reg, type="RUN") == [r3, r2, r1, r0]
    assert ids(reg, type="model") == []
    assert ids(reg, template_id="tpl-a") == [r1, r0]
    assert ids(reg, template_id="TPL-A") == []
    assert ids(reg, template_id="tpl") == []
    assert ids(reg, model_id="m2") == [r2]
    assert ids(reg, template_id="tpl-a", model_id="m2") == []
    assert ids(reg, search="GAMM") == [r2]
    assert ids(reg, search="TPL-B") == [r2]
    assert ids(reg, search="blue") == [r1]
    assert ids(reg, search=r0[-8:]) == [r0]
    assert ids(reg, search="%") == []
    assert ids(reg, tags=("red",)) == [r1, r0]
    assert ids(reg, tags=("green", "blue")) == [r2, r1]
    assert ids(reg, tags=("Red",)) == []
    after = T0 + timedelta(minutes=10)
    assert ids(reg, created_after=after) == [r3, r2, r1]
    assert ids(reg, created_before=after) == [r1, r0]
    assert ids(reg, created_after=after, created_before=after) == [r1]
    assert ids(reg, created_after=after.replace(tzinfo=None)) == [r3, r2, r1]


def test_query_sorts_and_pages(populated: tuple[Registry, list[str]]) -> None:
    reg, (r0, r1, r2, r3) = populated
    assert ids(reg, sort_order="asc") == [r0, r1, r2, r3]
    assert ids(reg, sort_by="title", sort_order="asc") == [r0, r1, r3, r2]  # case-insensitive
    by_size = sorted(reg.query().artifacts, key=lambda a: (a.total_size, a.id), reverse=True)
    assert ids(reg, sort_by="size", sort_order="desc") == [a.id for a in by_size]
    assert ids(reg, sort_by="id", sort_order="asc") == sorted([r0, r1, r2, r3])
    page = reg.query(ArtifactQuery(limit=2, skip=1))
    assert (page.total, page.count, [a.id for a in page.artifacts]) == (4, 2, [r2, r1])
    assert reg.query(ArtifactQuery(limit=2, skip=3)).count == 1
    assert reg.query(ArtifactQuery(limit=0)).total == 4
    assert reg.query(ArtifactQuery(template_id="tpl-a", limit=1)).total == 2


def test_limit_is_capped_at_1000(tmp_path: Path) -> None:
    reg = Registry(tmp_path)
    reg.count()
    for i in range(1005):  # rows of folders that exist: rows without one are never listed
        (tmp_path / f"run_20250101T000000Z_{i:08x}").mkdir()
        (tmp_path / f"run_20250101T000000Z_{i:08x}" / "manifest.json").write_text("{}")
    with sqlite3.connect(tmp_path / INDEX_FILE) as conn:
        conn.executemany(
            "INSERT INTO artifacts (id, type, created, title, tags, series_count, total_size, "
            "search) VALUES (?, 'run', ?, 't', '[]', 0, 0, '')",
            [(f"run_20250101T000000Z_{i:08x}", f"2025-01-01T00:00:{i % 60:02d}.000000Z")
             for i in range(1005)])
    page = reg.query(ArtifactQuery(limit=5000))
    assert (page.total, page.count) == (1005, 1000)


def test_delete_renames_first_so_a_half_deleted_run_is_never_listed(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    keep, doomed = make_run(tmp_path, minutes=1), make_run(tmp_path, minutes=2)
    reg = Registry(tmp_path)
    reg.rebuild()
    seen: list[tuple[list[str], bool]] = []
    real_rmtree = shutil.rmtree

    def spying_rmtree(path: Path, ignore_errors: bool = False) -> None:
        seen.append((ids(Registry(tmp_path)), (tmp_path / doomed).exists()))
        assert Path(path).name.startswith(".tmp-")
        real_rmtree(path, ignore_errors=ignore_errors)

    monkeypatch.setattr(shutil, "rmtree", spying_rmtree)
    reg.delete(doomed)
    assert seen == [([keep], False)]
    assert ids(reg) == [keep]
    assert sorted(p.name for p in tmp_path.iterdir() if not p.name.startswith("index")) == [keep]
    with pytest.raises(RunNotFound):
        reg.delete(doomed)


def test_runs_added_from_many_threads_are_all_indexed(tmp_path: Path) -> None:
    made: list[str] = []
    lock = threading.Lock()
    stop = threading.Event()

    def writer(k: int) -> None:
        for i in range(8):
            run_id = make_run(tmp_path, (k, i))
            Registry(tmp_path).add(run_id)
            with lock:
                made.append(run_id)

    def rebuilder() -> None:
        while not stop.is_set():
            Registry(tmp_path).rebuild()
            Registry(tmp_path).sync()

    threads = [threading.Thread(target=writer, args=(k,)) for k in range(8)]
    side = threading.Thread(target=rebuilder)
    side.start()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    stop.set()
    side.join()
    reg = Registry(tmp_path)
    assert len(made) == 64
    assert set(ids(reg, limit=1000)) == set(made)


ADD_SCRIPT = """
import sys
from pathlib import Path
from flowtime.artifacts.registry import Registry
from flowtime.artifacts.writer import write_run
from flowtime.engine import evaluate
from flowtime.model.load import load_model

root, k = Path(sys.argv[1]), int(sys.argv[2])
for i in range(10):
    loaded = load_model(f"schemaVersion: 1\\ngrid: {{bins: 2, binSize: 1, binUnit: hours}}\\n"
                        f"nodes: [{{id: a, values: [{k}, {i}]}}]\\n")
    rec = write_run(loaded, evaluate(loaded.model), root)
    Registry(root).add(rec.run_id)
    print(rec.run_id)
"""


def test_runs_added_from_several_processes_are_all_indexed(tmp_path: Path) -> None:
    procs = [subprocess.Popen([sys.executable, "-c", ADD_SCRIPT, str(tmp_path), str(k)],
                              stdout=subprocess.PIPE, text=True) for k in range(4)]
    made = set()
    for p in procs:
        out, _ = p.communicate(timeout=120)
        assert p.returncode == 0
        made |= set(out.split())
    assert len(made) == 40
    assert set(ids(Registry(tmp_path), limit=1000)) == made


def test_series_are_found_by_full_id_or_node_id(tmp_path: Path) -> None:
    run_id = make_run(tmp_path, (1, 2.5))
    reg = Registry(tmp_path)
    entry = reg.find_series(run_id, "b")
    assert entry == reg.find_series(run_id, "b@B@DEFAULT")
    assert reg.series_values(run_id, entry).tolist() == [2.0, 5.0]
    assert {k: v.tolist() for k, v in reg.all_series(run_id).items()} == {
        "a": [1.0, 2.5], "b": [2.0, 5.0]}
    with pytest.raises(RunNotFound, match="series 'c' not found"):
        reg.find_series(run_id, "c")


def test_details_and_files(tmp_path: Path) -> None:
    run_id = make_run(tmp_path, template="t")
    reg = Registry(tmp_path)
    d = reg.details(run_id)
    assert d["runId"] == run_id and d["run"]["runId"] == run_id
    assert d["provenance"]["templateId"] == "t"
    assert [f["name"] for f in reg.files(run_id)] == [
        "manifest.json", "provenance.json", "run.json", "spec.yaml", "series/a@A@DEFAULT.csv",
        "series/b@B@DEFAULT.csv", "series/index.json"]
    (tmp_path / run_id / "run.json").unlink()
    with pytest.raises(ArtifactError, match=r"has no run\.json"):
        reg.run_json(run_id)


@pytest.mark.parametrize("name", [
    "../manifest.json", "../../etc/passwd", "/etc/passwd", "series/../../x", "series/a/b.csv",
    ".hidden", "series/.hidden", "", "series", "series/", "a\\b", "spec.yaml\x00", "x" * 300,
    "nope.json", "other/index.json",
])
def test_file_names_outside_the_run_are_refused(tmp_path: Path, name: str) -> None:
    run_id = make_run(tmp_path)
    with pytest.raises(RunNotFound, match="not found"):
        Registry(tmp_path).file_path(run_id, name)


def test_symlinked_files_are_refused(tmp_path: Path) -> None:
    run_id = make_run(tmp_path)
    outside = tmp_path / "outside.txt"
    outside.write_text("secret")
    (tmp_path / run_id / "link.json").symlink_to(outside)
    reg = Registry(tmp_path)
    with pytest.raises(RunNotFound):
        reg.file_path(run_id, "link.json")
    assert reg.file_path(run_id, "series/index.json").name == "index.json"


def test_verify_recomputes_every_series_hash(tmp_path: Path) -> None:
    run_id = make_run(tmp_path)
    reg = Registry(tmp_path)
    assert reg.verify(run_id) == []
    (tmp_path / run_id / "series" / "b@B@DEFAULT.csv").write_text("t,value\n0,9\n1,9\n")
    (tmp_path / run_id / "series" / "a@A@DEFAULT.csv").unlink()
    problems = reg.verify(run_id)
    assert problems[0] == "a@A@DEFAULT: file missing"
    assert problems[1].startswith("b@B@DEFAULT: hash sha256:")


def test_series_csv_parsing_accepts_a_bom_and_special_values() -> None:
    data = b"\xef\xbb\xbft,value\n0,1E-05\n1,Infinity\n2,-0\n"
    assert parse_series_csv(data).tolist() == [1e-05, float("inf"), -0.0]
    assert parse_series_csv(b"t,value\n").tolist() == []
