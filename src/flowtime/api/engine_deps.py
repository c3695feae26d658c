"""Typed dependencies of the Engine routes: the settings and registry on ``app.state``."""

from __future__ import annotations

from fastapi import Request

from flowtime.artifacts.registry import Registry
from flowtime.settings import EngineSettings


def get_settings(request: Request) -> EngineSettings:
    settings: EngineSettings = request.app.state.settings
    return settings


def get_registry(request: Request) -> Registry:
    registry: Registry = request.app.state.registry
    return registry
