"""Serve any ASGI app on loopback for UI tests (see tests/servers.py)."""

from __future__ import annotations

from tests.servers import closed_port_url, serve

__all__ = ["closed_port_url", "serve"]
