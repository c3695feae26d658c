"""Derive chains, look-ups by reference, and generate() as a library call."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from flowtime.errors import ModelError, ModelNotFound, ParameterError
from flowtime.sim import generate
from flowtime.sim.workspace import Workspace

T0 = datetime(2025, 10, 3, 12, 0, 0, tzinfo=UTC)


def test_generate_returns_model_and_provenance_without_storing(tmp_path: Path) -> None:
    model, provenance = generate("ecommerce-checkout", {"peak_factor": 2})
    assert model.node("sessions").kind == "expr"
    assert provenance.parameters is not None and provenance.parameters["peak_factor"] == 2
    assert provenance.parameters["base_capacity"] == 150  # defaults are recorded too


def test_derive_chain_links_each_model_to_its_parent(workspace: Workspace) -> None:
    base = workspace.generate("ecommerce-checkout", now=T0)
    child = workspace.derive(base.generated.model_id, {"peak_factor": 2}, now=T0 + timedelta(seconds=1))
    grandchild = workspace.derive(child.generated.model_id, {"base_capacity": 300},
                                  now=T0 + timedelta(seconds=2))
    assert child.generated.provenance.derived_from == base.generated.model_id
    assert grandchild.generated.provenance.derived_from == child.generated.model_id
    params = grandchild.generated.parameters
    assert (params["peak_factor"], params["base_capacity"], params["conversion_rate"]) == (2, 300, 0.08)
    assert grandchild.stored is not None
    assert grandchild.stored.metadata["derivedFrom"] == child.generated.model_id
    assert grandchild.stored.provenance()["derivedFrom"] == child.generated.model_id
    assert len(workspace.store.models("ecommerce-checkout")) == 3


def test_derive_from_a_named_model_makes_its_next_version(workspace: Workspace) -> None:
    v1 = workspace.export_named("support-backlog", "desk", tags=["team-a"], now=T0)
    v2 = workspace.derive("desk", {"agents": 7}, now=T0 + timedelta(seconds=1))
    assert v1.stored is not None and v2.stored is not None and v2.stored.version == 2
    assert v2.stored.metadata["nameId"] == v1.stored.metadata["nameId"]
    assert "team-a" in v2.stored.metadata["tags"]
    other = workspace.derive("desk/v1", {"agents": 8}, name="desk-big")
    assert other.stored is not None and other.stored.metadata["name"] == "desk-big"
    assert other.stored.version == 1


def test_derive_from_a_file_with_embedded_provenance(workspace: Workspace, tmp_path: Path) -> None:
    gen = workspace.generate("commuter-rail", {"trains_per_period": 3}, persist=False)
    path = tmp_path / "rail.yaml"
    path.write_text(gen.text(embed_provenance=True))
    child = workspace.derive(str(path), {"seats_per_train": 200})
    assert child.generated.parameters["trains_per_period"] == 3
    assert child.generated.parameters["seats_per_train"] == 200
    assert child.generated.provenance.derived_from == gen.generated.model_id


def test_derive_needs_provenance_and_valid_changes(workspace: Workspace, tmp_path: Path) -> None:
    gen = workspace.generate("commuter-rail", persist=False)
    bare = tmp_path / "bare.yaml"
    bare.write_text(gen.text())
    with pytest.raises(ModelError, match="has no provenance naming its template"):
        workspace.derive(str(bare), {"bins": 3})
    stored = workspace.generate("commuter-rail")
    with pytest.raises(ParameterError, match="unknown parameter `trains`"):
        workspace.derive(stored.generated.model_id, {"trains": 3})


def test_resolve_by_every_kind_of_reference(workspace: Workspace) -> None:
    gen = workspace.generate("support-backlog")
    assert gen.stored is not None
    by_id = workspace.resolve(gen.generated.model_id)
    by_hash = workspace.resolve(f"support-backlog/{gen.generated.hash_prefix}")
    by_folder = workspace.resolve(str(gen.stored.path))
    by_file = workspace.resolve(str(gen.stored.path / "model.yaml"))
    for r in (by_id, by_hash, by_folder, by_file):
        assert r.text == gen.generated.model_text
        assert r.provenance is not None and r.provenance["modelId"] == gen.generated.model_id
    with pytest.raises(ModelNotFound, match="no stored model with id model_20200101T000000Z_00000000"):
        workspace.resolve("model_20200101T000000Z_00000000")
    with pytest.raises(ModelNotFound, match="no named model"):
        workspace.resolve("nothing-here")
