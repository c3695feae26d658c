"""The temporary store: atomic folders, idempotent saves, time-to-live, named versions."""

from __future__ import annotations

import json
import os
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from flowtime.errors import ModelNotFound
from flowtime.sim.store import ModelStore, NamedStore, name_id
from flowtime.sim.workspace import Workspace

T0 = datetime(2025, 10, 3, 12, 0, 0, tzinfo=UTC)
FILES = {"model.yaml", "provenance.json", "metadata.json", "validation.json", "preview.svg", "issued.jsonl"}


def test_a_generated_model_is_stored_under_template_and_hash_prefix(workspace: Workspace) -> None:
    gen = workspace.generate("support-backlog", {"agents": 6}, now=T0)
    assert gen.created and gen.stored is not None
    folder = gen.stored.path
    assert folder == workspace.data_dir / "models" / "support-backlog" / gen.generated.hash_prefix
    assert {p.name for p in folder.iterdir()} == FILES
    assert (folder / "model.yaml").read_text() == gen.generated.model_text
    meta = json.loads((folder / "metadata.json").read_text())
    assert meta["title"] == "Support Ticket Backlog (agents=6)" and meta["tags"][0] == "service"
    assert meta["template"] == {"id": "support-backlog", "version": "1.0.0", "title": "Support Ticket Backlog"}
    assert meta["parameters"]["agents"] == 6 and meta["created"] == "2025-10-03T12:00:00.000Z"
    assert meta["validation"] == {"valid": True, "problemCount": 0, "warningCount": 0, "qualityScore": 1.0}
    assert json.loads((folder / "provenance.json").read_text())["modelId"] == gen.generated.model_id
    assert json.loads((folder / "validation.json").read_text())["quality"]["score"] == 1.0


def test_generating_the_same_model_twice_reuses_its_folder(workspace: Workspace) -> None:
    first = workspace.generate("support-backlog", {"agents": 6}, now=T0)
    again = workspace.generate("support-backlog", {"agents": 6.0}, now=T0 + timedelta(hours=1))
    assert not again.created and again.stored is not None and first.stored is not None
    assert again.stored.path == first.stored.path
    assert len(workspace.store.models()) == 1
    meta = again.stored.metadata
    assert meta["created"] == "2025-10-03T12:00:00.000Z" and meta["updated"] == "2025-10-03T13:00:00.000Z"
    assert json.loads((again.stored.path / "provenance.json").read_text())["modelId"] == again.generated.model_id
    assert not [p for p in again.stored.path.parent.iterdir() if p.name.startswith(".")]


def test_different_parameters_give_a_different_folder(workspace: Workspace) -> None:
    a = workspace.generate("support-backlog", {"agents": 6}, now=T0)
    b = workspace.generate("support-backlog", {"agents": 7}, now=T0 + timedelta(seconds=1))
    assert a.generated.hash_prefix != b.generated.hash_prefix
    assert [m.hash for m in workspace.store.models()] == [b.generated.hash_prefix, a.generated.hash_prefix]
    assert workspace.store.latest("support-backlog").hash == b.generated.hash_prefix


def test_stale_temp_folders_are_cleaned_at_start_and_never_listed(tmp_path: Path) -> None:
    parent = tmp_path / "models" / "t1"
    half = parent / ".tmp-abcdef012345-x"
    half.mkdir(parents=True)
    (half / "model.yaml").write_text("half")
    fresh = parent / ".tmp-fresh"
    fresh.mkdir()
    old = time.time() - 3600
    os.utime(half, (old, old))
    store = ModelStore(tmp_path, stale_after=600)
    assert not half.exists() and fresh.exists()
    assert store.models() == []


def test_a_folder_without_metadata_is_not_a_model(tmp_path: Path) -> None:
    (tmp_path / "models" / "t1" / "0123456789ab").mkdir(parents=True)
    (tmp_path / "models" / "t1" / "0123456789ab" / "model.yaml").write_text("x")
    assert ModelStore(tmp_path).models() == []


def test_ids_are_checked_before_any_path_is_built(tmp_path: Path) -> None:
    store = ModelStore(tmp_path)
    for template_id, hash_prefix in [("..", "0123456789ab"), ("t", "../../etc"), ("t/..", "x"), ("", "")]:
        with pytest.raises(ModelNotFound):
            store.get(template_id, hash_prefix)
    assert store.models("../..") == []


def test_ttl_removes_models_last_generated_too_long_ago(workspace: Workspace) -> None:
    old = workspace.generate("support-backlog", {"agents": 6}, now=T0)
    new = workspace.generate("support-backlog", {"agents": 7}, now=T0 + timedelta(days=6))
    assert old.stored is not None and new.stored is not None
    removed = workspace.gc(now=T0 + timedelta(days=7, hours=1))  # default TTL 7 days
    assert removed == [old.stored.path]
    assert [m.hash for m in workspace.store.models()] == [new.generated.hash_prefix]
    workspace.gc(now=T0 + timedelta(days=14))
    assert workspace.store.models() == [] and not (workspace.data_dir / "models" / "support-backlog").exists()


def test_regenerating_restarts_the_time_to_live(workspace: Workspace) -> None:
    workspace.generate("support-backlog", now=T0)
    workspace.generate("support-backlog", now=T0 + timedelta(days=5))
    assert workspace.gc(now=T0 + timedelta(days=8)) == []


def test_name_id_is_the_name_plus_four_hex() -> None:
    assert name_id("checkout-baseline") == "checkout-baseline_31cb"
    with pytest.raises(Exception, match="model name"):
        name_id("../x")


def test_named_models_get_versions_only_when_the_content_changes(workspace: Workspace) -> None:
    v1 = workspace.export_named("ecommerce-checkout", "checkout-baseline", now=T0)
    same = workspace.export_named("ecommerce-checkout", "checkout-baseline", {"peak_factor": 1.5})
    v2 = workspace.export_named("ecommerce-checkout", "checkout-baseline", {"peak_factor": 2})
    assert v1.stored is not None and same.stored is not None and v2.stored is not None
    assert (v1.created, same.created, v2.created) == (True, False, True)
    root = workspace.data_dir / "named" / "checkout-baseline_31cb"
    assert v1.stored.path == root / "v1" and same.stored.path == root / "v1" and v2.stored.path == root / "v2"
    assert {p.name for p in (root / "v2").iterdir()} == FILES
    meta = v2.stored.metadata
    assert (meta["name"], meta["nameId"], meta["version"]) == ("checkout-baseline", "checkout-baseline_31cb", 2)
    assert workspace.named.get("checkout-baseline_31cb").version == 2
    assert workspace.named.get("checkout-baseline_31cb/v1").version == 1
    assert workspace.named.get("checkout-baseline").version == 2
    with pytest.raises(ModelNotFound, match="has no version v9"):
        workspace.named.get("checkout-baseline_31cb", 9)


def test_concurrent_writers_take_the_next_free_version(tmp_path: Path) -> None:
    store = NamedStore(tmp_path / "named")
    (tmp_path / "named" / "n_" / "x").mkdir(parents=True)  # noise: not a name id
    a, _ = store.save("n", "sha256:a", {"model.yaml": "a"}, {"templateId": "t"})
    # A writer that read "latest is v1" before another published v2 must not overwrite it.
    (tmp_path / "named" / a.path.parent.name / "v2").mkdir()
    (tmp_path / "named" / a.path.parent.name / "v2" / "model.yaml").write_text("other")
    b, created = store.save("n", "sha256:b", {"model.yaml": "b"}, {"templateId": "t"})
    assert created and b.version == 3 and (b.path / "model.yaml").read_text() == "b"


def test_a_failed_write_leaves_nothing_visible(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from flowtime.sim import store as store_module

    def crash(folder: Path, files: dict[str, str]) -> None:
        (folder / "model.yaml").write_text("half")
        raise OSError("disk full")

    monkeypatch.setattr(store_module, "_write_files", crash)
    store = ModelStore(tmp_path)
    with pytest.raises(OSError, match="disk full"):
        store.save("t1", "0123456789ab", {"model.yaml": "x"}, {})
    assert store.models() == [] and list((tmp_path / "models" / "t1").iterdir()) == []


def test_concurrent_generations_of_one_model_share_one_folder(workspace: Workspace) -> None:
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(lambda _: workspace.generate("commuter-rail", {"bins": 6}), range(16)))
    assert sum(r.created for r in results) == 1
    assert len({r.stored.path for r in results if r.stored is not None}) == 1
    folder = workspace.data_dir / "models" / "commuter-rail"
    assert [p.name for p in folder.iterdir()] == [results[0].generated.hash_prefix]


def test_every_model_id_issued_resolves_while_its_model_is_stored(workspace: Workspace) -> None:
    first = workspace.generate("support-backlog", {"agents": 6}, now=T0)
    second = workspace.generate("support-backlog", {"agents": 6}, now=T0 + timedelta(seconds=1))
    a, b = first.generated.model_id, second.generated.model_id
    assert a != b and a.endswith(b[-8:])  # new time, same parameters
    assert len(workspace.store.models()) == 1
    old, new = workspace.find(a), workspace.find(b)
    assert old.path == new.path and (old.model_id, new.model_id) == (a, b)
    # Each id answers with the provenance it was issued with.
    assert old.provenance() == first.generated.provenance.to_json()
    assert old.provenance()["generatedAt"] == "2025-10-03T12:00:00.000Z"
    assert new.provenance()["generatedAt"] == "2025-10-03T12:00:01.000Z"
    assert workspace.resolve(a).provenance == first.generated.provenance.to_json()
    lines = (old.path / "issued.jsonl").read_text().splitlines()
    assert [json.loads(line)["modelId"] for line in lines] == [a, b]
    workspace.gc(now=T0 + timedelta(days=8))  # once the model expires, so do its ids
    for gone in (a, b):
        with pytest.raises(ModelNotFound):
            workspace.find(gone)


def test_regenerating_in_the_same_second_records_the_id_once(workspace: Workspace) -> None:
    first = workspace.generate("support-backlog", {"agents": 6}, now=T0)
    workspace.generate("support-backlog", {"agents": 6}, now=T0)
    assert first.stored is not None
    assert len((first.stored.path / "issued.jsonl").read_text().splitlines()) == 1


def test_a_named_models_ids_resolve_even_when_no_new_version_is_made(workspace: Workspace) -> None:
    v1 = workspace.export_named("ecommerce-checkout", "checkout-baseline", now=T0)
    same = workspace.export_named("ecommerce-checkout", "checkout-baseline", now=T0 + timedelta(seconds=5))
    assert not same.created and v1.stored is not None
    for gen in (v1, same):
        found = workspace.find(gen.generated.model_id)
        assert found.path == v1.stored.path and found.provenance()["modelId"] == gen.generated.model_id


def test_a_torn_issued_line_does_not_hide_the_others(workspace: Workspace) -> None:
    first = workspace.generate("support-backlog", {"agents": 6}, now=T0)
    assert first.stored is not None
    with (first.stored.path / "issued.jsonl").open("a") as f:
        f.write('{"modelId":"model_20251003T1')  # a crash mid-append
    second = workspace.generate("support-backlog", {"agents": 6}, now=T0 + timedelta(seconds=2))
    assert workspace.find(first.generated.model_id).model_id == first.generated.model_id
    assert workspace.find(second.generated.model_id).model_id == second.generated.model_id
