"""Typed FastAPI dependencies: the two service clients stored on ``app.state``."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from flowtime.ui.clients import EngineClient, SimClient


def _engine(request: Request) -> EngineClient:
    client: EngineClient = request.app.state.engine
    return client


def _sim(request: Request) -> SimClient:
    client: SimClient = request.app.state.sim
    return client


Engine = Annotated[EngineClient, Depends(_engine)]
Sim = Annotated[SimClient, Depends(_sim)]
