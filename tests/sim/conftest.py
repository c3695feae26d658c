"""Fixtures for the Sim tests: the catalog with the reference templates, a workspace on tmp_path."""

from __future__ import annotations

from pathlib import Path

import pytest

from flowtime.sim.catalog import Catalog
from flowtime.sim.workspace import Workspace

REFERENCE_DIR = Path(__file__).parent / "reference_templates"


@pytest.fixture
def catalog() -> Catalog:
    """The built-in library plus the five reference templates (as a templates directory)."""
    return Catalog.load(REFERENCE_DIR)


@pytest.fixture
def workspace(catalog: Catalog, tmp_path: Path) -> Workspace:
    return Workspace(catalog, tmp_path / "sim", max_array_length=1000)
