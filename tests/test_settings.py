"""Settings read the one data folder the way every command does."""

from __future__ import annotations

from pathlib import Path

import pytest

from flowtime.settings import EngineSettings


def test_the_engine_keeps_its_runs_in_the_engine_folder_of_the_data_folder(monkeypatch: pytest.MonkeyPatch,
                                                                          tmp_path: Path) -> None:
    for key in ("FLOWTIME_DATA_DIR", "FLOWTIME_ENGINE_DATA_DIR"):
        monkeypatch.delenv(key, raising=False)
    assert EngineSettings().data_dir == Path("data") / "engine"
    monkeypatch.setenv("FLOWTIME_DATA_DIR", str(tmp_path))
    assert EngineSettings().data_dir == tmp_path / "engine"  # not the data folder itself
    assert EngineSettings(data_dir=tmp_path / "x").data_dir == tmp_path / "x"  # given wins
    monkeypatch.setenv("FLOWTIME_ENGINE_DATA_DIR", str(tmp_path / "only-engine"))
    assert EngineSettings().data_dir == tmp_path / "only-engine"
