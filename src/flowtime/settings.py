"""
Process settings, one pydantic-settings class per service (env prefix FLOWTIME_).

Created at the edge (CLI / ``flowtime serve``) and passed into the app factories;
nothing here is instantiated at import time.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from pydantic import Field
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from flowtime.model.limits import Limits


class _Base(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="FLOWTIME_", extra="ignore", populate_by_name=True)

    host: str = "127.0.0.1"
    # Optional bearer token required on write endpoints when set (FLOWTIME_API_TOKEN).
    api_token: str | None = None
    # Allowed CORS origin (e.g. the UI's URL); CORS is off when unset.
    cors_origin: str | None = None
    # Host names requests may carry besides loopback and ``host`` (comma-separated, "*" for
    # any; FLOWTIME_ALLOWED_HOSTS, shared by the three services): the DNS-rebinding check.
    allowed_hosts: str = Field(default="", validation_alias="FLOWTIME_ALLOWED_HOSTS")


class _EngineFolder(PydanticBaseSettingsSource):
    """
    ``data_dir`` from the environment the way every command reads it: FLOWTIME_DATA_DIR
    names the data folder D and the Engine keeps its runs in D/engine (not in D itself).
    """

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        return None, field_name, False

    def __call__(self) -> dict[str, Any]:
        own = os.environ.get("FLOWTIME_ENGINE_DATA_DIR", "").strip()
        if own:
            return {"data_dir": Path(own)}
        root = os.environ.get("FLOWTIME_DATA_DIR", "").strip()
        return {"data_dir": Path(root) / "engine"} if root else {}


class EngineSettings(_Base):
    port: int = 8080
    # The Engine's own folder: D/engine of the data folder D (FLOWTIME_DATA_DIR, default ./data),
    # or FLOWTIME_ENGINE_DATA_DIR for this service alone; see _EngineFolder.
    data_dir: Path = Field(default=Path("data/engine"))

    @classmethod
    def settings_customise_sources(cls, settings_cls: type[BaseSettings], init_settings: Any,
                                   env_settings: Any, dotenv_settings: Any, file_secret_settings: Any
                                   ) -> tuple[Any, ...]:
        return (init_settings, _EngineFolder(settings_cls), env_settings, dotenv_settings, file_secret_settings)
    max_body_bytes: int = 10 * 1024 * 1024
    # The folder `file:` series may be read from over HTTP (FLOWTIME_TELEMETRY_ROOT); unset, no file is read.
    telemetry_root: Path | None = None
    max_bins: int = 1_000_000
    max_nodes: int = 100_000
    max_outputs: int = 100_000
    max_expression_length: int = 10_000
    max_expression_nesting: int = 200
    # Hostile-input bounds (SECURITY.md): values computed per run, characters of all
    # expressions of a model, and values returned inline by POST /v1/run.
    max_cells: int = 20_000_000
    max_expression_total: int = 250_000
    max_response_values: int = 2_000_000
    # Bytes of opened runs the state API keeps in memory (their series and metrics), least recently used dropped.
    state_cache_bytes: int = 512 * 1024 * 1024
    # Experiments over HTTP (decision 0036): points one experiment may evaluate at most (a spec's
    # limits.maxPoints may lower it, never raise it), experiments run at once (more wait, queued), and the
    # backend they run on (None: in-process, or FLOWTIME_DASK_ADDRESS; "processes:N", "local", "tcp://...").
    max_experiment_points: int = 1_000_000
    experiment_workers: int = Field(default=1, ge=1)
    experiment_backend: str | None = None
    # What-if sessions (decision 0043): open at once at most (each holds a planned model), and the idle
    # time after which one without an open WebSocket is dropped.
    whatif_max_sessions: int = Field(default=16, ge=1)
    whatif_idle_seconds: float = Field(default=900.0, gt=0)

    def limits(self) -> Limits:
        return Limits(max_bins=self.max_bins, max_nodes=self.max_nodes, max_outputs=self.max_outputs,
                      max_expression_length=self.max_expression_length,
                      max_expression_nesting=self.max_expression_nesting, max_model_bytes=self.max_body_bytes,
                      max_cells=self.max_cells, max_expression_total=self.max_expression_total)


class SimSettings(_Base):
    model_config = SettingsConfigDict(env_prefix="FLOWTIME_SIM_", extra="ignore", populate_by_name=True)

    port: int = 8090
    data_dir: Path = Field(default=Path("data/sim"))
    templates_dir: Path | None = None
    ttl_days: float = 7.0
    gc_interval_seconds: float = 3600.0
    max_body_bytes: int = 1024 * 1024
    max_array_length: int = 100_000
    api_token: str | None = Field(default=None, validation_alias="FLOWTIME_API_TOKEN")


class UiSettings(_Base):
    model_config = SettingsConfigDict(env_prefix="FLOWTIME_UI_", extra="ignore", populate_by_name=True)

    port: int = 5219
    engine_url: str = "http://127.0.0.1:8080"
    sim_url: str = "http://127.0.0.1:8090"
    api_token: str | None = Field(default=None, validation_alias="FLOWTIME_API_TOKEN")
    request_timeout_seconds: float = 30.0
