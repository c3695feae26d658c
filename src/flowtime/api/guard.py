"""
Request guard shared by the Engine and Sim services: a pure ASGI middleware that
enforces the optional bearer token on write methods and the request body limit
(on ``Content-Length`` and on the bytes actually received).
"""

from __future__ import annotations

import secrets
from typing import Any

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from flowtime.api.problems import problem

WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
TOO_LARGE = "Request body too large"


class BodyTooLarge(HTTPException):
    """
    Raised from ``receive`` once a streamed body passes the limit: an HTTP error
    (413), not a domain ``LimitExceeded`` (400), and re-raised as is by FastAPI's
    body reading.
    """

    title = TOO_LARGE


class RequestGuard:
    """
    Bearer token on write methods (when configured) and the body limit; a
    chunked or lying client is cut off at the limit.
    """

    def __init__(self, app: ASGIApp, *, max_body_bytes: int, api_token: str | None,
                 realm: str = "flowtime", limit_setting: str = "FLOWTIME_MAX_BODY_BYTES") -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.api_token = api_token
        self.realm = realm
        self.limit_setting = limit_setting

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        if self.api_token and scope["method"] in WRITE_METHODS and not self._authorized(headers):
            response = problem(401, "Unauthorized", f"{scope['method']} requests need the header "
                               "'Authorization: Bearer <token>' (the server's FLOWTIME_API_TOKEN)")
            response.headers["WWW-Authenticate"] = f'Bearer realm="{self.realm}"'
            await response(scope, receive, send)
            return
        declared = headers.get("content-length", "")
        if declared.isdigit() and int(declared) > self.max_body_bytes:
            await self._too_large(int(declared))(scope, receive, send)
            return
        await self.app(scope, self._counting(receive), send)

    def _authorized(self, headers: dict[str, str]) -> bool:
        scheme, _, token = headers.get("authorization", "").partition(" ")
        expected = self.api_token or ""
        return scheme.lower() == "bearer" and secrets.compare_digest(token.strip().encode(), expected.encode())

    def _too_large(self, size: int) -> Any:
        return problem(413, TOO_LARGE,
                       f"request body is {size} bytes; the limit is {self.max_body_bytes} bytes ({self.limit_setting})")

    def _counting(self, receive: Receive) -> Receive:
        seen = 0
        limit = self.max_body_bytes
        setting = self.limit_setting

        async def counted() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    raise BodyTooLarge(413, f"request body is over the limit of {limit} bytes ({setting})")
            return message

        return counted
